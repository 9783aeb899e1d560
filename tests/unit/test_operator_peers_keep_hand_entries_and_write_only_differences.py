"""Peers for cosmos-operator and cosmopilot node resources: ours replaced, others kept, stable."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.errors import InvalidPeerEntry
from discovery.operators import (
    CHAIN_NODE,
    CHAIN_NODE_SET,
    COSMOS_FULL_NODE,
    OWNED_PEERS_ANNOTATION,
    OperatorResourceError,
    ResourceKind,
    apply_merge_patch,
    candidates,
    chain_id_of,
    kind_by_name,
    plan_peers,
)

CHAIN = "consumer-1"
A = "aa" * 20
B = "bb" * 20
C = "cc" * 20
HAND = "dd" * 20


def full_node(peers: str | None = None, annotation: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"maxInboundPeers": 40, "seeds": f"{C}@seed.example.org:26656"}
    if peers is not None:
        config["peers"] = peers
    meta: dict[str, Any] = {"name": "node", "namespace": "consumers", "resourceVersion": "7"}
    if annotation is not None:
        meta["annotations"] = {OWNED_PEERS_ANNOTATION: annotation, "team": "ops"}
    return {
        "apiVersion": "cosmos.strange.love/v1",
        "kind": "CosmosFullNode",
        "metadata": meta,
        "spec": {
            "replicas": 2,
            "chain": {"chainID": CHAIN, "binary": "gaiad", "config": config},
            "podTemplate": {"image": "ghcr.io/example/gaia:v1"},
        },
    }


def chain_node(
    peers: list[dict[str, Any]] | None = None, owned: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "node", "namespace": "consumers", "resourceVersion": "3"}
    if owned is not None:
        meta["annotations"] = {OWNED_PEERS_ANNOTATION: owned}
    spec: dict[str, Any] = {"app": {"image": "example/app"}, "genesis": {"chainID": CHAIN}}
    if peers is not None:
        spec["peers"] = peers
    return {"metadata": meta, "spec": spec}


def node_set(*groups: dict[str, Any], owned: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "set", "namespace": "consumers", "resourceVersion": "9"}
    if owned is not None:
        meta["annotations"] = {OWNED_PEERS_ANNOTATION: owned}
    return {
        "metadata": meta,
        "spec": {"app": {"image": "example/app"}, "nodes": list(groups)},
        "status": {"chainID": CHAIN},
    }


def applied(kind: ResourceKind, obj: dict[str, Any], entries: list[str]) -> dict[str, Any]:
    plan = plan_peers(kind, obj, entries)
    if plan.patch is None:
        return obj
    out = apply_merge_patch(obj, plan.patch)
    assert isinstance(out, dict)
    return out


# --- cosmos-operator -------------------------------------------------------------------


def test_cosmos_operator_peers_go_to_spec_chain_config_peers() -> None:
    entries = [f"{A}@203.0.113.1:30301", f"{B}@[2001:db8::2]:30301"]
    plan = plan_peers(COSMOS_FULL_NODE, full_node(), entries)
    assert plan.patch == {
        "metadata": {
            "resourceVersion": "7",
            "annotations": {OWNED_PEERS_ANNOTATION: f"{A},{B}"},
        },
        "spec": {"chain": {"config": {"peers": ",".join(entries)}}},
    }
    after = applied(COSMOS_FULL_NODE, full_node(), entries)
    # Every other field is untouched.
    assert after["spec"]["chain"]["config"]["maxInboundPeers"] == 40
    assert after["spec"]["chain"]["binary"] == "gaiad"
    assert after["spec"]["podTemplate"] == full_node()["spec"]["podTemplate"]


def test_cosmos_operator_hand_peers_stay_first_and_ours_are_replaced() -> None:
    hand = f"{HAND}@sentry.example.org:26656"
    obj = full_node(f"{hand},{A}@203.0.113.1:30301", annotation=A)
    after = applied(COSMOS_FULL_NODE, obj, [f"{B}@203.0.113.2:30301"])
    assert after["spec"]["chain"]["config"]["peers"] == f"{hand},{B}@203.0.113.2:30301"
    assert after["metadata"]["annotations"] == {OWNED_PEERS_ANNOTATION: B, "team": "ops"}


def test_cosmos_operator_no_peers_left_removes_the_field() -> None:
    # The CRD wants the string non-empty when present.
    obj = full_node(f"{A}@203.0.113.1:30301", annotation=A)
    after = applied(COSMOS_FULL_NODE, obj, [])
    assert "peers" not in after["spec"]["chain"]["config"]
    assert OWNED_PEERS_ANNOTATION not in after["metadata"]["annotations"]
    assert plan_peers(COSMOS_FULL_NODE, full_node(), []).patch is None


def test_a_hand_entry_for_one_of_our_nodes_wins() -> None:
    hand = f"{A}@my-own-route.example.org:26656"
    after = applied(COSMOS_FULL_NODE, full_node(hand), [f"{A}@203.0.113.1:30301"])
    assert after["spec"]["chain"]["config"]["peers"] == hand
    assert OWNED_PEERS_ANNOTATION not in (after["metadata"].get("annotations") or {})


def test_nothing_is_written_when_the_resource_carries_our_peers() -> None:
    entries = [f"{A}@203.0.113.1:30301"]
    after = applied(COSMOS_FULL_NODE, full_node(), entries)
    plan = plan_peers(COSMOS_FULL_NODE, after, entries)
    assert plan.current
    assert plan.patch is None


def test_unchecked_entries_are_never_written() -> None:
    with pytest.raises(InvalidPeerEntry):
        plan_peers(COSMOS_FULL_NODE, full_node(), [f"{A}@host:1,{B}@evil:2"])


def test_a_field_of_the_wrong_type_is_a_clear_error() -> None:
    obj = full_node()
    obj["spec"]["chain"]["config"]["peers"] = ["not", "a", "string"]
    with pytest.raises(OperatorResourceError, match=r"spec\.chain\.config\.peers"):
        plan_peers(COSMOS_FULL_NODE, obj, [f"{A}@203.0.113.1:30301"])


# --- cosmopilot ------------------------------------------------------------------------


def test_cosmopilot_chain_node_gets_id_address_port_records() -> None:
    hand = {"id": HAND, "address": "sentry.example.org", "port": 26656, "unconditional": True}
    obj = chain_node([hand, {"id": A, "address": "old.example.org", "port": 1}], owned=A)
    after = applied(CHAIN_NODE, obj, [f"{B}@203.0.113.2:30301", f"{C}@[2001:db8::3]:30301"])
    assert after["spec"]["peers"] == [
        hand,
        {"id": B, "address": "203.0.113.2", "port": 30301},
        # cosmopilot renders id@address:port: IPv6 keeps its brackets.
        {"id": C, "address": "[2001:db8::3]", "port": 30301},
    ]
    assert after["spec"]["genesis"] == {"chainID": CHAIN}


def test_cosmopilot_node_set_writes_every_group_and_keeps_each_groups_hand_peers() -> None:
    hand = {"id": HAND, "address": "sentry.example.org", "port": 26656}
    groups = (
        {"name": "fullnodes", "instances": 2, "peers": [hand]},
        {"name": "archive", "instances": 1, "config": {"override": {}}},
    )
    entries = [f"{A}@203.0.113.1:30301"]
    after = applied(CHAIN_NODE_SET, node_set(*groups), entries)
    ours = {"id": A, "address": "203.0.113.1", "port": 30301}
    assert after["spec"]["nodes"] == [
        {"name": "fullnodes", "instances": 2, "peers": [hand, ours]},
        {"name": "archive", "instances": 1, "config": {"override": {}}, "peers": [ours]},
    ]
    assert plan_peers(CHAIN_NODE_SET, after, entries).patch is None
    emptied = applied(CHAIN_NODE_SET, after, [])
    assert emptied["spec"]["nodes"] == list(groups)


def test_candidates_match_the_chain_and_skip_chain_nodes_of_a_set() -> None:
    own = chain_node()
    child = copy.deepcopy(own)
    child["metadata"]["name"] = "set-fullnodes-0"
    child["metadata"]["ownerReferences"] = [
        {"apiVersion": "cosmopilot.voluzi.com/v1", "kind": "ChainNodeSet", "name": "set"}
    ]
    other = chain_node()
    other["spec"]["genesis"]["chainID"] = "other-1"
    assert candidates(CHAIN_NODE, [other, child, own], CHAIN) == [own]
    assert chain_id_of(CHAIN_NODE_SET, node_set()) == CHAIN
    assert chain_id_of(COSMOS_FULL_NODE, full_node()) == CHAIN


def test_kinds_are_found_by_kind_or_plural() -> None:
    assert kind_by_name("cosmopilot", "ChainNodeSet") is CHAIN_NODE_SET
    assert kind_by_name("cosmopilot", "chainnodes") is CHAIN_NODE
    assert kind_by_name("cosmopilot", "CosmosFullNode") is None
    assert kind_by_name("cosmos-operator", "cosmosfullnode") is COSMOS_FULL_NODE


# --- properties ------------------------------------------------------------------------

node_ids = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
hosts = st.sampled_from(["203.0.113.1", "198.51.100.7", "[2001:db8::1]", "node.example.org"])
ports = st.integers(min_value=1, max_value=65535)
entry = st.builds(lambda i, h, p: f"{i}@{h}:{p}", node_ids, hosts, ports)
entry_lists = st.lists(entry, max_size=6, unique_by=lambda e: e.partition("@")[0])


@given(hand=entry_lists, first=entry_lists, second=entry_lists)
def test_hand_peers_survive_every_sequence_of_writes(
    hand: list[str], first: list[str], second: list[str]
) -> None:
    obj = full_node(",".join(hand) or None)
    after = applied(COSMOS_FULL_NODE, applied(COSMOS_FULL_NODE, obj, first), second)
    text = after["spec"]["chain"]["config"].get("peers") or ""
    written = text.split(",") if text else []
    # Every hand entry, in its place, first.
    assert written[: len(hand)] == hand
    hand_ids = {h.partition("@")[0] for h in hand}
    assert written[len(hand) :] == [e for e in second if e.partition("@")[0] not in hand_ids]


@given(hand=entry_lists, entries=entry_lists)
def test_writing_twice_writes_once(hand: list[str], entries: list[str]) -> None:
    for kind, obj in (
        (COSMOS_FULL_NODE, full_node(",".join(hand) or None)),
        (CHAIN_NODE, chain_node([_record(h) for h in hand] or None)),
        (CHAIN_NODE_SET, node_set({"name": "g", "peers": [_record(h) for h in hand]})),
    ):
        once = applied(kind, obj, entries)
        assert plan_peers(kind, once, entries).patch is None


@given(hand=entry_lists, entries=entry_lists)
def test_same_input_same_patch(hand: list[str], entries: list[str]) -> None:
    obj = chain_node([_record(h) for h in hand] or None)
    first = plan_peers(CHAIN_NODE, obj, entries)
    assert plan_peers(CHAIN_NODE, copy.deepcopy(obj), list(entries)) == first
    after = applied(CHAIN_NODE, obj, entries)
    assert [p for p in after["spec"].get("peers", []) if p["id"] in {h[:40] for h in hand}] == [
        _record(h) for h in hand
    ]


def _record(entry_text: str) -> dict[str, Any]:
    node_id, _, rest = entry_text.partition("@")
    host, _, port = rest.rpartition(":")
    return {"id": node_id, "address": host, "port": int(port), "private": True}


def test_a_hand_entry_in_one_group_wins_in_every_group() -> None:
    # Ownership is by node ID for the whole resource: a hand entry anywhere keeps
    # that node ours nowhere, so it can never be mistaken for ours later.
    hand = {"id": A, "address": "own-route.example.org", "port": 26656}
    obj = node_set({"name": "one", "peers": [hand]}, {"name": "two"})
    entries = [f"{A}@203.0.113.1:30301", f"{B}@203.0.113.2:30301"]
    after = applied(CHAIN_NODE_SET, obj, entries)
    ours_b = {"id": B, "address": "203.0.113.2", "port": 30301}
    assert after["spec"]["nodes"][0]["peers"] == [hand, ours_b]
    assert after["spec"]["nodes"][1]["peers"] == [ours_b]
    assert after["metadata"]["annotations"][OWNED_PEERS_ANNOTATION] == B
    gone = applied(CHAIN_NODE_SET, after, [f"{C}@203.0.113.3:30301"])
    ours_c = {"id": C, "address": "203.0.113.3", "port": 30301}
    assert [g["peers"] for g in gone["spec"]["nodes"]] == [[hand, ours_c], [ours_c]]


@given(first_group=entry_lists, second_group=entry_lists, a=entry_lists, b=entry_lists)
def test_every_groups_hand_peers_survive_every_sequence_of_writes(
    first_group: list[str], second_group: list[str], a: list[str], b: list[str]
) -> None:
    groups = [
        {"name": "one", "peers": [_record(h) for h in first_group]},
        {"name": "two", "peers": [_record(h) for h in second_group]},
    ]
    after = applied(CHAIN_NODE_SET, applied(CHAIN_NODE_SET, node_set(*groups), a), b)
    hand_ids = {h[:40] for h in first_group + second_group}
    ours = [_record(e) for e in b if e[:40] not in hand_ids]
    for group, hand in zip(after["spec"]["nodes"], (first_group, second_group), strict=True):
        theirs = [_record(h) for h in hand]
        assert group.get("peers", []) == theirs + [_ours(o) for o in ours]


def _ours(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "private"}
