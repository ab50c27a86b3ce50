"""A node leaves the host as it found it: after stop(), after its owner is killed (the next start
cleans up), and when it refuses to start (one line naming what and the fix, nothing changed).

These start nodes of their own, so they run before the session node (fixture own_node_only).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import pods

from kubelocal import hostnet
from kubelocal import node as nodemod
from kubelocal.handle import Kube
from kubelocal.node import Node, NodeError
from kubelocal.procs import cmdline, pid_alive, wait_for

pytestmark = pytest.mark.timeout(300)


def fingerprint() -> dict:
    """What a node may change on the host, reduced to what no other tenant of the machine
    (Docker containers of other sessions) changes meanwhile."""

    def lines(*argv):
        return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()

    kube_rules = sorted(
        f"{tool} {table} {line}"
        for tool in hostnet.IPTABLES
        for table in hostnet.IPTABLES_TABLES
        for line in lines(tool, "-t", table, "-S")
        if "KUBE-" in line or "lcc-node" in line
    )
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if "lcc-node" in line.split()[4] or "/netns/" in line.split()[4]
    ]
    processes = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and b"/run/lcc-node" in cmdline(int(p.name))
    ]
    return {
        "bridge": hostnet.link_exists(hostnet.BRIDGE),
        "links on the bridge": [x for x in lines("ip", "-o", "link") if hostnet.BRIDGE in x],
        "sysctls": {
            n: hostnet.read_sysctl(n) for n in (*hostnet.KUBELET_SYSCTLS, *hostnet.NODE_SYSCTLS)
        },
        "kube iptables": kube_rules,
        "nft tables": [t for t in hostnet.nft_tables() if "kube" in t],
        "dirs": {d: os.path.lexists(d) for d in hostnet.FIXED_DIRS},
        "netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
        "cgroups": [str(p) for p in hostnet.kubepods_cgroups()],
        "mounts": mounts,
        "processes": processes,
        "workdir": nodemod.WORKDIR.exists(),
    }


def run_a_pod(node: Node, image: str) -> None:
    kube = Kube.create(node.kubeconfig, node.binaries.tools_bin, node.plane.workdir)
    ns = "lifecycle"
    kube.kubectl("create", "namespace", ns)
    kube.wait_for(
        lambda: kube.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0
    )
    volume = {"name": "scratch", "emptyDir": {"medium": "Memory"}}
    mount = {"name": "scratch", "mountPath": "/scratch"}
    spec = pods.pod("p", ns, [pods.container("p", image, ["sleep", "3600"], mounts=[mount])],
                    volumes=[volume])  # fmt: skip
    pods.apply(kube, spec)
    pods.wait_ready(kube, ns, "p")


def assert_changed_while_running(before: dict, during: dict) -> None:
    assert during["bridge"] and not before["bridge"]
    assert during["links on the bridge"], "the Pod's veth should be on the bridge"
    # The kubelet's kernel tunables (it never resets them) and kube-proxy's table.
    assert during["sysctls"]["vm/overcommit_memory"] == "1"
    assert during["sysctls"]["kernel/panic_on_oops"] == "1"
    assert "table ip kube-proxy" in during["nft tables"]
    assert any("KUBE-FIREWALL" in rule for rule in during["kube iptables"])
    assert any("lcc-node" in rule for rule in during["kube iptables"])  # the forwarding rule
    assert during["dirs"]["/var/lib/kubelet"] and during["dirs"]["/var/log/containers"]
    assert during["cgroups"] and during["mounts"] and during["processes"]


@pytest.fixture(scope="module")
def base(base_image):
    return base_image


def test_stop_undoes_every_host_change(own_node_only, kube_binaries, base):
    before = fingerprint()
    node = Node.start(kube_binaries, images=(base,))
    try:
        # The PIDs recorded are the components' own, not a wrapper's.
        for name, pid in node.pids.items():
            assert pid_alive(pid)
            assert Path(cmdline(pid).split(b"\0")[0].decode()).name == name
        state = json.loads((nodemod.WORKDIR / "state.json").read_text())
        assert state["pids"] == node.pids and state["owner"] == os.getpid()
        run_a_pod(node, base)
        assert_changed_while_running(before, fingerprint())
    finally:
        node.stop()

    assert fingerprint() == before
    node.stop()  # a second stop is harmless


OWNER = textwrap.dedent(
    """
    import json, signal, sys
    from pathlib import Path
    from kubelocal.binaries import Binaries
    from kubelocal.node import Node
    sys.path.insert(0, sys.argv[3])
    from test_node_lifecycle import run_a_pod
    node = Node.start(Binaries(Path(sys.argv[1]), Path(sys.argv[2])), images=(sys.argv[4],))
    run_a_pod(node, sys.argv[4])
    print(json.dumps(node.pids), flush=True)
    while True:
        signal.pause()
    """
)


def test_the_next_start_undoes_what_a_killed_owner_left(own_node_only, kube_binaries, base):
    before = fingerprint()
    here = Path(__file__).resolve().parent
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(kube_binaries.kube_bin), str(kube_binaries.tools_bin),
         str(here), base],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(here.parent)},
    )  # fmt: skip
    try:
        line = owner.stdout.readline()
        assert line, owner.stderr.read()
        pids = json.loads(line)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        # The kernel kills the components (PR_SET_PDEATHSIG); the Pod and the host changes stay.
        wait_for(lambda: not any(pid_alive(p) for p in pids.values()), timeout=30)
        left = fingerprint()
        assert left["bridge"] and left["cgroups"] and left["workdir"]
        assert hostnet.pod_processes(), "the Pod's processes outlive the kubelet"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()

    node = Node.start(kube_binaries)
    node.stop()
    assert fingerprint() == before


def test_a_missing_package_is_named_in_one_line_and_nothing_changes(
    own_node_only, kube_binaries, monkeypatch
):
    before = fingerprint()
    missing = {"/usr/lib/cni/lcc-no-such-plugin": "containernetworking-plugins"}
    monkeypatch.setattr(nodemod, "REQUIRED", {**nodemod.REQUIRED, **missing})
    with pytest.raises(NodeError) as failed:
        Node.start(kube_binaries)
    message = str(failed.value)
    assert "\n" not in message
    assert message == (
        "containernetworking-plugins is not installed (no /usr/lib/cni/lcc-no-such-plugin): run "
        "scripts/kube/node-packages.sh, or apt-get install -y containernetworking-plugins"
    )
    assert fingerprint() == before


def test_a_bridge_name_in_use_is_named_in_one_line(own_node_only, kube_binaries):
    subprocess.run(["ip", "link", "add", hostnet.BRIDGE, "type", "bridge"], check=True)
    try:
        with pytest.raises(NodeError) as failed:
            Node.start(kube_binaries)
    finally:
        subprocess.run(["ip", "link", "del", hostnet.BRIDGE], check=False)
    message = str(failed.value)
    assert "\n" not in message
    assert f"ip link del {hostnet.BRIDGE}" in message
    assert not nodemod.WORKDIR.exists()


def test_a_taken_port_is_named_in_one_line_and_the_host_is_undone(
    own_node_only, kube_binaries, monkeypatch
):
    before = fingerprint()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("0.0.0.0", 0))  # every address, the node's bridge included once it exists
    holder.listen()
    taken = holder.getsockname()[1]
    real_free_port = nodemod.free_port
    # The kubelet's port is the one picked on the node's address: hand it the taken one.
    monkeypatch.setattr(
        nodemod, "free_port",
        lambda host="127.0.0.1": taken if host == hostnet.NODE_IP else real_free_port(host),
    )  # fmt: skip
    try:
        with pytest.raises(NodeError) as failed:
            Node.start(kube_binaries, timeout=60)
    finally:
        holder.close()
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("the node did not start: kubelet exited")
    assert "a port it needs is taken" in message and str(taken) in message
    assert fingerprint() == before
