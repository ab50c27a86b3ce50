"""Fixtures for a real Kubernetes API: `kube` (session) and `kube_namespace` (per test).

By default `kube` starts etcd, kube-apiserver and kube-controller-manager on free loopback
ports (kubelocal.controlplane), building the binaries first with scripts/kube/build.sh
when they are not cached. With LCC_USE_EXISTING_CLUSTER=1 and KUBECONFIG set, the same tests
run against that cluster instead (kind, k3d, EKS), and nothing is started.

Any test that uses `kube` (directly or through another fixture) gets the `kube` marker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubelocal.binaries import Binaries, binaries_cached, ensure_binaries, ensure_tools
from kubelocal.handle import Kube, existing_cluster, local_cluster, use_existing_cluster
from kubelocal.procs import KubeError

__all__ = ["Kube", "kube", "kube_binaries", "kube_namespace"]


_build_errors: list[str] = []


def _uses_kube(item: pytest.Item) -> bool:
    return bool({"kube", "kube_binaries"} & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_kube(item):
            item.add_marker(pytest.mark.kube)


def pytest_collection_finish(session: pytest.Session) -> None:
    # A cold build takes many minutes: do it here, outside any test's timeout, with the
    # progress on the terminal rather than in captured output.
    if session.config.option.collectonly:
        return
    try:
        existing = use_existing_cluster()
    except KubeError:
        return  # the `kube` fixture reports the misconfiguration in each test
    builds = {"kube_binaries"} if existing else {"kube", "kube_binaries"}
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
