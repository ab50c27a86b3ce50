"""A kubelet node joined to a local control plane: Pods run here for real.

``Node.start(binaries)`` makes the Pod bridge, starts a control plane bound to the bridge's
address (``kubelocal.controlplane``, node mode), its own containerd (``kubelocal.runtime``),
the kubelet and kube-proxy, imports the images, and waits until the Node is Ready and
schedulable. ``stop()`` stops everything and undoes every host change (``kubelocal.hostnet``).

One node per machine: the bridge, kube-proxy's nft tables and the kubelet's fixed paths are
host-wide, so a lock in the cache serializes nodes, and the state file under ``WORKDIR`` lets
the next start undo what a killed owner left. Needs root.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelocal import hostnet, procs, runtime
from kubelocal.binaries import SCRIPTS, Binaries, cache_dir
from kubelocal.controlplane import ControlPlane
from kubelocal.pki import client_cert_user, issue_pair, write_kubeconfig
from kubelocal.procs import KubeError, Process, free_port, spawn, wait_for

NODE_NAME = "lcc-node"
WORKDIR = Path("/run/lcc-node")
LOCK_WAIT = 600.0
# A name server nothing listens on: Pods resolve no name, and never ask the host's DNS.
RESOLV_CONF = "nameserver 127.0.0.1\noptions ndots:1 timeout:1 attempts:1\n"

# command or file -> the Debian package that provides it
REQUIRED = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    f"{runtime.CNI_BIN_DIR}/bridge": "containernetworking-plugins",
    f"{runtime.CNI_BIN_DIR}/host-local": "containernetworking-plugins",
    "nft": "nftables",
    "iptables": "iptables",
    "ip": "iproute2",
}


class NodeError(KubeError):
    """The node cannot start. The message is one line: what is wrong and the fix."""


def node_cache() -> Path:
    return cache_dir() / "node"


def runtime_paths() -> runtime.RuntimePaths:
    return runtime.RuntimePaths(
        root=node_cache() / "containerd",
        state=WORKDIR / "containerd",
        config=WORKDIR / "containerd.toml",
        cni_conf_dir=WORKDIR / "cni",
        ipam_dir=WORKDIR / "ipam",
    )


# --- preflight ---------------------------------------------------------------------------------


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise NodeError(message)


def check_root() -> None:
    _check(
        os.geteuid() == 0,
        "the node needs root (containerd, the kubelet and the Pod bridge change the host): run "
        "the tests as root, or leave the Pod tests out with -m 'not node'",
    )


def preflight(binaries: Binaries) -> None:
    """Every precondition that would otherwise fail deep inside a component, one line each."""
    check_root()
    for path in (binaries.kubelet, binaries.kube_proxy, binaries.scheduler):
        _check(path.is_file(), f"{path} is missing: run scripts/kube/build.sh")
    for need, package in REQUIRED.items():
        found = Path(need).is_file() if need.startswith("/") else shutil.which(need) is not None
        _check(
            found,
            f"{package} is not installed (no {need}): run scripts/kube/node-packages.sh, or "
            f"apt-get install -y {package}",
        )
    docker = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    ) if shutil.which("docker") else None  # fmt: skip
    _check(
        docker is not None and docker.returncode == 0,
        "the Docker engine does not answer (the node's images come from it): run "
        "scripts/docker/engine.sh",
    )
    _check(
        Path("/proc/sys/net/bridge").is_dir(),
        "br_netfilter is not loaded (no /proc/sys/net/bridge), so kube-proxy's rules would miss "
        "Pod to Service traffic: run modprobe br_netfilter",
    )
    _check(
        "overlay" in Path("/proc/filesystems").read_text(),
        "the kernel has no overlay filesystem (containerd's snapshotter): run modprobe overlay",
    )
    _check(
        (hostnet.CGROUP_ROOT / "memory").is_dir()
        or (hostnet.CGROUP_ROOT / "cgroup.controllers").is_file(),
        "no memory cgroup controller is mounted under /sys/fs/cgroup: the kubelet needs one "
        "(mount the cgroup hierarchies, as systemd or cgroupfs-mount does)",
    )
    nft = hostnet.run(["nft", "list", "tables"], check=False)
    _check(
        nft.returncode == 0,
        f"nft cannot list tables ({nft.stderr.strip()}): kube-proxy's nftables mode needs "
        "nf_tables in the kernel (modprobe nf_tables)",
    )
    _check(
        not hostnet.link_exists(hostnet.BRIDGE),
        f"a link named {hostnet.BRIDGE} already exists and no node run owns it: remove it with "
        f"`ip link del {hostnet.BRIDGE}`",
    )
    routes = hostnet.run(["ip", "-o", "route", "show", "match", hostnet.NODE_IP], check=False)
    clash = [r.strip() for r in routes.stdout.splitlines() if not r.startswith("default")]
    _check(
        not clash,
        f"{hostnet.POD_CIDR} (the node's Pod range) is already routed here "
        f"({clash[0] if clash else ''}): remove that route or its device",
    )


# --- the lock and the state of a run -------------------------------------------------------------


def _take_lock(wait: float) -> int:
    node_cache().mkdir(parents=True, exist_ok=True)
    path = node_cache() / "node.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = Path(path).read_text().strip() or "unknown"
            if time.monotonic() >= deadline:
                os.close(fd)
                raise NodeError(
                    f"another node runs on this machine (owner pid {holder}) and one node at a "
                    "time can: wait for it to finish, or stop that process"
                ) from None
            if not told:
                print(f"node: waiting for the node of pid {holder} to stop", file=sys.stderr)
                told = True
            time.sleep(1)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def wait_until_no_node(wait: float = LOCK_WAIT) -> None:
    """Return once no node runs on this machine; for a caller that looks at the host before
    its own node starts (another process may still start one in between)."""
    os.close(_take_lock(wait))


def _write_state(state: dict[str, Any]) -> None:
    tmp = WORKDIR / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(WORKDIR / "state.json")


def _kill_shims(socket: Path) -> None:
    """containerd's shims outlive it by design; ours name our socket on their command line."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and str(socket).encode() in procs.cmdline(int(entry.name)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def sweep_stale_node() -> bool:
    """Undo what a node whose owner died left behind. Call with the lock held (so no live node
    owns WORKDIR). Returns True when there was something to undo."""
    state_file = WORKDIR / "state.json"
    if not WORKDIR.exists():
        return False
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(state_file.read_text())
        for pid in state.get("pids", {}).values():
            if str(WORKDIR).encode() in procs.cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        _kill_shims(runtime_paths().socket)
        runtime.remove_shim_sockets(runtime_paths())
        hostnet.undo(hostnet.HostRecord.from_json(state["record"]))
    hostnet.unmount_all(WORKDIR)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    return True


# --- the node ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """A running node and the control plane it joined. stop() is idempotent."""

    plane: ControlPlane
    binaries: Binaries
    name: str = NODE_NAME
    address: str = hostnet.NODE_IP
    workdir: Path = WORKDIR
    runtime: runtime.RuntimePaths = field(default_factory=runtime_paths)
    record: hostnet.HostRecord = field(default_factory=hostnet.HostRecord)
    sandbox_image: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _procs: list[Process] = field(default_factory=list)
    _lock_fd: int = -1
    _load_error: list[BaseException] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    @property
    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self._procs}

    @property
    def seconds_to_ready(self) -> float:
        return self.timings.get("total", 0.0)

    @classmethod
    def start(
        cls,
        binaries: Binaries,
        images: tuple[str, ...] = (),
        timeout: float = 120.0,
        lock_wait: float = LOCK_WAIT,
    ) -> Node:
        """Start a control plane and a node, import ``images`` from the Docker engine, and
        return once the Node is Ready. Raises NodeError (one line) when it cannot."""
        started = time.monotonic()
        check_root()
        fd = _take_lock(lock_wait)
        try:
            # First undo what a killed run left (a stale bridge would fail the preflight).
            sweep_stale_node()
            preflight(binaries)  # nothing is changed before this passes
            sandbox = _pause_image()
        except BaseException:
            os.close(fd)
            raise
        node = cls(plane=_placeholder_plane(binaries), binaries=binaries, _lock_fd=fd)
        node.sandbox_image = sandbox
        procs.register(node)  # in the main thread: installs the signal handlers too
        try:
            node._boot(images, started, timeout)
        except BaseException as err:
            where = node._keep_logs()
            node.stop()
            if isinstance(err, NodeError | KeyboardInterrupt):
                raise
            raise NodeError(
                f"the node did not start: {one_line(err)} (logs kept in {where})"
            ) from err
        return node

    # --- start ---

    def _state(self) -> dict[str, Any]:
        return {
            "owner": os.getpid(),
            "record": self.record.to_json(),
            "pids": self.pids,
            "plane_workdir": str(self.plane.workdir),
        }

    def _save(self) -> None:
        _write_state(self._state())

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._procs.append(spawn(name, argv, self.workdir))
        self._save()

    def _boot(self, images: tuple[str, ...], started: float, timeout: float) -> None:
        def lap(name: str, since: float) -> float:
            now = time.monotonic()
            self.timings[name] = round(now - since, 3)
            return now

        t = time.monotonic()
        self.record = hostnet.snapshot()
        self.workdir.mkdir(mode=0o755, parents=True)
        self._save()
        hostnet.create_bridge(self.record)
        self._save()
        hostnet.allow_forwarding(self.record)
        self._save()
        hostnet.set_node_sysctls()
        t = lap("host", t)

        # containerd and the image imports go on while the control plane starts. The control
        # plane starts in this thread: a process's PR_SET_PDEATHSIG fires when the *thread*
        # that started it ends.
        rt = self.runtime
        runtime.prepare_root(rt)
        runtime.write_configs(rt, runtime.cri_name(self.sandbox_image))
        self._spawn("containerd", ["containerd", "--config", str(rt.config)])
        loader = threading.Thread(
            target=self._load_images, args=((self.sandbox_image, *images),), daemon=True
        )
        loader.start()
        self.plane = ControlPlane.start(self.binaries, timeout=timeout, node_address=self.address)
        self._save()
        t = lap("control_plane", t)
        loader.join(timeout)
        if loader.is_alive() or self._load_error:
            raise self._load_error[0] if self._load_error else NodeError("image import timed out")
        t = lap("images_after_control_plane", t)

        self._start_kubelet_and_proxy()
        self._wait(self._ready, f"node {self.name} to be Ready and schedulable", timeout=timeout)
        lap("kubelet_to_ready", t)
        self.timings["total"] = round(time.monotonic() - started, 3)

    def _start_kubelet_and_proxy(self) -> None:
        pki = self.plane.pki
        assert pki is not None
        w = self.workdir
        ca = pki.ca_cert.read_bytes()
        client, client_key = issue_pair(pki, "kubelet-client", f"system:node:{self.name}",
                                        "system:nodes")  # fmt: skip
        serving, serving_key = issue_pair(
            pki, "kubelet-serving", self.name, server_names=(self.name, self.address)
        )
        kubelet_kubeconfig = write_kubeconfig(
            w / "kubelet.kubeconfig", self.plane.server, ca, client_cert_user(client, client_key)
        )
        proxy_kubeconfig = self.plane.component_kubeconfig("kube-proxy", "system:kube-proxy")
        self.ports = {
            "kubelet": free_port(self.address),
            "kubelet-healthz": free_port(),
            "kube-proxy-healthz": free_port(),
            "kube-proxy-metrics": free_port(),
        }
        (w / "resolv.conf").write_text(RESOLV_CONF)
        (w / "kubelet.json").write_text(
            json.dumps(self._kubelet_config(pki.ca_cert, serving, serving_key), indent=2)
        )
        (w / "kube-proxy.json").write_text(json.dumps(self._proxy_config(proxy_kubeconfig)))
        self._spawn(
            "kubelet",
            [
                str(self.binaries.kubelet),
                f"--config={w / 'kubelet.json'}",
                f"--kubeconfig={kubelet_kubeconfig}",
                f"--root-dir={w / 'kubelet'}",
                f"--cert-dir={w / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.address}",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-proxy",
            [str(self.binaries.kube_proxy), f"--config={w / 'kube-proxy.json'}", "--v=1"],
        )

    def _kubelet_config(self, ca: Path, cert: Path, key: Path) -> dict[str, Any]:
        w = self.workdir
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.address,
            "port": self.ports["kubelet"],
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.ports["kubelet-healthz"],
            "tlsCertFile": str(cert),
            "tlsPrivateKeyFile": str(key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.runtime.socket}",
            # cgroup v1 here and no systemd as PID 1.
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            # Setting a negative oom_score_adj needs CAP_SYS_RESOURCE, which this VM withholds.
            "oomScoreAdj": 0,
            # Images cannot be pulled again once collected; evict only when truly out of room.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "resolvConf": str(w / "resolv.conf"),
            "clusterDomain": "cluster.local",
            # Secret and ConfigMap volumes refresh within 10-14 s instead of 74-89 s.
            "syncFrequency": "10s",
            "volumePluginDir": str(w / "volume-plugins"),
            "podLogsDir": str(w / "pod-logs"),
            "serializeImagePulls": False,
            "shutdownGracePeriod": "0s",
        }

    def _proxy_config(self, kubeconfig: Path) -> dict[str, Any]:
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "nftables",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": self.name,
            "clusterCIDR": hostnet.POD_CIDR,
            "bindAddress": self.address,
            "healthzBindAddress": f"127.0.0.1:{self.ports['kube-proxy-healthz']}",
            "metricsBindAddress": f"127.0.0.1:{self.ports['kube-proxy-metrics']}",
            "nodePortAddresses": [f"{self.address}/32"],
            "oomScoreAdj": 0,
            # Zero: leave the host's conntrack settings as they are.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
                "udpTimeout": "0s",
                "udpStreamTimeout": "0s",
            },
        }

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def _ready(self) -> bool:
        got = self.kubectl("get", "node", self.name, "-o", "json")
        if got.returncode != 0:
            return False
        node = json.loads(got.stdout)
        conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        taints = [t for t in node["spec"].get("taints", []) if t["effect"] != "PreferNoSchedule"]
        proxy = f"http://127.0.0.1:{self.ports['kube-proxy-healthz']}/healthz"
        return conditions.get("Ready") == "True" and not taints and _http_ok(proxy)

    def _wait(self, predicate: Callable[[], bool], what: str, timeout: float) -> None:
        def check() -> bool:
            procs.check_alive(self._procs)
            self.plane.check_alive()
            return predicate()

        try:
            wait_for(check, timeout, 0.2, what, ignore=(OSError, ValueError))
        except TimeoutError as err:
            raise NodeError(str(err)) from None

    def _load_images(self, images: tuple[str, ...]) -> None:
        """Wait for containerd, then import the images (in a thread, beside the control plane)."""
        try:
            rt = self.runtime
            began = time.monotonic()
            wait_for(
                lambda: rt.socket.exists() and runtime.ctr(rt, "version").returncode == 0,
                30,
                0.1,
                "containerd to answer",
            )
            self.timings["containerd"] = round(time.monotonic() - began, 3)
            for image in images:
                runtime.import_image(rt, image)
            self.timings["images"] = round(time.monotonic() - began, 3)
        except BaseException as err:  # handed to the starting thread
            self._load_error.append(err)

    # --- use ---

    def load_image(self, tag: str) -> str:
        """Make a Docker engine image available to Pods (imported once per image id)."""
        runtime.import_image(self.runtime, tag)
        return tag

    # --- stop ---

    def _keep_logs(self) -> Path:
        """Copy every log of this run where a stop will not delete it."""
        keep = node_cache() / "last-failure"
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for directory in (self.workdir, self.plane.workdir):
            for log in directory.glob("*.log") if directory.exists() else ():
                with contextlib.suppress(OSError):
                    shutil.copy(log, keep / log.name)
        return keep

    def stop(self, grace: float = 5.0) -> None:
        """Stop the node and its control plane; undo every change to the host."""
        if not procs.is_registered(self):
            return
        began = time.monotonic()
        by_name = {p.name: p for p in self._procs}
        for name in ("kubelet", "kube-proxy"):
            if name in by_name:
                procs.signal_group(by_name[name], signal.SIGTERM)
        for name in ("kubelet", "kube-proxy"):
            if name in by_name:
                procs.stop_process(by_name[name], grace)
        hostnet.kill_pod_processes()
        clean = False
        containerd = by_name.get("containerd")
        if containerd and containerd.popen.poll() is None:
            runtime.remove_all_containers(self.runtime)
            procs.stop_process(containerd, grace)
            clean = containerd.popen.returncode == 0
        _kill_shims(self.runtime.socket)
        runtime.remove_shim_sockets(self.runtime)
        hostnet.unmount_all(self.workdir, self.runtime.root)
        hostnet.undo(self.record)
        if clean:
            runtime.mark_root_clean(self.runtime)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.plane.stop()
        procs.unregister(self)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self.timings["stop"] = round(time.monotonic() - began, 3)

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def one_line(err: BaseException) -> str:
    """A component's failure in one line: what failed, and the log line that says why (a
    process that died is reported with the last lines of its log)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    lines[0] = lines[0].split("; last lines of")[0]
    why = next(
        (line for line in reversed(lines[1:]) if re.search(r"in use|error|fail|fatal", line, re.I)),
        None,
    )
    if why and "address already in use" in why:
        return f"{lines[0]}: a port it needs is taken: {why[:240]}"
    return f"{lines[0]}: {why[:240]}" if why else lines[0]


def _http_ok(url: str) -> bool:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _pause_image() -> str:
    script = SCRIPTS / "pause-image.sh"
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise NodeError(lines[-1] if lines else f"{script} exited {done.returncode}")
    return done.stdout.strip().splitlines()[-1]


def _placeholder_plane(binaries: Binaries) -> ControlPlane:
    """Until the real one is up: a stopped control plane that stop() may safely 'stop'."""
    return ControlPlane(
        workdir=WORKDIR / "no-control-plane-yet",
        kubeconfig=WORKDIR / "no-control-plane-yet" / "kubeconfig",
        server="",
        ports={},
        binaries=binaries,
    )
