"""Kubernetes CSRs as workloads make them, for the signer's tests and bench/csr_flow.py: a
ServiceAccount with a token file (optionally bound to a Pod), the sidecar's own stdlib client
acting with it, and the signer's objects (an opted-in LambdaCA, ClientCertificatePolicies)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from cacore.edge.keygen import build_csr, generate_key
from cacore.keys import PrivateKey
from cacore.kubecsr import csr_object
from cacore.request import San, Subject
from sidecar.kubeclient import KubeClient
from support.operator_process import lambdaca_manifest

CLIENT_USAGES = ["digital signature", "key encipherment", "client auth"]
# What the cert-sidecar chart grants a pod's ServiceAccount, and nothing more.
REQUESTER_ROLE = "clientcert-csr-requester"
REQUESTER_RULES = [
    {
        "apiGroups": ["certificates.k8s.io"],
        "resources": ["certificatesigningrequests"],
        "verbs": ["create", "get", "watch"],
    }
]


def requester_rbac(namespace: str, name: str) -> list[dict]:
    """The ClusterRole and a binding of it to one ServiceAccount."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": REQUESTER_ROLE},
            "rules": REQUESTER_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{REQUESTER_ROLE}-{namespace}-{name}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": REQUESTER_ROLE,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def api_ca_file(kube: Any, directory: Path) -> Path:
    """The API server's CA bundle, as a Pod finds it in its ServiceAccount volume."""
    path = directory / "kube-ca.crt"
    if not path.exists():
        raw = json.loads(kube.kubectl("config", "view", "--minify", "--raw", "-o", "json").stdout)
        cluster = raw["clusters"][0]["cluster"]
        data = cluster.get("certificate-authority-data")
        pem = (
            base64.b64decode(data) if data else Path(cluster["certificate-authority"]).read_bytes()
        )
        path.write_bytes(pem)
    return path


def signer_lambdaca(name: str, local_ca: Any, **signer: Any) -> dict:
    """A LambdaCA of the local CA that serves clientcerts.dev/<name>."""
    return lambdaca_manifest(name, local_ca, signer={"enabled": True, **signer})


def policy_manifest(name: str, signer: str, **spec: Any) -> dict:
    return {
        "apiVersion": "clientcerts.dev/v1alpha1",
        "kind": "ClientCertificatePolicy",
        "metadata": {"name": name},
        "spec": {"signerNames": [signer], **spec},
    }


class Requester:
    """A ServiceAccount making CSRs with its own token, as the sidecar does."""

    def __init__(
        self, kube: Any, namespace: str, name: str, directory: Path, pod: dict | None = None
    ) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        }
        items = [account, *requester_rbac(namespace, name)]
        document = {"apiVersion": "v1", "kind": "List", "items": items}
        kube.kubectl("apply", "-f", "-", input=json.dumps(document))
        bound: list[str] = []
        if pod is not None:
            meta = pod["metadata"]
            bound = [
                "--bound-object-kind=Pod",
                f"--bound-object-name={meta['name']}",
                f"--bound-object-uid={meta['uid']}",
            ]
        token = kube.kubectl(
            "create", "token", name, "-n", namespace, "--duration=1h", *bound
        ).stdout.strip()
        self.token_file = directory / f"{namespace}-{name}.token"
        self.token_file.write_text(token)
        self.token_file.chmod(0o600)
        self.client = KubeClient(kube.server, self.token_file, api_ca_file(kube, directory))

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def submit(
        self,
        signer: str,
        common_name: str,
        sans: tuple[San, ...] = (),
        usages: list[str] | None = None,
        days: int = 1,
        key: PrivateKey | None = None,
    ) -> tuple[str, PrivateKey]:
        """Create a CSR; returns its name and the key."""
        key = key or generate_key()
        pem = build_csr(key, Subject(common_name), sans)
        body = csr_object(pem, signer, usages or CLIENT_USAGES, days, "t-")
        return str(self.client.create_csr(body)["metadata"]["name"]), key


def csr(kube: Any, name: str) -> dict:
    return kube.get_json("csr", name)


def condition(obj: dict, type_: str) -> dict | None:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None
    )


def wait_csr(kube: Any, name: str, done: Any, timeout: float = 30.0, message: str = "") -> dict:
    deadline = time.monotonic() + timeout
    obj: dict = {}
    while time.monotonic() < deadline:
        obj = csr(kube, name)
        if done(obj):
            return obj
        time.sleep(0.2)
    raise AssertionError(
        f"timed out waiting for CSR {name} {message}: {json.dumps(obj.get('status'))}"
    )


def signed(obj: dict) -> bool:
    return bool((obj.get("status") or {}).get("certificate"))


def certificates(obj: dict) -> list:
    from cryptography import x509

    return x509.load_pem_x509_certificates(base64.b64decode(obj["status"]["certificate"]))


def start_signer_operator(kube: Any, local_ca: Any, log: Path, *extra: str, **settings: str) -> Any:
    """``kopf run`` of the operator with its CSR signer on (not started yet: ``.start()``). The
    claim lease is short, so a test that kills the operator mid-call need not wait minutes."""
    from support.operator_process import OperatorProcess

    settings = {"signer": "true", "signer_claim_seconds": "3", **settings}
    return OperatorProcess.kopf_run(kube, local_ca, log, "--standalone", *extra, **settings)
