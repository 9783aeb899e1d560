"""The API state says what applying did: refused chains are not exposed, and say why."""

from __future__ import annotations

from discovery.desired import ExposurePolicy, desired_cluster
from discovery.endpoints import DEFAULT_POLICY
from discovery.service import observed_state
from tests.support.snapshots import consumer, op, snapshot, validator


def test_outcomes_and_publication_problems_reach_the_views() -> None:
    snap = snapshot(
        [validator(1), validator(2)],
        [consumer(0, "a", [1, 2]), consumer(1, "b", [1, 2]), consumer(2, "c", [2])],
    )
    desired = desired_cluster(snap, op(1), ExposurePolicy(consumer_namespace="x"), DEFAULT_POLICY)
    state = observed_state(
        desired.state,
        {"a": None, "b": "port 30123 is taken by another owner"},
        {"a": "ConfigMap x/ics-peers-a: forbidden"},
    )
    views = {v.chain_id: v for v in state.chains}
    assert views["a"].exposed
    assert views["a"].problem == "ConfigMap x/ics-peers-a: forbidden"
    assert not views["b"].exposed
    assert views["b"].problem == "port 30123 is taken by another owner"
    # Not ours: untouched.
    assert views["c"] == next(v for v in desired.state.chains if v.chain_id == "c")


def test_without_outcomes_a_follower_shows_the_desired_state() -> None:
    snap = snapshot([validator(1), validator(2)], [consumer(0, "a", [1, 2])])
    desired = desired_cluster(snap, op(1), ExposurePolicy(consumer_namespace="x"), DEFAULT_POLICY)
    assert observed_state(desired.state, {}, {}) == desired.state
