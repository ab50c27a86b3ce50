"""The operator image, run as the chart runs it (non-root, read-only root, no capabilities),
against the real kube-apiserver and the local CA: a ClientCertificate becomes a Secret."""

import base64
import os
import shutil

from cryptography import x509
from support.docker_fixtures import HARDENED, IMAGE_GID, IMAGE_UID
from support.operator_process import (
    apply,
    certificate_manifest,
    condition,
    get,
    install_crds,
    lambdaca_manifest,
    wait_for,
)

from cacore.certinfo import key_matches
from cacore.keys import load_private_key


def test_the_operator_image_issues_a_secret_on_a_real_api_server(
    kube, kube_namespace, ca, docker_engine, operator_image, container_name, tmp_path
):
    install_crds(kube)
    issuer = f"image-{kube_namespace[-8:]}"
    apply(kube, lambdaca_manifest(issuer, ca))
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(kube.kubeconfig, kubeconfig)
    os.chown(kubeconfig, IMAGE_UID, IMAGE_GID)
    os.chmod(kubeconfig, 0o600)
    aws = {name: value for name, value in ca.env.items() if name.startswith("AWS_")}
    env = {**aws, "KUBECONFIG": "/var/run/kubeconfig", "CLIENTCERT_DEFAULT_ISSUER": issuer}
    docker_engine.run(
        "run",
        "--detach",
        "--name",
        container_name,
        *HARDENED,
        "--network",
        "host",
        "--tmpfs",
        "/tmp",
        "-v",
        f"{kubeconfig}:/var/run/kubeconfig:ro",
        *(arg for name, value in env.items() for arg in ("--env", f"{name}={value}")),
        "--entrypoint",
        "clientcert-operator",
        operator_image,
        "--standalone",
        f"--namespace={kube_namespace}",
        "--metrics-port=0",
    )
    try:
        apply(kube, certificate_manifest("imaged", kube_namespace, issuer=None))
        ready = wait_for(
            lambda: (
                condition(get(kube, "clientcertificate", "imaged", kube_namespace)).get("status")
                == "True"
            ),
            timeout=90,
            message="the operator in its container never made the certificate Ready",
        )
        assert ready
        secret = get(kube, "secret", "imaged-tls", kube_namespace)
    except Exception:
        print(docker_engine.run("logs", "--tail", "60", container_name, check=False).stderr)
        raise
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert secret["type"] == "kubernetes.io/tls"
    leaf = x509.load_pem_x509_certificate(data["tls.crt"])
    assert key_matches(leaf, load_private_key(data["tls.key"]))
    uid = docker_engine.run("exec", container_name, "python", "-c", "import os; print(os.getuid())")
    assert uid.stdout.strip() == str(IMAGE_UID)
