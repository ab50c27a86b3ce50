"""A real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager.

Run the way controller-runtime's envtest runs it: temporary data, free loopback ports, no
kubelet. Given a node address (``node_address``, the bridge a ``kubelocal.node.Node`` made) it
runs the way a cluster with a node needs it instead: the API server on that address (Pods
reach it there and through the ``kubernetes`` Service), ServiceAccount, NodeRestriction and
PodSecurity admission, a client certificate for calls to the kubelet, the controllers that
Deployments, ServiceAccount tokens and node readiness need, and kube-scheduler.

Used through kubelocal.handle by tests/support/kube_fixtures.py, by scripts/kube/up.py and by
the benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubelocal import procs
from kubelocal.binaries import Binaries
from kubelocal.pki import Pki, client_cert_user, issue_pair, make_pki, write_kubeconfig
from kubelocal.procs import KubeError, PortTaken, Process, free_port, spawn, wait_for

WORKDIR_PREFIX = "lcc-kube-"
# Controllers that make the API behave like a cluster's: ownerReference GC, namespace
# deletion, default ServiceAccounts, Deployments producing ReplicaSets and (Pending) Pods.
CONTROLLERS = ("garbagecollector", "namespace", "serviceaccount", "deployment", "replicaset")
# With a node: the kube-root-ca.crt ConfigMap that token volumes mount, the not-ready taint
# lifted once the node is Ready, EndpointSlices for kube-proxy, and orphaned Pods collected.
NODE_CONTROLLERS = ("root-ca-cert-publisher", "nodelifecycle", "endpointslice", "podgc")
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
START_ATTEMPTS = 3
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
FEATURE_GATES = "ClusterTrustBundle=true"
RUNTIME_CONFIG = "certificates.k8s.io/v1beta1/clustertrustbundles=true"


def sweep_stale_workdirs(tmp: Path | None = None) -> list[Path]:
    """Remove work dirs of control planes whose owner died, killing any process still in them."""
    removed = []
    for workdir in Path(tmp or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if procs.pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            for pid in json.loads((workdir / "pids.json").read_text()).values():
                # Only a process whose command line names this work dir: pids get reused.
                if str(workdir).encode() in procs.cmdline(pid):
                    os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(workdir)
    return removed


@dataclass(eq=False)
class ControlPlane:
    """A running control plane. Start with ControlPlane.start(); stop() is idempotent."""

    workdir: Path
    kubeconfig: Path
    server: str
    ports: dict[str, int]
    binaries: Binaries
    node_address: str | None = None
    pki: Pki | None = None
    seconds_to_ready: float = 0.0
    _procs: list[Process] = field(default_factory=list)
    keep_workdir: bool = False

    @property
    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self._procs}

    @property
    def address(self) -> str:
        return self.node_address or "127.0.0.1"

    @classmethod
    def start(
        cls,
        binaries: Binaries,
        timeout: float = 90.0,
        keep_workdir: bool = False,
        wait_for_controllers: bool = True,
        node_address: str | None = None,
    ) -> ControlPlane:
        sweep_stale_workdirs()
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return cls._start_once(
                    binaries, timeout, keep_workdir, wait_for_controllers, node_address
                )
            except PortTaken:
                # A free port was taken by someone else between probing it and binding it.
                if attempt == START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _start_once(
        cls,
        binaries: Binaries,
        timeout: float,
        keep_workdir: bool,
        wait_for_controllers: bool,
        node_address: str | None,
    ) -> ControlPlane:
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        (workdir / "owner.pid").write_text(str(os.getpid()))
        address = node_address or "127.0.0.1"
        ports = {"etcd": free_port(), "etcd-peer": free_port(), "apiserver": free_port(address)}
        plane = cls(
            workdir=workdir,
            kubeconfig=workdir / "kubeconfig",
            server=f"https://{address}:{ports['apiserver']}",
            ports=ports,
            binaries=binaries,
            node_address=node_address,
            keep_workdir=keep_workdir,
        )
        procs.register(plane)
        try:
            plane._boot(timeout, wait_for_controllers)
        except BaseException:
            plane.stop()
            raise
        return plane

    def _record_pids(self) -> None:
        (self.workdir / "pids.json").write_text(json.dumps(self.pids))

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._procs.append(spawn(name, argv, self.workdir))
        self._record_pids()

    def component_kubeconfig(self, name: str, user: str, group: str | None = None) -> Path:
        """A kubeconfig for a component acting as `user` (client certificate from the CA)."""
        assert self.pki is not None
        cert, key = issue_pair(self.pki, name, user, group)
        return write_kubeconfig(
            self.workdir / f"{name}.kubeconfig",
            self.server,
            self.pki.ca_cert.read_bytes(),
            client_cert_user(cert, key),
        )

    def _boot(self, timeout: float, wait_for_controllers: bool) -> None:
        started = time.monotonic()
        b, w, p = self.binaries, self.workdir, self.ports
        node = self.node_address
        self.pki = pki = make_pki(w / "pki", server_ips=(node,) if node else ())
        admin = client_cert_user(pki.admin_cert, pki.admin_key)
        write_kubeconfig(self.kubeconfig, self.server, pki.ca_cert.read_bytes(), admin)
        kcm_user = client_cert_user(pki.kcm_cert, pki.kcm_key)
        kcm_config = write_kubeconfig(
            w / "kcm.kubeconfig", self.server, pki.ca_cert.read_bytes(), kcm_user
        )
        etcd_url = f"http://127.0.0.1:{p['etcd']}"
        peer_url = f"http://127.0.0.1:{p['etcd-peer']}"
        self._spawn(
            "etcd",
            [
                str(b.etcd),
                f"--data-dir={w / 'etcd'}",
                "--name=default",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                # Throwaway data: durability only costs time here.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        # The apiserver retries etcd itself, so both start at once.
        self._spawn("kube-apiserver", [str(b.apiserver), *self._apiserver_flags(pki, etcd_url)])
        self._wait_ready(pki, started, timeout)
        self.seconds_to_ready = time.monotonic() - started
        controllers = CONTROLLERS + (NODE_CONTROLLERS if node else ())
        self._spawn(
            "kube-controller-manager",
            [
                str(b.controller_manager),
                f"--kubeconfig={kcm_config}",
                f"--controllers={','.join(controllers)}",
                "--leader-elect=false",
                # No serving endpoint: one less port to collide or leak.
                "--secure-port=0",
                f"--service-account-private-key-file={pki.sa_private}",
                f"--root-ca-file={pki.ca_cert}",
                "--v=1",
            ],
        )
        if node:
            scheduler = self.component_kubeconfig("scheduler", "system:kube-scheduler")
            self._spawn(
                "kube-scheduler",
                [
                    str(b.scheduler),
                    f"--kubeconfig={scheduler}",
                    # Its own identity for delegated authn/authz lookups, or it asks as nobody.
                    f"--authentication-kubeconfig={scheduler}",
                    f"--authorization-kubeconfig={scheduler}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    "--v=1",
                ],
            )
        if wait_for_controllers:
            self._wait_controllers(started, timeout)

    def _apiserver_flags(self, pki: Pki, etcd_url: str) -> list[str]:
        flags = [
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--secure-port={self.ports['apiserver']}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_public}",
            f"--service-account-signing-key-file={pki.sa_private}",
            "--allow-privileged=true",
            # ClusterTrustBundle is beta and off by default in v1.34: the CSR signer
            # publishes its CA certificates there as well as in ConfigMaps.
            f"--feature-gates={FEATURE_GATES}",
            f"--runtime-config={RUNTIME_CONFIG}",
            "--v=1",
        ]
        if not self.node_address:
            # No kubelet mounts tokens, and the Pods stay Pending anyway.
            return [*flags, "--disable-admission-plugins=ServiceAccount"]
        # ServiceAccount and PodSecurity admission are on by default, as in any cluster.
        cert, key = issue_pair(pki, "apiserver-kubelet", "kube-apiserver", "system:masters")
        return [
            *flags,
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={cert}",
            f"--kubelet-client-key={key}",
            f"--kubelet-certificate-authority={pki.ca_cert}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def check_alive(self) -> None:
        procs.check_alive(self._procs)

    def component(self, name: str) -> Process:
        for proc in self._procs:
            if proc.name == name:
                return proc
        raise KeyError(f"no {name} in this control plane")

    def crash(self, name: str) -> None:
        """A crash of one component (the fault tests' etcd or kube-apiserver): SIGKILL its
        process group and reap it."""
        proc = self.component(name)
        procs.signal_group(proc, signal.SIGKILL)
        proc.popen.wait(30)

    def restart(self, name: str) -> None:
        """Start a crashed component again with the same flags, ports and data (the caller
        waits for what it needs: /readyz for the API server)."""
        proc = self.component(name)
        if proc.popen.poll() is None:
            raise KubeError(f"{name} is still running")
        argv = proc.popen.args
        assert isinstance(argv, list)  # spawn() always starts an argv list
        self._procs[self._procs.index(proc)] = spawn(name, argv, self.workdir)
        self._record_pids()

    def _wait_ready(self, pki: Pki, started: float, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        # The API server is ours: never reach it through a proxy from the environment.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
        )

        def ready() -> bool:
            self.check_alive()
            try:
                with opener.open(f"{self.server}/readyz", timeout=2) as r:
                    return bool(r.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        self._wait(ready, started, timeout, "kube-apiserver /readyz", interval=0.1)

    def _wait_controllers(self, started: float, timeout: float) -> None:
        kubectl = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}"]

        def default_sa() -> bool:
            # The serviceaccount controller writing "default" proves the controllers are running.
            self.check_alive()
            argv = [*kubectl, "get", "serviceaccount", "default", "-n", "default", "-o", "name"]
            return subprocess.run(argv, capture_output=True, check=False).returncode == 0

        self._wait(default_sa, started, timeout, "kube-controller-manager", interval=0.2)

    def _wait(
        self,
        predicate: Callable[[], bool],
        started: float,
        timeout: float,
        what: str,
        interval: float,
    ) -> None:
        remaining = max(0.0, timeout - (time.monotonic() - started))
        try:
            # No exception is ignored: a process that died must end the wait at once.
            wait_for(predicate, remaining, interval, what, ignore=())
        except TimeoutError as err:
            logs = "\n".join(f"--- {p.name} ({p.log}):\n{p.tail()}" for p in self._procs)
            raise KubeError(f"{err}\n{logs}") from None

    def stop(self, grace: float = 5.0) -> None:
        """Stop everything (etcd last) and delete the temporary data."""
        if not procs.is_registered(self):
            return
        for proc in reversed(self._procs):
            if proc.name != "etcd":
                procs.signal_group(proc, signal.SIGTERM)
        for proc in reversed(self._procs):
            procs.stop_process(proc, grace)
        procs.unregister(self)
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
