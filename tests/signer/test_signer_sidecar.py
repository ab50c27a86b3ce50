"""cert-sidecar with CERT_SIDECAR_ISSUER=kubernetes against the real API server and the operator's
signer: no AWS settings at all (and a boto3 that cannot be imported), a certificate and its
renewals written to /certs, a denial reported clearly. On the host, the ServiceAccount token and
the trust bundle ConfigMap are files as kubelet would project them; tests/pods runs it in Pods."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from support.csr_requests import api_ca_file

from cacore.certinfo import chain_problem, key_matches
from cacore.edge.files import read_credential_set
from cacore.keys import load_private_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sidecar"))
from sidecar_process import ROOT, Sidecar, log_lines  # noqa: E402  (tests/sidecar's helpers)

pytestmark = pytest.mark.timeout(180)

_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Projection:
    """What kubelet does for a ConfigMap volume: the ConfigMap's keys as files, kept current."""

    def __init__(self, kube, namespace: str, name: str, directory: Path) -> None:
        self.kube, self.namespace, self.name, self.directory = kube, namespace, name, directory
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            found = self.kube.kubectl(
                "get", "configmap", self.name, "-n", self.namespace,
                "-o", "jsonpath={.data}", check=False,
            )  # fmt: skip
            if found.returncode != 0 or not found.stdout.strip():
                continue
            import json

            for key, value in json.loads(found.stdout).items():
                tmp = self.directory / f".{key}.tmp"
                tmp.write_text(value)
                os.replace(tmp, self.directory / key)

    def __enter__(self) -> Projection:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def no_boto3(tmp_path):
    """A boto3 that fails on import: the kubernetes issuer must never load it."""
    fake = tmp_path / "fake-site" / "boto3"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ImportError('boto3 was imported by the kubernetes issuer')\n"
    )
    return fake.parent


def kube_settings(cluster, requester, signer, tmp_path, bundle_dir, lambdaca, **more):
    return dict(
        issuer="kubernetes",
        signer_name=signer,
        kube_api_url=cluster.server,
        kube_token_file=requester.token_file,
        kube_ca_file=api_ca_file(cluster, tmp_path),
        trust_bundle_file=bundle_dir / f"{lambdaca}.crt",
        output_dir=tmp_path / "certs",
        **more,
    )


def no_aws_env(no_boto3):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBERNETES_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(no_boto3), str(ROOT)])
    return SimpleNamespace(env=env)


def serial_on_disk(directory: Path) -> int | None:
    files = read_credential_set(directory)
    if not files or "tls.crt" not in files:
        return None
    leaf, issuing = x509.load_pem_x509_certificates(files["tls.crt"])
    ca = x509.load_pem_x509_certificates(files["ca.crt"])
    assert key_matches(leaf, load_private_key(files["tls.key"]))
    assert chain_problem(leaf, [issuing, ca[-1]]) is None
    return leaf.serial_number


def test_a_sidecar_without_aws_gets_a_certificate_and_renews_it(
    cluster, operator, policy, requester, kube_namespace, signer, lambdaca, tmp_path, no_boto3
):
    policy()
    api = requester("api")
    bundle_dir = tmp_path / "bundle"
    settings = kube_settings(
        cluster, api, signer, tmp_path, bundle_dir, lambdaca,
        common_name=f"api.{kube_namespace}.svc",
        sans=f"api.{kube_namespace}.svc",
        lifetime_days=1,
        renewal_point="0.0001",  # always due ...
        min_renewal_interval="3s",  # ... but not more often than every 3 s
        listen="127.0.0.1:0",
    )  # fmt: skip
    with Projection(cluster, kube_namespace, "clientcert-ca-bundle", bundle_dir):
        sidecar = Sidecar(no_aws_env(no_boto3), tmp_path / "sidecar.log", **settings).start()
        try:
            sidecar.wait_for_log(lambda e: e.get("message") == "certificate issued", 60, count=2)
            serials = {
                e["serial"] for e in sidecar.logs() if e.get("message") == "certificate issued"
            }
            assert len(serials) >= 2, "renewed with a new certificate"
            assert str(serial_on_disk(tmp_path / "certs")) in serials
            requested = [e for e in sidecar.logs() if e.get("message") == "certificate requested"]
            assert len(requested) >= 2 and all(e["signer"] == signer for e in requested)
        finally:
            sidecar.stop()
    text = (tmp_path / "sidecar.log").read_text()
    assert "boto3 was imported" not in text and "Traceback" not in text


def test_a_denied_request_is_reported_and_once_exits_1(
    cluster, operator, policy, requester, kube_namespace, signer, lambdaca, tmp_path, no_boto3
):
    name = policy()
    api = requester("api")
    settings = kube_settings(
        cluster, api, signer, tmp_path, tmp_path / "bundle", lambdaca,
        common_name=f"someone-else.{kube_namespace}.svc", log_level="info",
    )  # fmt: skip
    env = no_aws_env(no_boto3).env
    env.update({f"CERT_SIDECAR_{k.upper()}": str(v) for k, v in settings.items()})
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "once"],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    denial = [e for e in log_lines(done.stderr) if e.get("message") == "certificate request denied"]
    assert denial and denial[0]["reason"] == "PolicyViolation"
    assert f'ClientCertificatePolicy "{name}": spec.subject.commonName' in (denial[0]["detail"])
    assert "cert-sidecar: Denied: PolicyViolation" in done.stderr


def test_a_denied_sidecar_keeps_running_and_is_not_ready(
    cluster, operator, requester, kube_namespace, signer, lambdaca, tmp_path, no_boto3
):
    api = requester("loner")  # no policy names it
    settings = kube_settings(
        cluster, api, signer, tmp_path, tmp_path / "bundle", lambdaca,
        common_name=f"loner.{kube_namespace}.svc", listen="127.0.0.1:0", log_level="info",
    )  # fmt: skip
    sidecar = Sidecar(no_aws_env(no_boto3), tmp_path / "sidecar.log", **settings).start()
    try:
        found = sidecar.wait_for_log(lambda e: e.get("message") == "certificate request denied")
        assert found[0]["reason"] == "NoMatchingPolicy"
        started = sidecar.wait_for_log(lambda e: e.get("message") == "starting")[0]
        port = started["listen"].rsplit(":", 1)[1]
        try:
            _no_proxy.open(f"http://127.0.0.1:{port}/readyz", timeout=5)
            raise AssertionError("/readyz answered 200 without a certificate")
        except urllib.error.HTTPError as error:
            assert error.code == 503
        assert sidecar.proc.poll() is None, "run keeps going after a denial (backing off)"
    finally:
        sidecar.stop()


def test_a_pending_request_is_waited_on_not_multiplied(
    cluster, operator, policy, requester, kube_namespace, signer, lambdaca, tmp_path, no_boto3
):
    policy(approval="Manual")
    api = requester("api")
    settings = kube_settings(
        cluster, api, signer, tmp_path, tmp_path / "bundle", lambdaca,
        common_name=f"api.{kube_namespace}.svc", csr_timeout="2s", once_timeout="7s",
        backoff_base="1s", backoff_cap="1s", log_level="info",
    )  # fmt: skip
    env = no_aws_env(no_boto3).env
    env.update({f"CERT_SIDECAR_{k.upper()}": str(v) for k, v in settings.items()})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "once"],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 1
    assert time.monotonic() - started >= 6
    # The deadline may fall in a backoff or mid-attempt; either way the last Pending is relayed.
    assert "gave up after 7 s" in done.stderr
    assert "Pending:" in done.stderr
    assert "kubectl certificate approve" in done.stderr  # the approver's instruction, relayed
    mine = [c for c in cluster.get_json("csr")["items"] if c["spec"]["username"] == api.username]
    assert len(mine) == 1, "every attempt waited on the same CSR"
