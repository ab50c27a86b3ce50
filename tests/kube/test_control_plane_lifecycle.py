"""The local control plane leaves nothing behind: no process, no listening port, no data.

These start extra control planes of their own (not the session one), so they also run when
LCC_USE_EXISTING_CLUSTER=1 points the other tests at an existing cluster.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kubelocal.binaries import Binaries
from kubelocal.controlplane import WORKDIR_PREFIX, ControlPlane, sweep_stale_workdirs
from kubelocal.procs import KubeError, pid_alive, port_is_listening, wait_for


def processes_mentioning(text):
    """PIDs of live (non-zombie) processes whose command line contains text."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline and pid_alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def assert_nothing_left(pids, ports, workdir):
    for name, pid in pids.items():
        assert not pid_alive(pid), f"{name} (pid {pid}) is still running"
    assert processes_mentioning(str(workdir)) == []
    for name, port in ports.items():
        assert not port_is_listening(port), f"{name} port {port} still listens"


def test_stopping_leaves_no_process_no_port_and_no_data(kube_binaries):
    with ControlPlane.start(kube_binaries, wait_for_controllers=False) as plane:
        pids, ports, workdir = plane.pids, plane.ports, plane.workdir
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
        for name, port in ports.items():
            assert port_is_listening(port), f"{name} should listen on {port}"
        assert len(processes_mentioning(str(workdir))) == 3
        kubeconfig_mode = os.stat(plane.kubeconfig).st_mode & 0o777
        assert kubeconfig_mode == 0o600
        got = subprocess.run(
            [
                str(kube_binaries.kubectl),
                f"--kubeconfig={plane.kubeconfig}",
                "get",
                "ns",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "namespace/default" in got.stdout.split()

    assert_nothing_left(pids, ports, workdir)
    assert not workdir.exists()
    plane.stop()  # a second stop is harmless


OWNER = textwrap.dedent(
    """
    import json, signal, sys
    from pathlib import Path
    from kubelocal.binaries import Binaries
    from kubelocal.controlplane import ControlPlane
    binaries = Binaries(Path(sys.argv[1]), Path(sys.argv[2]))
    plane = ControlPlane.start(binaries, wait_for_controllers=False)
    print(json.dumps({"pids": plane.pids, "ports": plane.ports, "workdir": str(plane.workdir)}),
          flush=True)
    while True:
        signal.pause()
    """
)


@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
    ids=["ctrl-c stops it in order", "sigterm stops it in order", "sigkill of the owner kills it"],
)
def test_an_interrupted_owner_leaves_no_process_behind(kube_binaries, signum):
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            OWNER,
            str(kube_binaries.kube_bin),
            str(kube_binaries.tools_bin),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = owner.stdout.readline()
        assert line, owner.stderr.read()
        started = json.loads(line)
        pids, ports, workdir = started["pids"], started["ports"], Path(started["workdir"])
        assert all(pid_alive(pid) for pid in pids.values())

        owner.send_signal(signum)
        owner.wait(timeout=60)

        # SIGKILL gives the owner no chance: the kernel's parent-death signal does the work.
        # A dying process loses its command line before its sockets close, so wait for both.
        wait_for(
            lambda: (
                not processes_mentioning(str(workdir))
                and not any(port_is_listening(port) for port in ports.values())
            ),
            timeout=30,
            message="the control plane processes to die and their ports to close",
        )
        assert_nothing_left(pids, ports, workdir)
        if signum == signal.SIGKILL:
            # Any control plane start sweeps dead owners' dirs (another run may already have).
            sweep_stale_workdirs()
        assert not workdir.exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_the_sweep_removes_only_work_dirs_whose_owner_has_died(tmp_path):
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    orphaned = tmp_path / f"{WORKDIR_PREFIX}orphaned"
    owned = tmp_path / f"{WORKDIR_PREFIX}owned"
    unrelated = tmp_path / f"{WORKDIR_PREFIX}no-owner-file"
    for directory, owner in [(orphaned, dead_owner.pid), (owned, os.getpid()), (unrelated, None)]:
        directory.mkdir()
        if owner is not None:
            (directory / "owner.pid").write_text(str(owner))

    assert sweep_stale_workdirs(tmp_path) == [orphaned]
    assert not orphaned.exists() and owned.exists() and unrelated.exists()


def test_a_component_that_dies_while_starting_fails_the_start_with_its_log(kube_binaries, tmp_path):
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "etcd").symlink_to(kube_binaries.etcd)
    (broken / "kube-controller-manager").symlink_to(kube_binaries.controller_manager)
    apiserver = broken / "kube-apiserver"
    apiserver.write_text(
        "#!/bin/sh\necho 'E0101 refusing to serve: broken on purpose' >&2\nexit 3\n"
    )
    apiserver.chmod(0o755)
    binaries = Binaries(kube_bin=broken, tools_bin=kube_binaries.tools_bin)
    with pytest.raises(KubeError) as failed:
        ControlPlane.start(binaries, timeout=60)

    message = str(failed.value)
    assert "kube-apiserver exited with code 3 while starting" in message
    assert "broken on purpose" in message
    log = Path(re.search(r"last lines of (\S+):", message).group(1))
    assert log.name == "kube-apiserver.log"
    assert not log.parent.exists()
    assert processes_mentioning(str(log.parent)) == []


def test_a_crashed_component_restarts_with_its_data_and_is_stopped_with_the_rest(kube_binaries):
    with ControlPlane.start(kube_binaries, wait_for_controllers=False) as plane:
        kubectl = [str(kube_binaries.kubectl), f"--kubeconfig={plane.kubeconfig}"]
        subprocess.run([*kubectl, "create", "namespace", "kept"], check=True, capture_output=True)
        crashed = plane.pids["etcd"]
        with pytest.raises(KubeError, match="still running"):
            plane.restart("etcd")
        plane.crash("etcd")
        assert not pid_alive(crashed)
        plane.restart("etcd")
        assert plane.pids["etcd"] != crashed
        assert json.loads((plane.workdir / "pids.json").read_text()) == plane.pids

        def namespace_back():
            argv = [*kubectl, "get", "namespace", "kept", "-o", "name"]
            return subprocess.run(argv, capture_output=True).returncode == 0

        wait_for(namespace_back, 60, 0.2, "the namespace, read from the restarted etcd")
        pids, ports, workdir = plane.pids, plane.ports, plane.workdir
    assert_nothing_left(pids, ports, workdir)
