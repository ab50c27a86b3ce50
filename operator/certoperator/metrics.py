"""Prometheus metrics: per-certificate expiry, renewal and readiness, and CA calls by outcome."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

READY_VALUES = ("True", "False", "Unknown")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ["namespace", "name", "secret"]
        self.expiration = Gauge(
            "clientcert_certificate_expiration_timestamp_seconds",
            "notAfter of the certificate in the Secret, as a Unix time",
            labels,
            registry=self.registry,
        )
        self.renewal = Gauge(
            "clientcert_certificate_renewal_timestamp_seconds",
            "When the operator will renew the certificate, as a Unix time",
            labels,
            registry=self.registry,
        )
        self.ready = Gauge(
            "clientcert_certificate_ready_status",
            "1 for the current status of the Ready condition, 0 for the others",
            [*labels, "condition"],
            registry=self.registry,
        )
        self.invocations = Counter(
            "clientcert_ca_invocations",
            "Invocations of the CA Lambda function",
            ["issuer"],
            registry=self.registry,
        )
        self.failures = Counter(
            "clientcert_ca_failures",
            "Failed issuances by reason (Refused, Throttled, FunctionError, TransportError, ...)",
            ["issuer", "reason"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "clientcert_issuance_duration_seconds",
            "Key generation, CSR and CA call for one issuance",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "clientcert_ca_invocations_in_flight",
            "CA invocations running now (bounded by the concurrency limit)",
            registry=self.registry,
        )
        self.api_requests = Counter(
            "clientcert_api_requests",
            "Requests to the Kubernetes API server, kopf's included, by verb, resource and code "
            "(error: no answer)",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self.certificates = Gauge(
            "clientcert_certificates",
            "ClientCertificates by the status of their Ready condition (cheap to scrape and to "
            "alert on, unlike the per-certificate series)",
            ["ready"],
            registry=self.registry,
        )
        for value in READY_VALUES:
            self.certificates.labels(value).set(0)
        self._ready_of: dict[tuple[str, str], str] = {}

    def queue_gauges(self, queued: Callable[[], int], pending: Callable[[], int]) -> None:
        """Gauges read when scraped: issuances waiting for the CA, and certificates issued whose
        Secret is not written yet (non-zero while the API server is unreachable)."""
        Gauge(
            "clientcert_issuances_queued",
            "Issuances waiting for a CA slot",
            registry=self.registry,
        ).set_function(queued)
        Gauge(
            "clientcert_pending_secret_writes",
            "Issued certificates whose Secret is not written yet (kept, written when the API "
            "server answers again)",
            registry=self.registry,
        ).set_function(pending)

    def certificate(
        self,
        namespace: str,
        name: str,
        secret: str,
        ready: str,
        expiry: float | None,
        renewal: float | None,
    ) -> None:
        for value in READY_VALUES:
            self.ready.labels(namespace, name, secret, value).set(1 if value == ready else 0)
        previous = self._ready_of.get((namespace, name))
        if previous != ready:
            if previous is not None:
                self.certificates.labels(previous).dec()
            self.certificates.labels(ready).inc()
            self._ready_of[(namespace, name)] = ready
        if expiry is not None:
            self.expiration.labels(namespace, name, secret).set(expiry)
        if renewal is not None:
            self.renewal.labels(namespace, name, secret).set(renewal)

    def forget(self, namespace: str, name: str, secret: str) -> None:
        """Drop a certificate's series, so deleted resources do not linger in scrapes."""
        previous = self._ready_of.pop((namespace, name), None)
        if previous is not None:
            self.certificates.labels(previous).dec()
        for gauge in (self.expiration, self.renewal):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name, secret)
        for value in READY_VALUES:
            with contextlib.suppress(KeyError):
                self.ready.remove(namespace, name, secret, value)

    def serve(self, address: str, port: int) -> None:
        start_http_server(port, addr=address, registry=self.registry)
