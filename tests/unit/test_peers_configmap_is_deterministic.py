"""The peers ConfigMap is a pure function of its inputs: same world, same bytes."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.errors import InvalidPeerEntry, InvalidPort
from discovery.peers_configmap import (
    CONTENT_HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    PEERS_HASH_ANNOTATION,
    build_peers_configmap,
    configmap_update,
    content_hash,
    peers_configmap_name,
)
from discovery.state import LeftOutRecord, PeerRecord
from tests.support.discovery_states import build_state

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

PEERS = [
    PeerRecord("cosmosvaloper1bbb", "bob", "02" * 20, "2001:db8::2", 30301),
    PeerRecord("cosmosvaloper1ccc", "carol \u00e9\u202e", "03" * 20, "198.51.100.3", 30301),
    PeerRecord("cosmosvaloper1ddd", "dave", "04" * 20, "node.example.org", 30301),
]
LEFT_OUT = [
    LeftOutRecord("cosmosvalcons1x", "cosmosvaloper1x", "x", "no-endpoint", "no p2p= token"),
    LeftOutRecord("cosmosvalcons1y", "", "", "unknown-validator", "no validator"),
]
PORTS = {"rpc": 30401, "p2p": 30301, "grpc": 30501}


def build(peers: list[PeerRecord] = PEERS, left: list[LeftOutRecord] = LEFT_OUT) -> bytes:
    return build_peers_configmap(
        chain_id="consumer-0-1751686503-0",
        consumer_id="0",
        namespace="consumers",
        peers=peers,
        left_out=left,
        ports=PORTS,
    ).render()


@given(st.permutations(PEERS), st.permutations(LEFT_OUT))
def test_input_order_does_not_change_a_byte(
    peers: list[PeerRecord], left: list[LeftOutRecord]
) -> None:
    assert build(peers, left) == build()


def test_content_as_the_consumer_node_reads_it() -> None:
    cm = build_peers_configmap(
        chain_id="consumer-0-1751686503-0",
        consumer_id="0",
        namespace="consumers",
        peers=PEERS,
        left_out=LEFT_OUT,
        ports=PORTS,
    )
    data = cm.data
    # Sorted by entry (node ID first), whatever the input order.
    entries = [
        f"{'02' * 20}@[2001:db8::2]:30301",
        f"{'03' * 20}@198.51.100.3:30301",
        f"{'04' * 20}@node.example.org:30301",
    ]
    assert data["persistent_peers"] == ",".join(entries)
    assert data["peers.txt"] == "".join(e + "\n" for e in entries)
    assert data["peer_count"] == "3"
    assert json.loads(data["ports.json"]) == PORTS
    assert list(json.loads(data["ports.json"])) == ["grpc", "p2p", "rpc"]
    peers_doc = json.loads(data["peers.json"])
    assert [p["moniker"] for p in peers_doc] == ["bob", "carol \u00e9\u202e", "dave"]
    assert set(peers_doc[0]) == {"operator", "moniker", "host", "port", "node_id", "entry"}
    assert data["peers.json"].isascii()  # untrusted monikers are escaped
    left = json.loads(data["left_out.json"])
    assert [x["reason"] for x in left] == ["unknown-validator", "no-endpoint"]
    assert cm.annotations[CONTENT_HASH_ANNOTATION] == content_hash(data)
    assert cm.labels[MANAGED_BY_LABEL] == "ics-discovery"
    assert cm.annotations[PEERS_HASH_ANNOTATION] == cm.peers_hash


def test_builder_accepts_what_the_core_computes() -> None:
    state = build_state(chains={"1": "consumer-a"})
    chain = state.chains[0]
    assert chain.peers is not None
    assert chain.ports is not None
    cm = build_peers_configmap(
        chain_id=chain.chain_id,
        consumer_id=chain.consumer_id,
        namespace="ns",
        peers=chain.peers.peers,
        left_out=chain.peers.left_out,
        ports=chain.ports.ports,
    )
    assert cm.data["persistent_peers"] == chain.peers.persistent_peers()
    assert cm.peers_hash == chain.peers.peers_hash()


def test_only_the_peer_list_moves_the_peers_hash() -> None:
    base = build_peers_configmap(
        chain_id="c", consumer_id="1", namespace="n", peers=PEERS, left_out=[], ports=PORTS
    )
    more_left_out = build_peers_configmap(
        chain_id="c", consumer_id="1", namespace="n", peers=PEERS, left_out=LEFT_OUT, ports=PORTS
    )
    fewer_peers = build_peers_configmap(
        chain_id="c", consumer_id="1", namespace="n", peers=PEERS[:2], left_out=[], ports=PORTS
    )
    assert base.peers_hash == more_left_out.peers_hash != fewer_peers.peers_hash
    assert len({content_hash(c.data) for c in (base, more_left_out, fewer_peers)}) == 3


@pytest.mark.parametrize(
    "bad",
    [
        PeerRecord("op", "m", "02" * 20, "1.2.3.4,evil@5.6.7.8", 30301),
        PeerRecord("op", "m", "zz" * 20, "1.2.3.4", 30301),
        PeerRecord("op", "m", "02" * 20, "", 30301),
        PeerRecord("op", "m", "02" * 20, "1.2.3.4", 0),
    ],
)
def test_an_entry_cometbft_would_reject_is_never_rendered(bad: PeerRecord) -> None:
    with pytest.raises(InvalidPeerEntry):
        build([*PEERS, bad])


def test_bad_ports_are_refused() -> None:
    with pytest.raises(InvalidPort):
        build_peers_configmap(
            chain_id="c", consumer_id="1", namespace="n", peers=[], left_out=[], ports={"p2p": 0}
        )


@given(st.text(min_size=1, max_size=50).filter(lambda s: s.strip() and len(s.encode()) <= 50))
def test_every_chain_id_gets_a_dns_label_name(chain_id: str) -> None:
    name = peers_configmap_name(chain_id)
    assert len(name) <= 63
    assert _DNS_LABEL.fullmatch(name)
    assert peers_configmap_name(chain_id) == name


def test_similar_chain_ids_get_distinct_names() -> None:
    names = {peers_configmap_name(c) for c in ("Chain_A", "chain.a", "chain-a", "CHAIN-A")}
    assert len(names) == 4
    assert peers_configmap_name("consumer-0-1751686503-0").startswith(
        "ics-peers-consumer-0-1751686503-0-"
    )


def test_update_keeps_foreign_metadata_and_is_none_when_equal() -> None:
    desired = build_peers_configmap(
        chain_id="c", consumer_id="1", namespace="n", peers=PEERS, left_out=[], ports=PORTS
    )
    existing = desired.to_object()
    existing["metadata"]["resourceVersion"] = "7"
    existing["metadata"]["labels"]["team"] = "ops"
    assert configmap_update(existing, desired) is None
    existing["data"]["persistent_peers"] = "tampered"
    update = configmap_update(existing, desired)
    assert update is not None
    assert update["data"] == dict(desired.data)
    assert update["metadata"]["labels"]["team"] == "ops"
    assert update["metadata"]["resourceVersion"] == "7"
    assert existing["data"]["persistent_peers"] == "tampered"  # input not mutated
