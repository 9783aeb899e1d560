"""The restart notifier only rolls workloads whose rollout cannot run two consumer nodes."""

from __future__ import annotations

from typing import Any

import pytest

from discovery.peers_configmap import PEERS_HASH_ANNOTATION
from discovery.workloads import restart_refusal, runs_chain, with_peers_hash
from lbmanager.consumer_pods import pod_annotations_for_key, pod_labels_for_key


def workload(strategy: dict[str, Any] | None, key: str = "updateStrategy") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "template": {
            "metadata": {
                "labels": {**pod_labels_for_key("chain-a"), "app": "node"},
                "annotations": pod_annotations_for_key("chain-a"),
            }
        }
    }
    if strategy is not None:
        spec[key] = strategy
    return {"metadata": {"name": "w", "namespace": "n"}, "spec": spec}


@pytest.mark.parametrize(
    ("strategy", "safe"),
    [
        (None, False),  # the API server defaults to RollingUpdate, maxSurge 25%
        ({"type": "RollingUpdate"}, False),
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, False),
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "10%"}}, False),
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, True),
        ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "0%"}}, True),
        ({"type": "Recreate"}, True),
    ],
)
def test_deployment_rollouts_that_could_double_sign_are_refused(
    strategy: dict[str, Any] | None, safe: bool
) -> None:
    reason = restart_refusal("Deployment", workload(strategy, key="strategy"))
    assert (reason is None) is safe
    if reason is not None:
        assert "double-sign" in reason


def test_statefulsets_roll_one_pod_at_a_time_unless_on_delete() -> None:
    assert restart_refusal("StatefulSet", workload(None)) is None
    assert restart_refusal("StatefulSet", workload({"type": "RollingUpdate"})) is None
    reason = restart_refusal("StatefulSet", workload({"type": "OnDelete"}))
    assert reason is not None
    assert "OnDelete" in reason


def test_workloads_are_matched_by_the_pod_convention() -> None:
    w = workload(None)
    assert runs_chain(w, "chain-a", {})
    assert runs_chain(w, "chain-a", {"app": "node"})
    assert not runs_chain(w, "chain-a", {"app": "other"})
    assert not runs_chain(w, "chain-b", {})
    # A hash label alone is not enough: the exact chain ID must be annotated.
    w["spec"]["template"]["metadata"]["annotations"] = {}
    assert not runs_chain(w, "chain-a", {})


def test_peers_hash_is_set_only_when_it_differs() -> None:
    w = workload(None)
    updated = with_peers_hash(w, "abc")
    assert updated is not None
    assert updated["spec"]["template"]["metadata"]["annotations"][PEERS_HASH_ANNOTATION] == "abc"
    assert PEERS_HASH_ANNOTATION not in w["spec"]["template"]["metadata"]["annotations"]
    assert with_peers_hash(updated, "abc") is None
    assert with_peers_hash(updated, "def") is not None
