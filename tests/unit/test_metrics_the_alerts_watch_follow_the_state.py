"""The metrics the alerts watch follow the state, the pods and the chain; none go stale."""

from __future__ import annotations

from dataclasses import replace

from chainmonitor.types import ConsumerPhase
from discovery.desired import ExposurePolicy, desired_cluster
from discovery.endpoints import DEFAULT_POLICY
from discovery.metrics import ServiceMetrics, sample_value
from discovery.opsmetrics import PodCount, chain_gauges, own_endpoint_matches
from discovery.service import pod_counts
from discovery.types import NodeId
from lbmanager.consumer_pods import PodInfo
from tests.support.discovery_states import build_state
from tests.support.snapshots import consumer, op, snapshot, validator


def _text(metrics: ServiceMetrics) -> str:
    return metrics.render()[0].decode()


def test_chain_rows_say_opted_in_exposed_problem_and_validators() -> None:
    state = build_state(chains={"1": "consumer-a", "2": "consumer-b"})
    rows = {r.chain_id: r for r in chain_gauges(state)}
    assert set(rows) == {"consumer-a", "consumer-b"}
    a = rows["consumer-a"]
    assert (a.opted_in, a.exposed, a.problem) == (True, True, False)
    # The peers (bob, carol) plus mallory, left out: every opted-in validator but us.
    assert a.validators == 3
    broken = replace(state.chains[1], exposed=False, problem="port taken", peers=None)
    rows = {r.chain_id: r for r in chain_gauges(replace(state, chains=(state.chains[0], broken)))}
    b = rows["consumer-b"]
    assert (b.exposed, b.problem, b.validators) == (False, True, None)


def test_validators_left_out_by_the_max_peers_cap_are_not_expected_peers() -> None:
    # Five validators with power besides us, max_peers 2: three are capped out,
    # as they should be, and one publishes nothing (it should have).
    vals = [validator(n) for n in range(1, 6)]
    vals.append(validator(6, "no endpoint here"))
    snap = snapshot(
        vals,
        [
            consumer(
                1,
                "capped-1",
                opted_in=[1, 2, 3, 4, 5, 6],
                powers={1: 60, 2: 50, 3: 40, 4: 30, 5: 20, 6: 10},
            )
        ],
    )
    policy = ExposurePolicy(consumer_namespace="c", max_peers=2)
    desired = desired_cluster(snap, op(1), policy, DEFAULT_POLICY)
    [row] = chain_gauges(desired.state)
    [chain] = desired.state.chains
    assert chain.peers is not None
    reasons = sorted(x.reason for x in chain.peers.left_out)
    assert reasons == ["no-endpoint", "over-max-peers", "over-max-peers"]
    assert len(chain.peers.peers) == 2
    assert row.validators == 3


def test_rendered_chain_series_follow_the_state_and_vanish_with_the_chain() -> None:
    metrics = ServiceMetrics()
    state = build_state(chains={"1": "consumer-a", "2": "consumer-b"})
    metrics.observe_state(state)
    text = _text(metrics)
    phase = state.chains[0].phase
    labels = {"chain_id": "consumer-a", "consumer_id": "1"}
    assert sample_value(text, "ics_discovery_chain_opted_in", {**labels, "phase": phase}) == 1
    assert sample_value(text, "ics_discovery_chain_exposed", labels) == 1
    assert sample_value(text, "ics_discovery_chain_problem", labels) == 0
    assert sample_value(text, "ics_discovery_expected_peers", {"chain_id": "consumer-a"}) == 3

    down = replace(state.chains[0], exposed=False, problem="LoadBalancer port taken")
    metrics.observe_state(replace(state, chains=(down,), height=101))
    text = _text(metrics)
    assert sample_value(text, "ics_discovery_chain_exposed", labels) == 0
    assert sample_value(text, "ics_discovery_chain_problem", labels) == 1
    b = {"chain_id": "consumer-b", "consumer_id": "2"}
    assert sample_value(text, "ics_discovery_chain_exposed", b) is None


def _pod(name: str, namespace: str, *, ready: bool) -> PodInfo:
    return PodInfo(
        namespace=namespace,
        name=name,
        uid=name,
        ips=("10.0.0.1",),
        ready=ready,
        terminating=False,
        phase="Running",
    )


def test_pod_counts_cover_every_exposed_chain_in_served_namespaces_only() -> None:
    snap = snapshot(
        [validator(1), validator(2)],
        [
            consumer(0, "alpha-1", opted_in=[1, 2]),
            consumer(1, "beta-1", opted_in=[1, 2]),
            consumer(2, "later-1", opted_in=[1, 2], phase=ConsumerPhase.INITIALIZED),
        ],
    )
    d = desired_cluster(snap, op(1), ExposurePolicy(consumer_namespace="consumers"), DEFAULT_POLICY)
    pods = {
        "alpha-1": (
            _pod("a0", "consumers", ready=True),
            _pod("a1", "consumers", ready=False),
            _pod("elsewhere", "other", ready=True),
        ),
    }
    assert pod_counts(d, pods) == {
        "alpha-1": PodCount(ready=1, total=2),
        "beta-1": PodCount(ready=0, total=0),
    }


def test_pod_series_only_from_the_leader() -> None:
    metrics = ServiceMetrics()
    metrics.ops.observe_pods({"alpha-1": PodCount(ready=1, total=3)})
    text = _text(metrics)
    ready = {"chain_id": "alpha-1", "ready": "true"}
    assert sample_value(text, "ics_discovery_consumer_pods", ready) == 1
    assert sample_value(text, "ics_discovery_consumer_pods", {**ready, "ready": "false"}) == 2
    metrics.ops.observe_pods(None)
    assert sample_value(_text(metrics), "ics_discovery_consumer_pods", ready) is None


NODE = "ab" * 20


def test_own_endpoint_matches_only_when_the_chain_shows_our_address() -> None:
    ours = f"Validator alice node={NODE} p2p=203.0.113.11"
    ingress = ("203.0.113.11",)
    assert own_endpoint_matches(ingress, ours, DEFAULT_POLICY) is True
    # The old token order shows the address to us but not to Go validators: it is
    # rewritten once, so until then it does not match.
    old_order = f"Validator alice p2p=203.0.113.11 node={NODE}"
    assert own_endpoint_matches(ingress, old_order, DEFAULT_POLICY) is False
    assert own_endpoint_matches(("198.51.100.7",), ours, DEFAULT_POLICY) is False
    assert own_endpoint_matches(ingress, "Validator alice", DEFAULT_POLICY) is False
    assert own_endpoint_matches(ingress, ours, DEFAULT_POLICY, NodeId("cd" * 20)) is False
    # Unknowable: no address yet, none acceptable, or we are not in the registry.
    assert own_endpoint_matches(None, ours, DEFAULT_POLICY) is None
    assert own_endpoint_matches((), ours, DEFAULT_POLICY) is None
    assert own_endpoint_matches(("127.0.0.1",), ours, DEFAULT_POLICY) is None
    assert own_endpoint_matches(ingress, None, DEFAULT_POLICY) is None


def test_own_endpoint_series_is_absent_while_unknown() -> None:
    metrics = ServiceMetrics()
    assert sample_value(_text(metrics), "ics_discovery_own_endpoint_matches") is None
    metrics.ops.observe_own_endpoint(False)
    assert sample_value(_text(metrics), "ics_discovery_own_endpoint_matches") == 0
    metrics.ops.observe_own_endpoint(True)
    assert sample_value(_text(metrics), "ics_discovery_own_endpoint_matches") == 1


def test_progress_times_move_only_when_the_stream_or_the_registry_did() -> None:
    from chainmonitor.monitor import MonitorCounters

    metrics = ServiceMetrics()
    counters = MonitorCounters()
    counters.stream.last_event_height = 10
    counters.resyncs_done = 1
    counters.query_failures = 2
    metrics.observe_counters(counters, leading=True, now=1000.0)
    text = _text(metrics)
    assert sample_value(text, "ics_discovery_last_event_timestamp_seconds") == 1000.0
    assert sample_value(text, "ics_discovery_last_resync_timestamp_seconds") == 1000.0
    assert sample_value(text, "ics_discovery_chain_query_failures_total") == 2
    # Nothing moved: the times stay, so `time() - ...` grows and the alert can fire.
    metrics.observe_counters(counters, leading=True, now=1060.0)
    text = _text(metrics)
    assert sample_value(text, "ics_discovery_last_event_timestamp_seconds") == 1000.0
    assert sample_value(text, "ics_discovery_last_resync_timestamp_seconds") == 1000.0
    counters.stream.last_event_height = 11
    counters.query_failures = 5
    metrics.observe_counters(counters, leading=True, now=1070.0)
    text = _text(metrics)
    assert sample_value(text, "ics_discovery_last_event_timestamp_seconds") == 1070.0
    assert sample_value(text, "ics_discovery_last_resync_timestamp_seconds") == 1000.0
    assert sample_value(text, "ics_discovery_chain_query_failures_total") == 5


def test_failure_counters_start_at_zero_so_increase_works_from_the_first_error() -> None:
    text = _text(ServiceMetrics())
    for outcome in ("sent", "failed"):
        assert (
            sample_value(text, "ics_discovery_endpoint_publications_total", {"outcome": outcome})
            == 0
        )
    for resource in ("loadbalancer", "configmaps", "workloads"):
        labels = {"resource": resource}
        assert sample_value(text, "ics_discovery_kubernetes_write_errors_total", labels) == 0
    assert sample_value(text, "ics_discovery_leadership_changes_total") == 0
