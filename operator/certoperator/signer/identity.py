"""Who asked for a certificate: only what the API server recorded on the CSR when it was created
(``spec.username``, ``spec.groups``, ``spec.extra``), which the requester cannot set. Nothing is
ever read from the CSR body, which the requester writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
# Set by the API server for tokens bound to a Pod (projected ServiceAccount tokens).
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"


@dataclass(frozen=True)
class Requester:
    username: str
    namespace: str | None = None  # set for ServiceAccounts only
    service_account: str | None = None
    pod_name: str | None = None
    pod_uid: str | None = None
    node_name: str | None = None

    @property
    def is_service_account(self) -> bool:
        return self.service_account is not None

    def describe(self) -> str:
        if not self.is_service_account:
            return f"user {self.username!r}"
        pod = f" (Pod {self.pod_name})" if self.pod_name else ""
        return f"ServiceAccount {self.namespace}/{self.service_account}{pod}"

    def variables(self) -> dict[str, str]:
        """The facts a policy template may use; absent ones are left out."""
        values = {
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "podName": self.pod_name,
            "podUID": self.pod_uid,
            "nodeName": self.node_name,
        }
        return {k: v for k, v in values.items() if v}


def _single(extra: Mapping[str, Sequence[str]], key: str) -> str | None:
    values = extra.get(key) or ()
    return values[0] if len(values) == 1 and values[0] else None


def requester_of(username: str, extra: Mapping[str, Sequence[str]]) -> Requester:
    """The requester of a CSR from its ``spec.username`` and ``spec.extra``."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return Requester(username=username)
    namespace, sep, name = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return Requester(username=username)
    return Requester(
        username=username,
        namespace=namespace,
        service_account=name,
        pod_name=_single(extra, EXTRA_POD_NAME),
        pod_uid=_single(extra, EXTRA_POD_UID),
        node_name=_single(extra, EXTRA_NODE_NAME),
    )
