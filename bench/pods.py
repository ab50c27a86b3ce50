"""Pods on the local node: create -> Ready without a sidecar (baseline), with the native sidecar
and with the init-container form, the sidecar container's memory, and the node's start.

    python bench/pods.py [--pods 20]

Starts its own node (kubelocal.node; root), local CA and Docker images (the sidecar image is
built from this checkout on the local base, as the tests build it). The three kinds of Pod are
the example app chart's Pod (helm template) with a plain long-running app container, so the
only difference is the sidecar; they are created one at a time, in turns, so that the baseline
shares the run's conditions. create -> Ready runs from the POST of the Pod to the first poll
(every 20 ms) that sees its Ready condition True.

By default each Pod is created just after the previous one turned Ready, which is just after a
tick of the kubelet's 1 s PLEG relist: every Pod starts at the same point of that tick, so the
figures land on whole seconds. `--random-phase` waits a random 0-1 s before each Pod instead,
as Pods created by people and controllers do: the figures then average over the tick.

Extra cold build time of the node comes from `scripts/kube/build.sh --measure-node-cost`
(run it once; it takes as long as a cold build) and is read from its record.

Targets: sidecar added time p50 <= 1.0 s; sidecar container memory <= 60 MB.
Prints a readable report, then one JSON line with all figures (the last line of output).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from kubelocal.binaries import ensure_binaries, read_versions
from kubelocal.handle import Kube
from kubelocal.node import Node
from kubelocal.runtime import ctr

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from support.docker_fixtures import proxy_ca_pem  # noqa: E402
from support.localca_fixtures import LocalCA  # noqa: E402

SIDECAR_TAG = "lcc-sidecar:test"  # the tests' tag: one image, imported into the node once
NAMESPACE = "bench-pods"
TARGET_ADDED_S, TARGET_MEMORY_MB = 1.0, 60.0
APP = "import signal, time\nsignal.signal(signal.SIGTERM, lambda *_: exit(0))\ntime.sleep(10**9)\n"


def sh(*argv: str, input: str | None = None) -> str:
    done = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {done.stderr[-2000:]}")
    return done.stdout


def build_sidecar_image() -> str:
    sh("bash", str(ROOT / "scripts/docker/engine.sh"))
    base = sh("bash", str(ROOT / "scripts/docker/base-image.sh")).strip().splitlines()[-1]
    ca_pem = proxy_ca_pem()
    sh("docker", "build", "-q", "--build-arg", f"BASE_IMAGE={base}",
       "--build-arg", f"PIP_CA_PEM={ca_pem}", "--tag", SIDECAR_TAG, str(ROOT))  # fmt: skip
    return SIDECAR_TAG


class Api:
    """Direct calls to the API server with the admin certificate: polling through kubectl
    would cost ~100 ms a look."""

    def __init__(self, node: Node) -> None:
        pki = node.plane.pki
        assert pki is not None
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self.server = node.plane.server
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with self.opener.open(request, timeout=30) as response:
            return json.load(response)


def pod_specs(kube: Kube, ca: LocalCA, image: str, scratch: Path) -> dict[str, dict[str, Any]]:
    """The example app's Pod spec per kind, the app container replaced by a plain sleeper."""
    charts = scratch / "charts"
    for name in ("cert-sidecar", "example-app"):
        shutil.copytree(
            ROOT / "charts" / name, charts / name, ignore=shutil.ignore_patterns("charts")
        )
    kube.helm("dependency", "build", str(charts / "example-app"))
    repository, _, tag = image.rpartition(":")
    specs = {}
    for form in ("native", "init"):
        values = {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "cert-sidecar": {
                "form": form,
                "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
                "ca": {"function": ca.function_name, "region": ca.region,
                       "endpointUrl": ca.endpoint_url},
                "certificate": {"commonName": "bench.example.com"},
                "extraEnv": [
                    {"name": "AWS_ACCESS_KEY_ID", "value": ca.access_key_id},
                    {"name": "AWS_SECRET_ACCESS_KEY", "value": ca.secret_access_key},
                    {"name": "AWS_REGION", "value": ca.region},
                ],
            },
        }  # fmt: skip
        path = scratch / f"{form}.yaml"
        path.write_text(yaml.safe_dump(values))
        rendered = kube.helm("template", "bench", str(charts / "example-app"),
                             "--namespace", NAMESPACE, "--values", str(path)).stdout  # fmt: skip
        spec = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
        pod = spec["spec"]["template"]["spec"]
        pod["serviceAccountName"] = "default"
        app = pod["containers"][0]
        app["command"] = ["python", "-c", APP]
        app.pop("readinessProbe", None)
        specs[form] = pod
    baseline = json.loads(json.dumps(specs["native"]))
    baseline.pop("initContainers")
    specs["baseline"] = baseline
    return specs


def create_to_ready(api: Api, name: str, spec: dict[str, Any], timeout: float = 120) -> float:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    started = time.monotonic()
    api.call("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", body)
    while time.monotonic() - started < timeout:
        pod = api.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
        for condition in pod.get("status", {}).get("conditions", []):
            if condition["type"] == "Ready" and condition["status"] == "True":
                return time.monotonic() - started
        time.sleep(0.02)
    raise RuntimeError(f"Pod {name} not Ready in {timeout} s")


def sidecar_memory_mb(node: Node, api: Api, name: str) -> dict[str, float]:
    """Working set (usage minus inactive file cache, as the kubelet counts it) and RSS of the
    cert-sidecar container, from its memory cgroup."""
    pod = api.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
    status = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == "cert-sidecar")
    container_id = status["containerID"].split("://", 1)[1]
    tasks = ctr(node.runtime, "tasks", "ls").stdout.splitlines()[1:]
    pid = next(int(t.split()[1]) for t in tasks if t.split()[0] == container_id)
    memory_path = next(
        line.split(":", 2)[2]
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if line.split(":")[1] == "memory"
    )
    cgroup = Path("/sys/fs/cgroup/memory") / memory_path.lstrip("/")
    stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
    usage = int((cgroup / "memory.usage_in_bytes").read_text())
    working_set = usage - int(stat.get("total_inactive_file", 0))
    return {"working_set": working_set / 2**20, "rss": int(stat["total_rss"]) / 2**20}


def sidecar_own_seconds(kube: Kube, pod: str, container: str) -> float:
    """From the sidecar's first log line to "certificate issued", by its own clock: its share
    of the added time (Python's start before the first line is not in it)."""
    lines = kube.kubectl("logs", pod, "-n", NAMESPACE, "-c", container).stdout.splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    issued = next(r for r in records if r.get("message") == "certificate issued")

    def at(record: dict[str, Any]) -> float:
        return datetime.fromisoformat(record["time"]).timestamp()

    return at(issued) - at(records[0])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20, help="Pods of each kind (1-50)")
    parser.add_argument(
        "--random-phase", action="store_true",
        help="wait a random 0-1 s before each Pod (default: create it as the last is Ready)",
    )  # fmt: skip
    args = parser.parse_args()
    if not 1 <= args.pods <= 50:
        parser.error("--pods must be between 1 and 50")

    binaries = ensure_binaries()
    image = build_sidecar_image()
    scratch = Path(tempfile.mkdtemp(prefix="lcc-bench-pods-"))
    node = Node.start(binaries)
    try:
        warm_start = node.timings["total"]
        began = time.monotonic()
        node.load_image(image)
        image_import = time.monotonic() - began
        kube = Kube.create(node.kubeconfig, binaries.tools_bin, node.plane.workdir)
        ca = LocalCA(scratch / "ca", extra_args=["--host", node.address, "--allow-remote"]).start()
        try:
            kube.kubectl("create", "namespace", NAMESPACE)
            kube.wait_for(lambda: kube.kubectl("get", "sa", "default", "-n", NAMESPACE,
                                               check=False).returncode == 0)  # fmt: skip
            specs = pod_specs(kube, ca, image, scratch)
            api = Api(node)
            kinds = ("baseline", "native", "init")
            times: dict[str, list[float]] = {k: [] for k in kinds}
            for i in range(args.pods):
                for kind in kinds:  # in turns: drift on a shared machine hits all three alike
                    if args.random_phase:
                        time.sleep(random.uniform(0, 1))
                    times[kind].append(create_to_ready(api, f"{kind}-{i}", specs[kind]))
            time.sleep(5)  # settled: the first issuance and its imports are behind them
            memory = [sidecar_memory_mb(node, api, f"native-{i}") for i in range(args.pods)]
            own = {
                "native": [sidecar_own_seconds(kube, f"native-{i}", "cert-sidecar")
                           for i in range(args.pods)],
                "init": [sidecar_own_seconds(kube, f"init-{i}", "cert-sidecar-init")
                         for i in range(args.pods)],
            }  # fmt: skip
            issued = ca.stats()["issued"]
        finally:
            ca.stop()
    finally:
        node.stop()
    cost_file = binaries.kube_bin.parent / "node-cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.exists() else {}

    p50 = {k: statistics.median(v) for k, v in times.items()}
    p95 = {k: percentile(v, 95) for k, v in times.items()}
    figures = {
        "bench": "pods",
        "kubernetes": read_versions()["KUBE_VERSION"],
        "pods_per_kind": args.pods,
        "created": "at a random phase" if args.random_phase else "as the previous Pod is Ready",
        "create_to_ready_p50_s": {k: round(v, 3) for k, v in p50.items()},
        "create_to_ready_p95_s": {k: round(v, 3) for k, v in p95.items()},
        "added_p50_s": {k: round(p50[k] - p50["baseline"], 3) for k in ("native", "init")},
        "added_p95_s": {k: round(p95[k] - p95["baseline"], 3) for k in ("native", "init")},
        "sidecar_first_log_to_issued_p50_s": {
            k: round(statistics.median(v), 3) for k, v in own.items()
        },
        "sidecar_working_set_mb": {
            "median": round(statistics.median(m["working_set"] for m in memory), 1),
            "max": round(max(m["working_set"] for m in memory), 1),
        },
        "sidecar_rss_mb_median": round(statistics.median(m["rss"] for m in memory), 1),
        "ca_issued": issued,
        "node_warm_start_s": warm_start,
        "node_start_breakdown_s": {k: v for k, v in node.timings.items() if k != "total"},
        "image_import_s": round(image_import, 2),
        "cold_build": cost or None,  # scripts/kube/build.sh --measure-node-cost
        "targets": {"added_p50_s": TARGET_ADDED_S, "sidecar_memory_mb": TARGET_MEMORY_MB},
    }
    print(f"Pods created {figures['created']}")
    print(f"node warm start (start -> Node Ready): {warm_start:.2f} s; "
          f"sidecar image import {image_import:.2f} s")  # fmt: skip
    for kind in ("baseline", "native", "init"):
        added = "" if kind == "baseline" else (
            f", added p50 {p50[kind] - p50['baseline']:+.3f} s (target <= {TARGET_ADDED_S} s)"
        )  # fmt: skip
        print(f"{kind:8} create -> Ready p50 {p50[kind]:.3f} s, p95 {p95[kind]:.3f} s{added}")
    own_p50 = figures["sidecar_first_log_to_issued_p50_s"]
    print(f"the sidecar's own part (first log line -> certificate issued) p50: native "
          f"{own_p50['native']} s, init {own_p50['init']} s; the rest of the added time is the "
          "kubelet's (whole 1 s PLEG relist rounds)")  # fmt: skip
    ws = figures["sidecar_working_set_mb"]
    print(f"sidecar container memory (cgroup working set): median {ws['median']} MB, "
          f"max {ws['max']} MB (target <= {TARGET_MEMORY_MB} MB)")  # fmt: skip
    if cost:
        print(
            f"cold compile (build.sh --measure-node-cost, {cost['cores']} cores, load "
            f"{cost.get('load_average', '?')}): control plane {cost['control_plane_cold_s']} s "
            f"wall / {cost.get('control_plane_cpu_s', '?')} CPU s; the node adds "
            f"{cost['node_extra_cold_s']} s wall / {cost.get('node_extra_cpu_s', '?')} CPU s"
        )
    else:
        print("cold compile: not measured yet (scripts/kube/build.sh --measure-node-cost)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
