"""The ``kubernetes`` issuer: another implementation of the loop's ``IssueWithNewKey``. Instead of
invoking the CA Lambda with AWS credentials, it makes a key and a CSR, creates a Kubernetes
CertificateSigningRequest with the pod's own ServiceAccount token, and waits for the operator's
signer to approve and sign it. The loop around it is unchanged: the same renewal policy, the
same atomic writes, the same backoff.

What the CSR ends in becomes the core's errors: ``Denied`` (the approver's reason and message,
naming the policy; not retried by ``once``), ``CARefused`` (the signer's Failed condition, the
CA's refusal verbatim), ``PendingApproval`` (nobody decided in time: the same CSR is waited on
at the next attempt, never a new one, so a pending CSR is not multiplied by retries).

The CA certificates come from the trust bundle the operator publishes (the ``clientcert-ca-bundle``
ConfigMap, mounted as a volume): ``status.certificate`` holds the leaf and the issuing CA only.
This module never imports boto3.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from cacore.certinfo import chain_problem, split_pem_certificates
from cacore.edge.keygen import build_csr, generate_key
from cacore.errors import CAError, CARefused, Denied, InvalidResponse, PendingApproval
from cacore.keys import KeySpec, PrivateKey
from cacore.kubecsr import csr_object
from cacore.request import CertificateRequest
from cacore.response import Issuance, IssuedCertificate, issued_certificate, verify_issued
from sidecar.kubeclient import KubeClient
from sidecar.settings import KubeIssuerSettings

log = logging.getLogger("sidecar.kubernetes")

WATCH_SLICE_SECONDS = 60.0
BUNDLE_POLL_SECONDS = 0.5
BUNDLE_WAIT_SECONDS = 120.0  # kubelet projects a ConfigMap created after the pod started
AWAITING_APPROVAL = "clientcerts.dev/AwaitingApproval"


class TrustBundleUnavailable(CAError):
    """The certificate is signed but the CA bundle it chains to is not (yet) in the volume."""

    reason = "TrustBundleUnavailable"
    retryable = True


@dataclass
class Attempt:
    """One CSR in flight, kept across the loop's retries until it ends."""

    request: CertificateRequest
    spec: KeySpec
    key: PrivateKey
    name: str
    started: float
    chain: bytes | None = None  # leaf then issuing CA, once signed


def _generate_name(common_name: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", common_name.lower()).strip("-")[:40].rstrip("-")
    return f"{label or 'cert-sidecar'}-"


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


class KubernetesIssuer:
    def __init__(
        self,
        settings: KubeIssuerSettings,
        client: KubeClient,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        bundle_wait: float = BUNDLE_WAIT_SECONDS,
    ) -> None:
        self.settings, self.client = settings, client
        self.monotonic, self.sleep = monotonic, sleep
        self.bundle_wait = bundle_wait
        self.attempt: Attempt | None = None
        self._told: str | None = None

    def __call__(self, request: CertificateRequest, spec: KeySpec) -> Issuance:
        attempt = self.attempt
        if attempt is None or attempt.request != request or attempt.spec != spec:
            attempt = self.attempt = self._create(request, spec)
        try:
            if attempt.chain is None:
                attempt.chain = self._await_certificate(attempt)
            issued = self._verified(attempt)
        except (PendingApproval, TrustBundleUnavailable):
            raise  # the same CSR is waited on at the next attempt
        except CAError:
            self.attempt = None
            raise
        self.attempt = None
        return Issuance(
            key=attempt.key, certificate=issued, seconds=self.monotonic() - attempt.started
        )

    # --- the CSR -------------------------------------------------------------------------------

    def _create(self, request: CertificateRequest, spec: KeySpec) -> Attempt:
        started = self.monotonic()
        key = generate_key(spec)
        pem = build_csr(key, request.subject, request.sans)
        body = csr_object(
            pem,
            self.settings.signer_name,
            self.settings.usages,
            request.lifetime_days,
            _generate_name(request.common_name),
            labels={"app.kubernetes.io/managed-by": "cert-sidecar"},
        )
        created = self.client.create_csr(body)
        name = str(created["metadata"]["name"])
        self._told = None
        log.info(
            "certificate requested",
            extra={
                "fields": {
                    "csr": name,
                    "signer": self.settings.signer_name,
                    "common_name": request.common_name,
                }
            },
        )
        return Attempt(request=request, spec=spec, key=key, name=name, started=started)

    def _await_certificate(self, attempt: Attempt) -> bytes:
        deadline = self.monotonic() + self.settings.csr_timeout
        obj = self._read(attempt)
        while True:
            chain = self._outcome(attempt, obj)
            if chain is not None:
                return chain
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                raise PendingApproval(self._pending_message(attempt, obj))
            version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
            for event in self.client.watch_csr(
                attempt.name, version, min(remaining, WATCH_SLICE_SECONDS)
            ):
                obj = event
                chain = self._outcome(attempt, obj)
                if chain is not None:
                    return chain
            obj = self._read(attempt)

    def _read(self, attempt: Attempt) -> dict:
        obj = self.client.get_csr(attempt.name)
        if obj is None:
            raise CARefused(
                f"CSR {attempt.name} was deleted before it was signed; a new one will be made"
            )
        return obj

    def _outcome(self, attempt: Attempt, obj: Mapping[str, Any]) -> bytes | None:
        """The certificate chain when signed; the typed error when the CSR ended otherwise."""
        denied = _condition(obj, "Denied")
        if denied is not None:
            reason, message = str(denied.get("reason", "")), str(denied.get("message", ""))
            log.error(
                "certificate request denied",
                extra={"fields": {"csr": attempt.name, "reason": reason, "detail": message}},
            )
            raise Denied(reason or "Denied", f"CSR {attempt.name}: {message}")
        failed = _condition(obj, "Failed")
        if failed is not None:
            message = str(failed.get("message", ""))
            log.error(
                "certificate request failed",
                extra={
                    "fields": {
                        "csr": attempt.name,
                        "reason": failed.get("reason"),
                        "detail": message,
                    }
                },
            )
            raise CARefused(message)
        certificate = (obj.get("status") or {}).get("certificate")
        if certificate:
            return base64.b64decode(certificate)
        waiting = _condition(obj, AWAITING_APPROVAL)
        if waiting is not None and waiting.get("message") != self._told:
            self._told = str(waiting.get("message"))
            log.warning(
                "certificate request awaits approval",
                extra={"fields": {"csr": attempt.name, "detail": self._told}},
            )
        return None

    def _pending_message(self, attempt: Attempt, obj: Mapping[str, Any]) -> str:
        waiting = _condition(obj, AWAITING_APPROVAL)
        if waiting is not None:
            why = str(waiting.get("message"))
        elif _condition(obj, "Approved") is not None:
            why = "approved, waiting for the signer to sign it"
        else:
            why = (
                "nobody approved or denied it: is the operator running with its signer enabled, "
                f"and does LambdaCA {self.settings.signer_name.partition('/')[2]} set "
                "spec.signer.enabled?"
            )
        return f"CSR {attempt.name} not signed after {self.settings.csr_timeout:g} s: {why}"

    # --- the CA certificates -------------------------------------------------------------------

    def _verified(self, attempt: Attempt) -> IssuedCertificate:
        assert attempt.chain is not None
        blocks = split_pem_certificates(attempt.chain)
        if len(blocks) < 2:
            raise InvalidResponse(
                f"CSR {attempt.name}: status.certificate holds {len(blocks)} certificate(s); "
                "the signer writes the leaf and the issuing CA"
            )
        leaf_pem, issuing_pem = blocks[0], blocks[1]
        root_pem = self._root_for(issuing_pem)
        issued = issued_certificate(leaf_pem, issuing_pem, root_pem)
        return verify_issued(issued, attempt.key)

    def _root_for(self, issuing_pem: bytes) -> bytes:
        """The root of the published bundle that signed the issuing CA; waits for kubelet to
        project the bundle (a ConfigMap created after the pod started appears within its sync
        period)."""
        path: Path = self.settings.trust_bundle_file
        issuing = x509.load_pem_x509_certificate(issuing_pem)
        deadline = self.monotonic() + self.bundle_wait
        told = False
        while True:
            root = _matching_root(path, issuing)
            if root is not None:
                return root
            if self.monotonic() >= deadline:
                raise TrustBundleUnavailable(
                    f"{path} has no root CA for {issuing.subject.rfc4514_string()}; mount the "
                    "clientcert-ca-bundle ConfigMap there (the operator writes it in this "
                    "namespace when it signs)"
                )
            if not told:
                log.info("waiting for the trust bundle", extra={"fields": {"file": str(path)}})
                told = True
            self.sleep(BUNDLE_POLL_SECONDS)


def _matching_root(path: Path, issuing: x509.Certificate) -> bytes | None:
    try:
        pem = path.read_bytes()
    except OSError:
        return None
    for block in split_pem_certificates(pem):
        try:
            candidate = x509.load_pem_x509_certificate(block)
        except ValueError:
            continue
        if candidate.subject == candidate.issuer and chain_problem(issuing, [candidate]) is None:
            return block
    return None


def kubernetes_issuer(settings: KubeIssuerSettings) -> KubernetesIssuer:
    client = KubeClient(settings.api_url, settings.token_file, settings.ca_file)
    return KubernetesIssuer(settings, client)
