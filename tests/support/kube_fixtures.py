"""Fixtures for a real Kubernetes API: `kube` (session) and `kube_namespace` (per test), and
for a real node running Pods: `node` (session) and `pod_namespace` (per test).

By default `kube` starts etcd, kube-apiserver and kube-controller-manager on free loopback
ports (kubelocal.controlplane), building the binaries first with scripts/kube/build.sh
when they are not cached. With LCC_USE_EXISTING_CLUSTER=1 and KUBECONFIG set, the same tests
run against that cluster instead (kind, k3d, EKS), and nothing is started.

Any test that uses `kube` (directly or through another fixture) gets the `kube` marker.

`node` is a second cluster of its own, always local: a control plane in node mode plus a
kubelet, containerd and kube-proxy (kubelocal.node; needs root). Tests that use it get the
`node` and `kube` markers, so `-m 'not node'` leaves out everything that runs Pods. When the
node cannot start, each of them fails with one line naming what and the fix. Tests that start
nodes of their own (fixture `own_node_only`) run before the first test that uses `node`: one
node at a time fits on a machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kubelocal.binaries import Binaries, binaries_cached, ensure_binaries, ensure_tools
from kubelocal.handle import Kube, existing_cluster, local_cluster, use_existing_cluster
from kubelocal.node import Node, NodeError, wait_until_no_node
from kubelocal.procs import KubeError

__all__ = [
    "Kube",
    "NodeCluster",
    "kube",
    "kube_binaries",
    "kube_namespace",
    "node",
    "own_node_only",
    "pod_namespace",
]

NODE_FIXTURES = {"node", "pod_namespace"}
_build_errors: list[str] = []
_session_node: list[Node] = []


def _fixtures(item: pytest.Item) -> set[str]:
    return set(getattr(item, "fixturenames", ()))


def _uses_kube(item: pytest.Item) -> bool:
    return bool({"kube", "kube_binaries", *NODE_FIXTURES} & _fixtures(item))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_kube(item):
            item.add_marker(pytest.mark.kube)
        if NODE_FIXTURES & _fixtures(item) or "own_node_only" in _fixtures(item):
            item.add_marker(pytest.mark.node)
    # Tests that start their own node go first, before the session node holds the machine.
    items.sort(key=lambda item: "own_node_only" not in _fixtures(item))


def pytest_collection_finish(session: pytest.Session) -> None:
    # A cold build takes many minutes: do it here, outside any test's timeout, with the
    # progress on the terminal rather than in captured output.
    if session.config.option.collectonly:
        return
    try:
        existing = use_existing_cluster()
    except KubeError:
        return  # the `kube` fixture reports the misconfiguration in each test
    # The node is always local, so its tests need the binaries even with an existing cluster.
    builds = {"kube_binaries", "own_node_only", *NODE_FIXTURES}
    if not existing:
        builds.add("kube")
    if not any(builds & set(getattr(item, "fixturenames", ())) for item in session.items):
        return
    if binaries_cached():
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\nkube: building the control plane binaries (scripts/kube/build.sh) ...", flush=True)
        try:
            ensure_binaries()
        except KubeError as err:
            # Fail each kube test with this message instead of crashing pytest or building twice.
            _build_errors.append(str(err))


def _binaries() -> Binaries:
    if _build_errors:
        pytest.fail(f"the Kubernetes control plane binaries are missing: {_build_errors[0]}")
    return ensure_binaries()


@pytest.fixture(scope="session")
def kube_binaries() -> Binaries:
    """etcd, kube-apiserver, kube-controller-manager, kubectl and helm; built if missing."""
    return _binaries()


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    existing = use_existing_cluster()
    if existing:
        with existing_cluster(existing, ensure_tools()) as handle:
            yield handle
        return
    with local_cluster(_binaries()) as (handle, _plane):
        yield handle


@pytest.fixture
def kube_namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    name = kube.new_namespace_name(f"t-{request.node.name}")
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


@dataclass(frozen=True)
class NodeCluster:
    """The session node: `kube` acts on its cluster; servers Pods must reach bind `address`."""

    kube: Kube
    node: Node

    @property
    def address(self) -> str:
        """The node's address on the Pod bridge: the host as Pods see it."""
        return self.node.address

    @property
    def name(self) -> str:
        return self.node.name

    def load_image(self, tag: str) -> str:
        """Make a Docker engine image available to Pods (imported once per image id)."""
        return self.node.load_image(tag)


@pytest.fixture(scope="session")
def node(kube_binaries: Binaries) -> Iterator[NodeCluster]:
    """A control plane with a kubelet node (kubelocal.node), Ready; stopped and undone after."""
    try:
        started = Node.start(kube_binaries)
    except NodeError as err:
        pytest.fail(f"node: {err}", pytrace=False)
    _session_node.append(started)
    try:
        yield NodeCluster(
            kube=Kube.create(started.kubeconfig, kube_binaries.tools_bin, started.plane.workdir),
            node=started,
        )
    finally:
        _session_node.clear()
        started.stop()


@pytest.fixture
def own_node_only() -> None:
    """For tests that start nodes themselves: none may run beside the session node."""
    if _session_node:
        pytest.fail(
            "this test starts its own node, but the session node already runs (one node per "
            "machine): run it before any test that uses `node` (the default order does)",
            pytrace=False,
        )
    wait_until_no_node()  # another process's node (a second checkout's suite) changes the host


@pytest.fixture
def pod_namespace(node: NodeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace enforcing PodSecurity `restricted`, with its default ServiceAccount;
    deleted afterwards, with its Pods."""
    kube = node.kube
    # Short: Pod tests put the namespace in certificate names (64 characters at most).
    name = kube.new_namespace_name(f"p-{request.node.name}"[:20])
    kube.kubectl("create", "namespace", name)
    levels = ("enforce", "warn", "audit")
    kube.kubectl(
        "label", "namespace", name,
        *(f"pod-security.kubernetes.io/{level}=restricted" for level in levels),
        *(f"pod-security.kubernetes.io/{level}-version=latest" for level in levels),
    )  # fmt: skip
    # ServiceAccount admission refuses Pods until the controller has made `default`.
    kube.wait_for(
        lambda: (
            kube.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode
            == 0
        ),
        timeout=30,
        message=f"the default ServiceAccount of {name}",
    )
    yield name
    delete_namespace_and_its_pods(kube, name)


def delete_namespace_and_its_pods(kube: Kube, name: str) -> None:
    """The Pods are waited for: one still running after its test would call the shared CA in the
    next. Terminating first, so no controller makes new ones; then the Pods go with a 1 s grace,
    which is quicker than waiting on the namespace controller's backoff (about 10 s)."""
    kube.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false", check=False)
    kube.kubectl("delete", "pods", "--all", "-n", name, "--grace-period=1", "--timeout=120s",
                 check=False)  # fmt: skip
