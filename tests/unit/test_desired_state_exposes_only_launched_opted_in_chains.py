"""Only launched chains we opted in to are exposed, each with ports, peers and ConfigMaps."""

from __future__ import annotations

import json

from chainmonitor.types import ConsumerPhase
from discovery.desired import ExposurePolicy, desired_cluster
from discovery.endpoints import DEFAULT_POLICY, EndpointPolicy, EndpointRejection, RejectReason
from discovery.peers_configmap import PEERS_HASH_ANNOTATION, peers_configmap_name
from discovery.ports import ConsumerChainRef, PortScheme, allocate_ports, derive_ports
from discovery.types import NotifyMode
from lbmanager import POD_KEY_ANNOTATION, POD_KEY_HASH_LABEL
from tests.support.snapshots import (
    colliding_chain_ids,
    consumer,
    node_id,
    op,
    snapshot,
    validator,
)

NS = ExposurePolicy(consumer_namespace="consumers")
US = op(1)


def test_launched_opted_in_chain_gets_port_selector_peers_and_configmap() -> None:
    snap = snapshot(
        [validator(1), validator(2), validator(3)], [consumer(0, "alpha-1", opted_in=[1, 2, 3])]
    )
    d = desired_cluster(snap, US, NS, DEFAULT_POLICY)

    [chain] = d.chains
    p2p = derive_ports("alpha-1").p2p
    [exposure] = d.lb.chains
    assert exposure.key == "alpha-1"
    assert [(p.name, p.port, p.target_port) for p in exposure.ports] == [("p2p", p2p, 26656)]
    assert exposure.pods.namespace == "consumers"
    assert POD_KEY_HASH_LABEL in exposure.pods.labels
    assert exposure.pods.annotations == {POD_KEY_ANNOTATION: "alpha-1"}

    # The peers are the other two validators, on the chain's P2P port, never us.
    assert chain.peers.persistent_peers() == ",".join(
        sorted(f"{node_id(n)}@203.0.113.{n}:{p2p}" for n in (2, 3))
    )
    [cm] = chain.configmaps
    assert (cm.namespace, cm.name) == ("consumers", peers_configmap_name("alpha-1"))
    assert cm.data["peer_count"] == "2"
    assert json.loads(cm.data["ports.json"])["p2p"] == p2p
    assert cm.annotations[PEERS_HASH_ANNOTATION] == chain.peers_hash

    [view] = d.state.chains
    assert (view.opted_in, view.exposed, view.problem) == (True, True, "")
    assert d.problems == ()


def test_chains_not_launched_or_not_ours_are_not_exposed_and_only_launched_ones_hold_ports() -> (
    None
):
    snap = snapshot(
        [validator(1), validator(2)],
        [
            consumer(0, "registered", opted_in=[1, 2], phase=ConsumerPhase.REGISTERED),
            consumer(1, "initialized", opted_in=[1], phase=ConsumerPhase.INITIALIZED),
            consumer(2, "theirs", opted_in=[2]),
            consumer(3, "stopped", phase=ConsumerPhase.STOPPED),
            consumer(4, "ours", opted_in=[1, 2]),
        ],
    )
    d = desired_cluster(snap, US, NS, DEFAULT_POLICY)
    assert [c.chain_id for c in d.chains] == ["ours"]
    views = {v.chain_id: v for v in d.state.chains}
    assert {k: v.exposed for k, v in views.items()} == {
        "registered": False,
        "initialized": False,
        "theirs": False,
        "stopped": False,
        "ours": True,
    }
    assert views["registered"].opted_in
    assert not views["theirs"].opted_in
    # Launched and stopped chains hold ports; chains that never launched take none.
    assert {k: v.ports is not None for k, v in views.items()} == {
        "registered": False,
        "initialized": False,
        "theirs": True,
        "stopped": True,
        "ours": True,
    }


def test_ports_are_allocated_over_every_chain_including_stopped_ones() -> None:
    first, second = colliding_chain_ids()
    chains = [
        consumer(0, first, phase=ConsumerPhase.STOPPED),
        consumer(1, second, opted_in=[1, 2]),
    ]
    d = desired_cluster(snapshot([validator(1), validator(2)], chains), US, NS, DEFAULT_POLICY)
    plan = allocate_ports(
        [ConsumerChainRef.parse("0", first), ConsumerChainRef.parse("1", second)],
        PortScheme.DOCUMENT,
    )
    expected = plan.for_consumer(ConsumerChainRef.parse("1", second).consumer_id).ports.p2p
    # The stopped chain still holds the derived port; ours moved off it.
    assert expected != derive_ports(second).p2p
    [exposure] = d.lb.chains
    assert exposure.ports[0].port == expected
    [chain] = d.chains
    assert all(p.port == expected for p in chain.peers.peers)


def test_opting_out_removes_the_chain_and_another_opt_out_removes_only_that_peer() -> None:
    both = snapshot([validator(1), validator(2), validator(3)], [consumer(0, "c", [1, 2, 3])])
    they_left = snapshot([validator(1), validator(2), validator(3)], [consumer(0, "c", [1, 3])])
    we_left = snapshot([validator(1), validator(2), validator(3)], [consumer(0, "c", [2, 3])])
    assert len(desired_cluster(both, US, NS, DEFAULT_POLICY).chains[0].peers.peers) == 2
    [chain] = desired_cluster(they_left, US, NS, DEFAULT_POLICY).chains
    assert [p.operator_address for p in chain.peers.peers] == [op(3)]
    gone = desired_cluster(we_left, US, NS, DEFAULT_POLICY)
    assert gone.chains == ()
    assert gone.lb.chains == ()
    assert gone.configmaps() == ()


def test_hostile_endpoint_is_left_out_with_its_reason_and_shown_in_the_registry() -> None:
    snap = snapshot(
        [validator(1), validator(2), validator(3, f"p2p=127.0.0.1 node={node_id(3)}")],
        [consumer(0, "c", [1, 2, 3])],
    )
    d = desired_cluster(snap, US, NS, DEFAULT_POLICY)
    [chain] = d.chains
    assert [p.operator_address for p in chain.peers.peers] == [op(2)]
    [left] = chain.peers.left_out
    assert (left.operator_address, left.reason) == (op(3), "invalid-endpoint")
    views = {v.operator_address: v for v in d.state.validators}
    rejected = views[op(3)].endpoint
    assert isinstance(rejected, EndpointRejection)
    assert rejected.reason is RejectReason.FORBIDDEN_ADDRESS
    left_doc = json.loads(chain.configmaps[0].data["left_out.json"])
    assert [x["reason"] for x in left_doc] == ["invalid-endpoint"]


def test_endpoint_policy_applies_to_peers() -> None:
    snap = snapshot([validator(1), validator(2), validator(3)], [consumer(0, "c", [1, 2, 3])])
    policy = EndpointPolicy.from_strings(deny=["203.0.113.2/32"])
    [chain] = desired_cluster(snap, US, NS, policy).chains
    assert [p.operator_address for p in chain.peers.peers] == [op(3)]


def test_configmaps_go_where_the_consumer_pods_are_when_no_namespace_is_set() -> None:
    snap = snapshot([validator(1), validator(2)], [consumer(0, "c", [1, 2])])
    anywhere = ExposurePolicy()
    blind = desired_cluster(snap, US, anywhere, DEFAULT_POLICY)
    [chain] = blind.chains
    assert chain.configmaps == ()
    assert "no consumer pod" in chain.configmap_problem
    assert blind.held_configmap_names() == {peers_configmap_name("c")}
    assert blind.lb.chains[0].pods.namespace is None

    # A replica that does not lead does not watch pods: it has nothing to report.
    follower = desired_cluster(snap, US, anywhere, DEFAULT_POLICY, pods_known=False)
    assert follower.chains[0].configmap_problem == ""
    assert follower.state.chains[0].problem == ""
    assert follower.held_configmap_names() == {peers_configmap_name("c")}

    seen = desired_cluster(snap, US, anywhere, DEFAULT_POLICY, {"c": ["b-ns", "a-ns", "b-ns"]})
    assert [cm.namespace for cm in seen.configmaps()] == ["a-ns", "b-ns"]
    assert seen.held_configmap_names() == frozenset()


def test_peers_namespaces_bound_where_configmaps_go_and_say_which_pods_are_outside() -> None:
    snap = snapshot([validator(1), validator(2)], [consumer(0, "c", [1, 2])])
    listed = ExposurePolicy(peers_namespaces=frozenset({"a-ns", "z-ns"}))
    pods = {"c": ["b-ns", "a-ns"]}
    d = desired_cluster(snap, US, listed, DEFAULT_POLICY, pods)
    [chain] = d.chains
    assert [cm.namespace for cm in chain.configmaps] == ["a-ns"]
    assert chain.configmap_problem == (
        "consumer pods in namespace b-ns, outside peers_namespaces (a-ns, z-ns): "
        "no peers ConfigMap written there"
    )
    [view] = d.state.chains
    assert "outside peers_namespaces" in view.problem
    # Nor is traffic routed there: the chain's pods are looked for only in those namespaces.
    [exposure] = d.lb.chains
    assert exposure.pods.namespace is None
    assert exposure.pods.namespaces == {"a-ns", "z-ns"}
    assert ExposurePolicy().pod_selector("c").namespaces == frozenset()

    only_outside = desired_cluster(snap, US, listed, DEFAULT_POLICY, {"c": ["b-ns"]})
    assert only_outside.configmaps() == ()
    # Nothing was written for the chain, so none of its existing ConfigMaps may go.
    assert only_outside.held_configmap_names() == {peers_configmap_name("c")}
    assert listed.pod_selector("c").allows_namespace("z-ns")
    assert not listed.pod_selector("c").allows_namespace("b-ns")
    assert ExposurePolicy().pod_selector("c").allows_namespace("b-ns")
    assert NS.pod_selector("c").allows_namespace("consumers")
    assert not NS.pod_selector("c").allows_namespace("a-ns")


def test_relaunched_chain_id_exposes_only_the_newest_consumer() -> None:
    snap = snapshot([validator(1), validator(2)], [consumer(3, "c", [1, 2]), consumer(7, "c", [1])])
    d = desired_cluster(snap, US, NS, DEFAULT_POLICY)
    [chain] = d.chains
    assert chain.consumer_id == "7"
    old = next(v for v in d.state.chains if v.consumer_id == "3")
    assert not old.exposed
    assert "consumer 7" in old.problem


def test_without_our_validator_in_the_registry_nothing_is_exposed_and_it_says_why() -> None:
    snap = snapshot([validator(2), validator(3)], [consumer(0, "c", [2, 3])])
    d = desired_cluster(snap, US, NS, DEFAULT_POLICY)
    assert d.chains == ()
    assert any("not in the provider registry" in p for p in d.problems)


def test_unreadable_consumer_is_left_out_and_the_others_work() -> None:
    snap = snapshot(
        [validator(1), validator(2)], [consumer(0, "", [1, 2]), consumer(1, "fine", [1, 2])]
    )
    d = desired_cluster(snap, US, NS, DEFAULT_POLICY)
    assert [c.chain_id for c in d.chains] == ["fine"]
    assert any("left out" in p for p in d.problems)


def test_notify_mode_and_extra_pod_labels_come_from_the_policy() -> None:
    policy = ExposurePolicy(
        consumer_namespace="consumers",
        consumer_pod_labels={"team": "ops"},
        notify_default=NotifyMode.RESTART,
        notify_modes={"b": NotifyMode.DIAL},
    )
    snap = snapshot([validator(1), validator(2)], [consumer(0, "a", [1, 2]), consumer(1, "b", [1])])
    d = desired_cluster(snap, US, policy, DEFAULT_POLICY)
    assert {c.chain_id: c.notify for c in d.chains} == {
        "a": NotifyMode.RESTART,
        "b": NotifyMode.DIAL,
    }
    assert d.lb.chains[0].pods.labels["team"] == "ops"
    # A chain whose only opted-in validator is us has an empty (but valid) peer list.
    b = d.chain("b")
    assert b is not None
    assert b.peers.peers == ()
    assert b.configmaps[0].data["peer_count"] == "0"
