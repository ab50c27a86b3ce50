"""The node's container runtime: its own containerd (CRI), the CNI config, and local images.

A second containerd, apart from the Docker engine's: its own config, root, state and socket.
Nothing can be pulled here, so every image a Pod uses is copied from the Docker engine
(``docker save | ctr images import``) and Pods use ``imagePullPolicy: Never`` or
``IfNotPresent``. The root (the image store) is kept between runs under the project's cache,
with a record of which Docker image each tag was imported from, so a warm start imports
nothing; a run that did not stop cleanly leaves no such record and the next start wipes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubelocal.hostnet import BRIDGE, NODE_IP, POD_CIDR

CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
NAMESPACE = "k8s.io"  # the CRI plugin's containerd namespace


class ImageError(RuntimeError):
    """containerd or an image import failed; the message says which and why."""


@dataclass(frozen=True)
class RuntimePaths:
    root: Path  # kept: the image store
    state: Path  # per run: sockets, task state
    config: Path
    cni_conf_dir: Path
    ipam_dir: Path

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        """runc's state (one directory per container id), under this run's state."""
        return self.state / "runc"

    @property
    def imports(self) -> Path:
        """tag -> Docker image id of every image imported into this root."""
        return self.root.parent / "images.json"

    @property
    def clean_marker(self) -> Path:
        """Present while the root holds only images: written at a clean stop, removed at start."""
        return self.root.parent / "root-is-clean"


def containerd_config(paths: RuntimePaths, sandbox_image: str) -> str:
    """config.toml (version 2) of the node's containerd."""
    return f"""version = 2
root = "{paths.root}"
state = "{paths.state}"
# Only what the CRI plugin needs; the others would probe the host for nothing.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{paths.socket}"

[debug]
  level = "warn"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The stream server (exec, logs, port-forward) on loopback only, on a free port.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # This VM withholds CAP_SYS_RESOURCE even from root: without this runc fails with only
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # Network namespaces under this run's state, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroupfs, like the kubelet: there is no systemd here.
        SystemdCgroup = false
        # Not the shared /run/containerd/runc.
        Root = "{paths.runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{paths.cni_conf_dir}"
    max_conf_num = 1
"""


def cni_conflist(paths: RuntimePaths) -> str:
    """A bridge on the node's own bridge (made beforehand, with its fixed MAC) and host-local
    addresses from the Pod range. No loopback entry: the runtime brings lo up itself."""
    conf = {
        "cniVersion": "1.0.0",
        "name": "lcc-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.ipam_dir),
                },
            }
        ],
    }
    return json.dumps(conf, indent=2) + "\n"


def write_configs(paths: RuntimePaths, sandbox_image: str) -> None:
    paths.state.mkdir(parents=True, exist_ok=True)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(containerd_config(paths, sandbox_image))
    (paths.cni_conf_dir / "10-lcc-node.conflist").write_text(cni_conflist(paths))


def prepare_root(paths: RuntimePaths) -> None:
    """Keep the image store only when the last run stopped cleanly; then mark it in use."""
    if not paths.clean_marker.exists():
        shutil.rmtree(paths.root, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            paths.imports.unlink()
    with contextlib.suppress(FileNotFoundError):
        paths.clean_marker.unlink()


def mark_root_clean(paths: RuntimePaths) -> None:
    paths.clean_marker.write_text("the node stopped cleanly; only images remain\n")


def ctr(paths: RuntimePaths, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ctr", "--address", str(paths.socket), "--namespace", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def docker_image_id(tag: str) -> str:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise ImageError(f"image {tag} is not in the Docker engine: {done.stderr.strip()}")
    return done.stdout.strip()


def cri_name(tag: str) -> str:
    """The name the CRI plugin (and `ctr import` of a `docker save`) gives a short tag."""
    name = tag if "/" in tag else f"library/{tag}"
    first = name.split("/", 1)[0]
    if "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name


def _imports(paths: RuntimePaths) -> dict[str, str]:
    try:
        loaded: dict[str, str] = json.loads(paths.imports.read_text())
    except (OSError, ValueError):
        return {}
    return loaded


def import_image(paths: RuntimePaths, tag: str) -> bool:
    """Copy the Docker engine's `tag` into the node's image store unless that very image is
    there already. Returns True when it imported."""
    image_id = docker_image_id(tag)
    done = _imports(paths)
    present = ctr(paths, "images", "ls", "-q", f"name=={cri_name(tag)}").stdout.split()
    if done.get(tag) == image_id and present:
        return False
    save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE)
    try:
        imported = subprocess.run(
            ["ctr", "--address", str(paths.socket), "--namespace", NAMESPACE,
             "images", "import", "-"],
            stdin=save.stdout, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        if save.stdout:
            save.stdout.close()
        save.wait(timeout=600)
    if save.returncode != 0 or imported.returncode != 0:
        raise ImageError(
            f"importing {tag} into the node's containerd failed: "
            f"{imported.stderr.strip() or f'docker save exited {save.returncode}'}"
        )
    done[tag] = image_id
    paths.imports.write_text(json.dumps(done, indent=2) + "\n")
    return True


def remove_all_containers(paths: RuntimePaths) -> None:
    """Delete every task and container of the CRI namespace (their processes are already
    killed), so the kept root holds images only."""

    def each(kind: str, *remove: str) -> None:
        ids = ctr(paths, kind, "ls", "-q").stdout.split()
        if ids:
            # One ctr per id, several at a time: ctr takes one id per call for tasks.
            subprocess.run(
                ["xargs", "-r", "-P", "8", "-n", "1", "ctr", "--address", str(paths.socket),
                 "--namespace", NAMESPACE, kind, *remove],
                input="\n".join(ids), capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip

    each("tasks", "rm", "--force")
    each("containers", "rm")


SHIM_SOCKET_DIR = Path("/run/containerd/s")  # fixed in containerd 1.6, shared by every instance


def shim_socket(paths: RuntimePaths, shim_id: str) -> Path:
    """Where containerd 1.6 puts the socket of a shim (runtime/v2/shim.SocketAddress)."""
    digest = hashlib.sha256(f"{paths.socket}/{NAMESPACE}/{shim_id}".encode()).hexdigest()
    return SHIM_SOCKET_DIR / digest


def remove_shim_sockets(paths: RuntimePaths) -> None:
    """A shim that was killed leaves its socket behind; remove ours, by the containers that
    runc knew of (a shim is named after its sandbox, which is one of them)."""
    runc_dir = paths.runc_root / NAMESPACE
    for shim_id in os.listdir(runc_dir) if runc_dir.is_dir() else ():
        with contextlib.suppress(OSError):
            shim_socket(paths, shim_id).unlink()
