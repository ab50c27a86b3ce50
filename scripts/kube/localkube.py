"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Run the way controller-runtime's envtest runs it: no kubelet, temporary data, free ports.
Used through kubehandle.py by tests/support/kube_fixtures.py, and by scripts/kube/up.py
and bench/controlplane.py.

Every process is started in its own session (Ctrl-C in a terminal reaches only the owner,
which then stops them in order), with PR_SET_PDEATHSIG=SIGKILL (they die if the owner is
killed outright), and is stopped from atexit and from SIGTERM/SIGHUP handlers as well.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TypeVar

from kubepki import Pki, client_cert_user, make_pki, write_kubeconfig

HERE = Path(__file__).resolve().parent
WORKDIR_PREFIX = "lcc-kube-"
# Controllers that make the API behave like a cluster's: ownerReference GC, namespace
# deletion, default ServiceAccounts, Deployments producing ReplicaSets and (Pending) Pods.
CONTROLLERS = "garbagecollector,namespace,serviceaccount,deployment,replicaset"
START_ATTEMPTS = 3
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
FEATURE_GATES = "ClusterTrustBundle=true"
RUNTIME_CONFIG = "certificates.k8s.io/v1beta1/clustertrustbundles=true"

T = TypeVar("T")


class KubeError(RuntimeError):
    """The control plane or its tools could not be built, started or used."""


class PortTaken(KubeError):
    """A process could not bind the loopback port picked for it."""


# --- pinned versions and cached binaries ------------------------------------------------------


def read_versions(path: Path = HERE / "versions.env") -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def cache_dir() -> Path:
    if os.environ.get("LCC_CACHE_DIR"):
        return Path(os.environ["LCC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lambda-client-certs"


@dataclass(frozen=True)
class Binaries:
    kube_bin: Path
    tools_bin: Path

    @property
    def etcd(self) -> Path:
        return self.kube_bin / "etcd"

    @property
    def apiserver(self) -> Path:
        return self.kube_bin / "kube-apiserver"

    @property
    def controller_manager(self) -> Path:
        return self.kube_bin / "kube-controller-manager"

    @property
    def kubectl(self) -> Path:
        return self.tools_bin / "kubectl"

    @property
    def helm(self) -> Path:
        return self.tools_bin / "helm"


def _run_setup_script(name: str) -> Path:
    # The scripts' stderr is inherited so a cold build shows its progress where the caller is.
    script = HERE / name
    done = subprocess.run(
        ["bash", str(script), "--print-bin"], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise KubeError(f"{script} failed with exit code {done.returncode}; see its output above")
    return Path(done.stdout.strip().splitlines()[-1])


def ensure_tools() -> Path:
    """kubectl and helm (scripts/kube/tools.sh), fetched into the cache if missing."""
    return _run_setup_script("tools.sh")


def ensure_binaries() -> Binaries:
    """etcd, kube-apiserver, kube-controller-manager (scripts/kube/build.sh) plus the tools."""
    return Binaries(kube_bin=_run_setup_script("build.sh"), tools_bin=ensure_tools())


def binaries_cached() -> bool:
    v = read_versions()
    bin_dir = cache_dir() / "kube" / f"kubernetes-{v['KUBE_VERSION']}-etcd-{v['ETCD_VERSION']}"
    names = ("etcd", "kube-apiserver", "kube-controller-manager")
    return all(os.access(bin_dir / "bin" / n, os.X_OK) for n in names)


# --- small utilities ---------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    interval: float = 0.2,
    message: str = "condition",
    ignore: tuple[type[Exception], ...] = (Exception,),
) -> T:
    """Poll until predicate() returns something truthy and return it; TimeoutError otherwise.

    Exceptions of the `ignore` types count as "not yet" (a poll may fail while the thing
    comes up); any other exception ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except ignore as err:
            last_error = err
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}{detail}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has not collected it yet.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


# --- processes -----------------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup(owner_pid: int) -> Callable[[], None]:
    def setup() -> None:
        # Runs in the child between fork and exec; the setting survives exec.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != owner_pid:
            os._exit(1)

    return setup


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def _spawn(name: str, argv: list[str], workdir: Path) -> _Process:
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
            preexec_fn=_child_setup(os.getpid()),
        )
    return _Process(name, popen, log)


def _stop_process(proc: _Process, grace: float) -> None:
    if proc.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGTERM)
    try:
        proc.popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        # Only while the leader is unreaped is its pid sure to still name this group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait()


_live: set[ControlPlane] = set()
_handlers_installed = False


def _stop_all() -> None:
    for plane in list(_live):
        plane.stop()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        # Never replace a handler someone else installed.
        with contextlib.suppress(ValueError):  # not the main thread
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _on_signal)


def sweep_stale_workdirs(tmp: Path | None = None) -> list[Path]:
    """Remove work dirs of control planes whose owner died, killing any process still in them."""
    removed = []
    for workdir in Path(tmp or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            for pid in json.loads((workdir / "pids.json").read_text()).values():
                # Only a process whose command line names this work dir: pids get reused.
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if str(workdir).encode() in cmdline:
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
    seconds_to_ready: float = 0.0
    _procs: list[_Process] = field(default_factory=list)
    keep_workdir: bool = False

    @property
    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self._procs}

    @classmethod
    def start(
        cls,
        binaries: Binaries,
        timeout: float = 90.0,
        keep_workdir: bool = False,
        wait_for_controllers: bool = True,
    ) -> ControlPlane:
        _install_handlers()
        sweep_stale_workdirs()
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return cls._start_once(binaries, timeout, keep_workdir, wait_for_controllers)
            except PortTaken:
                # A free port was taken by someone else between probing it and binding it.
                if attempt == START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _start_once(
        cls, binaries: Binaries, timeout: float, keep_workdir: bool, wait_for_controllers: bool
    ) -> ControlPlane:
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        (workdir / "owner.pid").write_text(str(os.getpid()))
        ports = {"etcd": free_port(), "etcd-peer": free_port(), "apiserver": free_port()}
        plane = cls(
            workdir=workdir,
            kubeconfig=workdir / "kubeconfig",
            server=f"https://127.0.0.1:{ports['apiserver']}",
            ports=ports,
            binaries=binaries,
            keep_workdir=keep_workdir,
        )
        _live.add(plane)
        try:
            plane._boot(timeout, wait_for_controllers)
        except BaseException:
            plane.stop()
            raise
        return plane

    def _record_pids(self) -> None:
        (self.workdir / "pids.json").write_text(json.dumps(self.pids))

    def _boot(self, timeout: float, wait_for_controllers: bool) -> None:
        started = time.monotonic()
        b, w, p = self.binaries, self.workdir, self.ports
        pki = make_pki(w / "pki")
        admin = client_cert_user(pki.admin_cert, pki.admin_key)
        write_kubeconfig(self.kubeconfig, self.server, pki.ca_cert.read_bytes(), admin)
        kcm_user = client_cert_user(pki.kcm_cert, pki.kcm_key)
        kcm_config = write_kubeconfig(
            w / "kcm.kubeconfig", self.server, pki.ca_cert.read_bytes(), kcm_user
        )
        etcd_url = f"http://127.0.0.1:{p['etcd']}"
        peer_url = f"http://127.0.0.1:{p['etcd-peer']}"
        self._procs.append(
            _spawn(
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
                w,
            )
        )
        self._record_pids()
        # The apiserver retries etcd itself, so both start at once.
        self._procs.append(
            _spawn(
                "kube-apiserver",
                [
                    str(b.apiserver),
                    f"--etcd-servers={etcd_url}",
                    f"--cert-dir={w / 'apiserver-certs'}",
                    f"--tls-cert-file={pki.serving_cert}",
                    f"--tls-private-key-file={pki.serving_key}",
                    f"--client-ca-file={pki.ca_cert}",
                    f"--secure-port={p['apiserver']}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--authorization-mode=Node,RBAC",
                    "--disable-admission-plugins=ServiceAccount",
                    f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                    f"--service-account-key-file={pki.sa_public}",
                    f"--service-account-signing-key-file={pki.sa_private}",
                    "--allow-privileged=true",
                    # ClusterTrustBundle is beta and off by default in v1.34: the CSR signer
                    # publishes its CA certificates there as well as in ConfigMaps.
                    f"--feature-gates={FEATURE_GATES}",
                    f"--runtime-config={RUNTIME_CONFIG}",
                    "--v=1",
                ],
                w,
            )
        )
        self._record_pids()
        self._wait_ready(pki, started, timeout)
        self.seconds_to_ready = time.monotonic() - started
        self._procs.append(
            _spawn(
                "kube-controller-manager",
                [
                    str(b.controller_manager),
                    f"--kubeconfig={kcm_config}",
                    f"--controllers={CONTROLLERS}",
                    "--leader-elect=false",
                    # No serving endpoint: one less port to collide or leak.
                    "--secure-port=0",
                    f"--service-account-private-key-file={pki.sa_private}",
                    f"--root-ca-file={pki.ca_cert}",
                    "--v=1",
                ],
                w,
            )
        )
        self._record_pids()
        if wait_for_controllers:
            self._wait_controllers(started, timeout)

    def _check_alive(self) -> None:
        for proc in self._procs:
            code = proc.popen.poll()
            if code is not None:
                tail = proc.tail()
                error = PortTaken if "address already in use" in tail else KubeError
                raise error(
                    f"{proc.name} exited with code {code} while starting; "
                    f"last lines of {proc.log}:\n{tail}"
                )

    def _wait_ready(self, pki: Pki, started: float, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))

        def ready() -> bool:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.server}/readyz", context=ctx, timeout=2) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False

        self._wait(ready, started, timeout, "kube-apiserver /readyz", interval=0.1)

    def _wait_controllers(self, started: float, timeout: float) -> None:
        kubectl = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}"]

        def default_sa() -> bool:
            # The serviceaccount controller writing "default" proves the controllers are running.
            self._check_alive()
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
        """Stop everything (apiserver before etcd) and delete the temporary data."""
        if self not in _live:
            return
        for proc in reversed(self._procs):
            if proc.name != "etcd" and proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        for proc in reversed(self._procs):
            _stop_process(proc, grace)
        _live.discard(self)
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
