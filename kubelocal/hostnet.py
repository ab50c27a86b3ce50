"""What a node changes on the host, and how each change is undone.

A kubelet node cannot run without touching the host: the Pod bridge, a forwarding rule that
Docker's FORWARD policy DROP would otherwise block, sysctls the kubelet sets, iptables chains
the kubelet adds, nft tables kube-proxy adds, network namespaces, cgroups and directories the
runtime leaves. ``HostRecord`` notes the state before the node starts; ``undo`` puts every
such thing back. The record is plain JSON so that a later run can undo it for an owner that
was killed (``kubelocal.node`` keeps it in the node's state file).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BRIDGE = "lccbr0"
# Locally administered and fixed: a bridge without its own MAC takes its lowest port's, and
# the Pods lose their gateway for seconds whenever that Pod goes away.
BRIDGE_MAC = "02:6c:63:63:00:01"
POD_CIDR = "10.213.0.0/24"
NODE_IP = "10.213.0.1"
FORWARD_COMMENT = "lcc-node: Pod to Pod across the node bridge"

# The kubelet sets these (container_manager_linux.go, setupKernelTunables) and never resets them.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# The node sets these: Pods route through the host, and bridged traffic must meet kube-proxy's
# nft rules (br_netfilter).
NODE_SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}

# Directories the kubelet, containerd or the CNI plugins create at fixed paths.
FIXED_DIRS = (
    "/var/lib/kubelet",  # device-plugins/ is hard-coded
    "/var/log/containers",  # hard-coded symlinks to the Pods' logs
    "/var/lib/cni",  # libcni's result cache
    "/run/netns",  # the CNI network namespaces
    "/run/containerd",  # shim sockets (s/)
    "/etc/cni",
    "/opt/cni",
)
IPTABLES = ("iptables", "ip6tables")
IPTABLES_TABLES = ("filter", "nat", "mangle")
CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBEPODS = "kubepods"

MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


class HostError(RuntimeError):
    """A host change could not be made; the message is one line naming what and the fix."""


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise HostError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


# --- the record ----------------------------------------------------------------------------------


@dataclass
class HostRecord:
    """The host as it was before the node started, and which changes the node made."""

    sysctls: dict[str, str] = field(default_factory=dict)
    missing_dirs: list[str] = field(default_factory=list)
    kube_chains: dict[str, list[str]] = field(default_factory=dict)
    nft_tables: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    forward_rule: list[str] = field(default_factory=list)  # iptables args that add it
    bridge: bool = False
    cgroups: list[str] = field(default_factory=list)  # kubepods dirs that existed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostRecord:
        return cls(**data)


def snapshot() -> HostRecord:
    """What is there now, before the node changes anything."""
    return HostRecord(
        sysctls={name: read_sysctl(name) for name in (*KUBELET_SYSCTLS, *NODE_SYSCTLS)},
        missing_dirs=[d for d in FIXED_DIRS if not os.path.lexists(d)],
        kube_chains=kube_chains(),
        nft_tables=nft_tables(),
        netns=sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
        cgroups=[str(p) for p in kubepods_cgroups()],
    )


# --- sysctls -------------------------------------------------------------------------------------


def read_sysctl(name: str) -> str:
    return Path("/proc/sys", name).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", name).write_text(value + "\n")


def set_node_sysctls() -> None:
    for name, value in NODE_SYSCTLS.items():
        if read_sysctl(name) != value:
            write_sysctl(name, value)


def restore_sysctls(record: HostRecord) -> None:
    for name, value in record.sysctls.items():
        with contextlib.suppress(OSError):
            if read_sysctl(name) != value:
                write_sysctl(name, value)


# --- the bridge and forwarding -------------------------------------------------------------------


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", name], check=False).returncode == 0


def create_bridge(record: HostRecord) -> None:
    """The Pod bridge with a fixed MAC and the node's address, made before any Pod exists."""
    prefix = POD_CIDR.split("/")[1]
    record.bridge = True
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "link", "set", BRIDGE, "address", BRIDGE_MAC])
    run(["ip", "addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def allow_forwarding(record: HostRecord) -> None:
    """Docker's FORWARD policy DROP meets bridged Pod traffic through br_netfilter: accept the
    Pod bridge in DOCKER-USER (Docker's chain for rules of its users), else in FORWARD."""
    docker_user = run(["iptables", "-S", "DOCKER-USER"], check=False).returncode == 0
    chain = "DOCKER-USER" if docker_user else "FORWARD"
    rule = [chain, "-i", BRIDGE, "-o", BRIDGE, "-m", "comment", "--comment", FORWARD_COMMENT]
    rule += ["-j", "ACCEPT"]
    record.forward_rule = rule
    run(["iptables", "-I", *rule])


def _remove_forward_rule(record: HostRecord) -> None:
    if record.forward_rule:
        # -D removes one copy; a rule left twice (a crashed start) goes on the next pass.
        while run(["iptables", "-D", *record.forward_rule], check=False).returncode == 0:
            pass


# --- iptables chains (kubelet) and nft tables (kube-proxy) ---------------------------------------


def kube_chains() -> dict[str, list[str]]:
    """KUBE-* chains per "iptables:table"."""
    found: dict[str, list[str]] = {}
    for tool in IPTABLES:
        if shutil.which(tool) is None:
            continue
        for table in IPTABLES_TABLES:
            done = run([tool, "-t", table, "-S"], check=False)
            chains = [
                line.split()[1] for line in done.stdout.splitlines() if line.startswith("-N KUBE-")
            ]
            found[f"{tool}:{table}"] = sorted(chains)
    return found


def _remove_new_kube_chains(record: HostRecord) -> None:
    for key, chains in kube_chains().items():
        tool, table = key.split(":")
        new = set(chains) - set(record.kube_chains.get(key, []))
        if not new:
            continue
        rules = run([tool, "-t", table, "-S"], check=False).stdout.splitlines()
        for line in rules:
            words = line.split()
            if words[:1] == ["-A"] and any(w in new for w in words[2:]) and "-j" in words:
                run([tool, "-t", table, "-D", *words[1:]], check=False)
        for chain in new:
            run([tool, "-t", table, "-F", chain], check=False)
        for chain in new:
            run([tool, "-t", table, "-X", chain], check=False)


def nft_tables() -> list[str]:
    if shutil.which("nft") is None:
        return []
    done = run(["nft", "list", "tables"], check=False)
    return sorted(line.strip() for line in done.stdout.splitlines() if line.startswith("table "))


def _remove_new_nft_tables(record: HostRecord) -> None:
    for table in set(nft_tables()) - set(record.nft_tables):
        family, name = table.split()[1:3]
        run(["nft", "delete", "table", family, name], check=False)


# --- mounts, namespaces, cgroups, directories ----------------------------------------------------


def _unescape(path: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below any root, deepest first."""
    prefixes = [str(r).rstrip("/") for r in roots]
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_all(*roots: Path) -> None:
    # Detach (lazy): a busy mount goes once its last user does, instead of failing the stop.
    for _ in range(3):
        points = mounts_under(*roots)
        if not points:
            return
        for point in points:
            _libc.umount2(point.encode(), MNT_DETACH)


def _remove_new_netns(record: HostRecord) -> None:
    directory = Path("/run/netns")
    if not directory.is_dir():
        return
    for name in sorted(set(os.listdir(directory)) - set(record.netns)):
        path = directory / name
        unmount_all(path)
        with contextlib.suppress(OSError):
            path.unlink()


def kubepods_cgroups() -> list[Path]:
    """The kubelet's top cgroup (kubepods) in every hierarchy it exists in."""
    if not CGROUP_ROOT.is_dir():
        return []
    found = [h / KUBEPODS for h in sorted(CGROUP_ROOT.iterdir()) if (h / KUBEPODS).is_dir()]
    if (CGROUP_ROOT / KUBEPODS).is_dir():  # cgroup v2 unified at the root
        found.append(CGROUP_ROOT / KUBEPODS)
    return found


def _cgroup_tree(top: Path) -> list[Path]:
    """top and every cgroup below it, deepest first."""
    dirs = [Path(d) for d, _, _ in os.walk(top)]
    return sorted(dirs, key=lambda p: -len(p.parts))


def pod_processes() -> set[int]:
    pids: set[int] = set()
    for top in kubepods_cgroups():
        for cgroup in _cgroup_tree(top):
            with contextlib.suppress(OSError):
                procs = (cgroup / "cgroup.procs").read_text().split()
                pids.update(int(p) for p in procs)
    return pids


def kill_pod_processes(rounds: int = 50) -> None:
    """SIGKILL every process in the Pods' cgroups until none is left (bounded)."""
    for _ in range(rounds):
        pids = pod_processes()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # A killed process leaves its cgroup once its parent (the shim) has reaped it.
        time.sleep(0.1)


def _remove_kubepods_cgroups(record: HostRecord) -> None:
    for top in kubepods_cgroups():
        if str(top) in record.cgroups:
            continue
        for cgroup in _cgroup_tree(top):
            with contextlib.suppress(OSError):
                cgroup.rmdir()


def _remove_new_dirs(record: HostRecord) -> None:
    for directory in record.missing_dirs:
        path = Path(directory)
        if not path.exists():
            continue
        unmount_all(path)
        if directory in ("/run/containerd", "/run/netns"):
            # Shared with other runtimes: remove what is empty, never what another one uses.
            for sub in sorted(path.rglob("*"), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                path.rmdir()
        else:
            shutil.rmtree(path, ignore_errors=True)


# --- undo ----------------------------------------------------------------------------------------


def undo(record: HostRecord) -> None:
    """Put the host back as ``record`` found it. Safe to run twice and after a partial start."""
    kill_pod_processes()
    _remove_kubepods_cgroups(record)
    _remove_new_netns(record)
    _remove_new_nft_tables(record)
    _remove_new_kube_chains(record)
    _remove_forward_rule(record)
    if record.bridge and link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE], check=False)
    restore_sysctls(record)
    _remove_new_dirs(record)
