"""The session node runs Pods the way a cluster's node does: scheduled by kube-scheduler, started
by the kubelet through containerd, networked by the bridge CNI and kube-proxy, with
ServiceAccount tokens, Secret volumes and PodSecurity admission."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support import pods

from kubelocal.binaries import read_versions

pytestmark = pytest.mark.timeout(300)

SERVE_NAME = (
    "import http.server, socket\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = socket.gethostname().encode()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
)
FETCH = (
    "import sys, urllib.request\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "print(opener.open(sys.argv[1], timeout=5).read().decode())\n"
)


@pytest.fixture(scope="module")
def base(node, base_image):
    """The local Debian base (python3) as a Pod image."""
    return node.load_image(base_image)


def sleeper(name, namespace, image, **extra):
    return pods.pod(name, namespace, [pods.container(name, image, ["sleep", "3600"])], **extra)


def test_the_node_is_ready_and_reports_the_pinned_kubelet(node):
    obj = node.kube.get_json("node", node.name)
    info = obj["status"]["nodeInfo"]
    assert info["kubeletVersion"] == read_versions()["KUBE_VERSION"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    addresses = {a["type"]: a["address"] for a in obj["status"]["addresses"]}
    assert addresses["InternalIP"] == node.address
    conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert not obj["spec"].get("taints")


def test_a_pod_runs_and_kubectl_reaches_it_through_the_kubelet(node, pod_namespace, base):
    kube = node.kube
    script = "print('hello from the pod', flush=True); import time; time.sleep(3600)"
    pods.apply(
        kube,
        pods.pod(
            "hello", pod_namespace, [pods.container("hello", base, ["python3", "-c", script])]
        ),
    )
    obj = pods.wait_ready(kube, pod_namespace, "hello")

    assert obj["spec"]["nodeName"] == node.name
    assert kube.wait_for(lambda: "hello from the pod" in pods.logs(kube, pod_namespace, "hello"))
    assert pods.exec_in(kube, pod_namespace, "hello", "id", "-u").stdout.strip() == str(pods.UID)


def test_pods_reach_a_pod_a_service_and_the_host(node, pod_namespace, base):
    kube = node.kube

    class Host(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"the host")

        def log_message(self, *_args):
            pass

    host = ThreadingHTTPServer((node.address, 0), Host)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    server = pods.pod(
        "server", pod_namespace,
        [pods.container("server", base, ["python3", "-c", SERVE_NAME], ports=[8080])],
    )  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "server", "namespace": pod_namespace},
        "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    pods.apply(kube, server, service, sleeper("client", pod_namespace, base))
    pods.wait_ready(kube, pod_namespace, "server")
    pods.wait_ready(kube, pod_namespace, "client")
    service_ip = pods.get(kube, "service", "server", pod_namespace)["spec"]["clusterIP"]

    def fetch(url):
        return pods.exec_in(
            kube, pod_namespace, "client", "python3", "-c", FETCH, url
        ).stdout.strip()

    try:
        assert fetch(f"http://{pods.ip(kube, pod_namespace, 'server')}:8080/") == "server"
        # kube-proxy (nftables) sends the Service's address to the Pod once its slice is ready.
        assert kube.wait_for(
            lambda: pods.exec_in(
                kube, pod_namespace, "client", "python3", "-c", FETCH, f"http://{service_ip}/",
                check=False,
            ).stdout.strip() == "server",
            timeout=30,
            message="the Service to answer",
        )  # fmt: skip
        assert fetch(f"http://{node.address}:{host.server_address[1]}/") == "the host"
    finally:
        host.shutdown()


def test_a_pod_calls_the_api_server_through_the_kubernetes_service(node, pod_namespace, base):
    kube = node.kube
    pods.apply(kube, sleeper("incluster", pod_namespace, base))
    pods.wait_ready(kube, pod_namespace, "incluster")
    script = (
        "import json, os, ssl, urllib.error, urllib.request\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "ctx = ssl.create_default_context(cafile=sa + '/ca.crt')\n"
        "token = open(sa + '/token').read()\n"
        "base = 'https://%s:%s' % (os.environ['KUBERNETES_SERVICE_HOST'],"
        " os.environ['KUBERNETES_SERVICE_PORT'])\n"
        "def get(path):\n"
        "    auth = {'Authorization': 'Bearer ' + token}\n"
        "    req = urllib.request.Request(base + path, headers=auth)\n"
        "    try:\n"
        "        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:\n"
        "            return r.status, json.load(r)\n"
        "    except urllib.error.HTTPError as e:\n"
        "        return e.code, json.load(e)\n"
        "print(json.dumps([get('/version'), get('/api/v1/namespaces/kube-system/secrets')]))\n"
    )
    out = pods.exec_in(kube, pod_namespace, "incluster", "python3", "-c", script).stdout
    (version_status, version), (secrets_status, refusal) = json.loads(out)

    assert version_status == 200
    assert version["gitVersion"] == read_versions()["KUBE_VERSION"]
    # The token is the Pod's own ServiceAccount's, and RBAC gives it nothing.
    assert secrets_status == 403
    assert f"system:serviceaccount:{pod_namespace}:default" in refusal["message"]


def test_a_restricted_namespace_refuses_a_pod_that_could_escalate(node, pod_namespace, base):
    loose = pods.pod(
        "loose", pod_namespace, [{"name": "loose", "image": base, "command": ["true"]}]
    )
    done = node.kube.kubectl("apply", "-f", "-", input=json.dumps(loose), check=False)
    assert done.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in done.stderr
    assert "allowPrivilegeEscalation != false" in done.stderr


def test_a_secret_volume_follows_the_secret(node, pod_namespace, base):
    kube = node.kube

    def secret(value):
        return {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "conf", "namespace": pod_namespace},
            "stringData": {"value": value},
        }  # fmt: skip

    loop = "while true; do cat /conf/value; echo; sleep 1; done"
    mount = {"name": "conf", "mountPath": "/conf", "readOnly": True}
    watcher = pods.pod(
        "watcher", pod_namespace,
        [pods.container("watcher", base, ["sh", "-c", loop], mounts=[mount])],
        volumes=[{"name": "conf", "secret": {"secretName": "conf"}}],
    )  # fmt: skip
    pods.apply(kube, secret("first"), watcher)
    pods.wait_ready(kube, pod_namespace, "watcher")
    assert kube.wait_for(lambda: "first" in pods.logs(kube, pod_namespace, "watcher"), timeout=30)

    pods.apply(kube, secret("second"))
    # The kubelet's syncFrequency (10 s) bounds the refresh; 60 s leaves room on a busy machine.
    assert kube.wait_for(
        lambda: "second" in pods.logs(kube, pod_namespace, "watcher"),
        timeout=60,
        message="the Secret volume to show the new value",
    )
