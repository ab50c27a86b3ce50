"""Operator processes coming and going: a restart re-issues nothing valid, and of two peered
operators only the higher-priority one acts. Real apiserver, real local CA."""

from __future__ import annotations

import json

import pytest
from support.operator_process import (
    OperatorProcess,
    apply,
    certificate_manifest,
    condition,
    get,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


def drain(kube, ns):
    """Delete the namespace's ClientCertificates while an operator still runs to remove its
    finalizer, so the namespace does not stay Terminating after the test."""
    kube.kubectl("delete", "clientcertificates", "--all", "-n", ns, "--timeout=60s", check=False)


def all_ready(kube, ns, names):
    def check():
        objs = [get(kube, "clientcertificate", n, ns) for n in names]
        return objs if all(condition(o).get("status") == "True" for o in objs) else None

    return wait_for(check, 60, message=f"{names} Ready")


def test_a_restarted_operator_reissues_nothing_that_is_valid(
    cluster, local_ca, kube_namespace, tmp_path
):
    ns, names = kube_namespace, [f"keep{i}" for i in range(5)]
    first = OperatorProcess.kopf_run(
        cluster, local_ca, tmp_path / "first.log", "--standalone"
    ).start()
    try:
        apply(cluster, *[certificate_manifest(n, ns) for n in names])
        serials = [o["status"]["serialNumber"] for o in all_ready(cluster, ns, names)]
    finally:
        first.stop()
    before = local_ca.stats()["invocations"]
    # The restart runs the packaged entry point, as the chart does.
    second = OperatorProcess.cli(cluster, local_ca, tmp_path / "second.log", "--standalone").start()
    try:
        # The new process has looked at every certificate once it reports each as ready.
        wait_for(
            lambda: all(
                second.metric(
                    "clientcert_certificate_ready_status", namespace=ns, name=n, condition="True"
                )
                == 1
                for n in names
            ),
            30,
            message="the restarted operator reporting all certificates",
        )
        assert local_ca.stats()["invocations"] == before
        assert second.metric("clientcert_ca_invocations_total") == 0
        assert [o["status"]["serialNumber"] for o in all_ready(cluster, ns, names)] == serials
    finally:
        drain(cluster, ns)
        second.stop()


def test_of_two_peered_operators_only_the_higher_priority_one_acts(
    cluster, local_ca, kube_namespace, tmp_path
):
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": "e2e-peering"},
            }
        ),
    )
    peering = ("--peering=e2e-peering",)
    leader = OperatorProcess.kopf_run(
        cluster, local_ca, tmp_path / "a.log", *peering, "--priority=100"
    )
    follower = OperatorProcess.kopf_run(
        cluster, local_ca, tmp_path / "b.log", *peering, "--priority=10"
    )
    leader.start()
    follower.start()
    try:
        ns, names = kube_namespace, [f"peer{i}" for i in range(4)]
        before = local_ca.stats()["invocations"]
        leader_before = leader.metric("clientcert_ca_invocations_total")
        apply(cluster, *[certificate_manifest(n, ns) for n in names])
        all_ready(cluster, ns, names)
        assert local_ca.stats()["invocations"] - before == len(names)
        assert leader.metric("clientcert_ca_invocations_total") - leader_before == len(names)
        assert follower.metric("clientcert_ca_invocations_total") == 0
        # The leader leaves (its peering record goes with it): the follower takes over.
        leader.stop()
        apply(cluster, certificate_manifest("late", ns))
        all_ready(cluster, ns, ["late"])
        assert follower.metric("clientcert_ca_invocations_total") == 1
    finally:
        drain(cluster, kube_namespace)
        follower.stop()
        leader.stop()
