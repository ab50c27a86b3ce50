"""The operator keeps its promises under control-plane faults (issue 15). Each fault is a test on
a control plane of this module's own (it is killed and restarted), with the packaged
``clientcert-operator`` and the local CA slowed by its delay fault so a burst is under way when
the fault lands. Each asserts Ready for what should be Ready, nothing for what was deleted, the CA
invocation count, and recovery without a manual step. The scenarios live in
tests/support/fault_scenarios.py, which bench/operator_faults.py runs too."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support import fault_scenarios, plane_faults
from support.fault_scenarios import CONCURRENCY, Lab
from support.operator_process import OperatorProcess, apply, install_crds, lambdaca_manifest

from kubelocal.controlplane import ControlPlane
from kubelocal.handle import Kube

pytestmark = pytest.mark.timeout(300)
BLOCKED_LOOP_OPERATOR = Path(__file__).resolve().parents[1] / "support" / "blocked_loop_operator.py"


@pytest.fixture(scope="module")
def lab_plane(kube_binaries, local_ca):
    """A control plane for this module alone: its processes are killed on purpose."""
    plane = ControlPlane.start(kube_binaries)
    kube = Kube.create(plane.kubeconfig, kube_binaries.tools_bin, plane.workdir)
    install_crds(kube)
    apply(kube, lambdaca_manifest("local", local_ca))
    yield kube, plane
    plane.stop()


@pytest.fixture
def lab(lab_plane, ca, tmp_path):
    kube, plane = lab_plane
    lab = Lab(kube, plane, ca, tmp_path)
    yield lab
    lab.stop()
    plane_faults.heal(plane, kube)  # a failed test must not leave one down


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_a_control_plane_outage_mid_burst_costs_one_invocation_per_certificate(lab, component):
    result = fault_scenarios.control_plane_outage(lab, component, seconds=10, count=30)
    assert result.details["in_flight_at_fault"] > 0, "the fault landed after the burst"
    assert result.ready == result.certificates
    assert result.invocations == result.certificates, result
    assert result.details["distinct_serials"] == result.certificates
    assert result.details["operator_alive"]


@pytest.mark.parametrize("peering", [False, True], ids=["standalone", "peering"])
def test_a_killed_operator_is_replaced_and_only_its_calls_in_flight_are_repeated(lab, peering):
    result = fault_scenarios.operator_killed(lab, peering=peering, count=24)
    details = result.details
    assert details["missing_at_kill"] > 0, "the burst was over before the kill"
    assert result.ready == result.certificates
    # The new process writes what the stash holds and issues only what had neither.
    assert details["by_second"] <= details["missing_at_kill"], result
    # What the killed process lost: only its CA calls in flight (issued ones were stashed).
    assert details["lost_in_flight"] <= CONCURRENCY, result
    if peering:
        # kopf would have counted the dead process as a live peer (and paused) until then.
        assert result.details["dead_record_seconds_left"] > 0, result


def test_a_slow_ca_delays_nothing_that_needs_no_ca_call_and_says_when_a_spec_change_waits(lab):
    result = fault_scenarios.slow_ca(lab, queued=10)
    assert result.details["template_applied_with_issuances_left"] > 0
    assert result.details["deleted_with_issuances_left"] > 0
    assert "Waiting for the CA" in result.details["spec_change_status"]
    assert "issuances ahead" in result.details["spec_change_status"]
    assert result.ready == result.certificates
    assert result.invocations == result.allowed, "one call each, none for the withdrawn one"
    assert not result.details["withdrawn_has_secret"]


def test_a_deleted_object_gets_no_call_no_secret_no_event_and_no_metrics(lab):
    result = fault_scenarios.deletions_during_issuance(lab)
    assert result.ready == result.certificates
    # The call in flight could not be taken back; the waiting one was never made.
    assert result.invocations == result.allowed, result
    assert result.details["secrets_of_deleted"] == []
    assert result.details["events_of_deleted"] == []
    assert result.details["metric_series_of_deleted"] == []
    assert result.details["operator_warnings"] == [], "an ordinary deletion warns about nothing"
    assert result.details["probes_answered"] == 5
    assert result.details["probe_access_lines"] == [], "probes and scrapes log nothing"


def test_a_namespace_deleted_mid_burst_costs_only_the_calls_in_flight(lab):
    result = fault_scenarios.namespace_deleted_mid_burst(lab, count=80)
    assert result.details["invocations_at_deletion"] < 80, "the burst was over already"
    assert result.details["after_deletion"] <= CONCURRENCY, result
    assert result.details["terminating_errors"] == []
    assert result.details["series_left"] == []


def test_a_long_api_outage_with_peering_on_neither_hangs_nor_needs_a_hand(lab):
    result = fault_scenarios.long_api_outage(lab, seconds=65)
    assert result.details["alive_during_outage"] and result.details["healthy_during_outage"]
    assert result.ready == result.certificates
    assert result.invocations == 1, "only the certificate created after the outage"
    assert result.details["healthy_after"]
    assert result.details["exit_code_on_sigterm"] == 0


def test_sigterm_during_an_outage_stops_in_time_and_the_next_process_writes_the_stash(lab):
    result = fault_scenarios.sigterm_during_outage(lab, count=8)
    assert result.details["stashed"] > 0
    assert result.ready == result.certificates
    assert result.invocations == result.certificates, "stashed certificates are not re-issued"
    assert result.details["stash_left"] == 0


def test_a_blocked_event_loop_fails_liveness_and_ends_the_process_to_be_restarted(lab, tmp_path):
    """The hang no API fault produces: the real operator's event loop blocked from inside. The
    watchdog thread notices within the stall budget, logs why, and exits 1 for the kubelet."""
    log = tmp_path / "blocked.log"
    op = OperatorProcess.cli(lab.kube, lab.ca, log, "--standalone", stall_seconds="5")
    op.argv = [sys.executable, str(BLOCKED_LOOP_OPERATOR), *op.argv[1:]]
    op.env["LCC_BLOCK_LOOP_AFTER"] = "8"
    lab.operators.append(op.start())
    ns = lab.namespace("blocked-loop")
    lab.wait_ready(ns, lab.create(ns, ["before-the-block"]))
    assert op.proc is not None
    code = op.proc.wait(timeout=60)
    assert code == 1, "exit 1: the kubelet (or a supervisor) starts a fresh process"
    lines = [json.loads(x) for x in op.log_path.read_text().splitlines() if x.startswith("{")]
    (last,) = [
        x
        for x in lines
        if x.get("message") == "operator is not alive; exiting so that it is restarted"
    ]
    assert last["problem"].startswith("the event loop has not run for")
