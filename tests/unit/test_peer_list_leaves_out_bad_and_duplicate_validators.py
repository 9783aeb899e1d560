"""Peer lists name every opted-in validator but us, sorted, and say why anyone was left out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.endpoints import (
    EndpointRejection,
    Host,
    HostKind,
    PublishedEndpoint,
    RejectReason,
    read_details,
)
from discovery.errors import InvalidInput, InvalidPort
from discovery.peers import (
    ConsumerMembers,
    LeftOutReason,
    PeerList,
    ValidatorEndpoint,
    build_peer_list,
    check_peer_entry,
)
from discovery.types import ChainId, ConsensusAddress, ConsumerId, NodeId, OperatorAddress

PORT = 30301
US = OperatorAddress("cosmosvaloper1us")


def node(n: int) -> NodeId:
    return NodeId(f"{n:040x}")


def validator(name: str, details: str, node_id: NodeId | None = None) -> ValidatorEndpoint:
    return ValidatorEndpoint.from_details(
        f"cosmosvaloper1{name}", f"cosmosvalcons1{name}", details, node_id=node_id
    )


def keyed(*records: ValidatorEndpoint) -> dict[OperatorAddress, ValidatorEndpoint]:
    return {r.operator_address: r for r in records}


def members(*records: ValidatorEndpoint, extra: tuple[str, ...] = ()) -> ConsumerMembers:
    opted = {r.consensus_address for r in records} | {ConsensusAddress(e) for e in extra}
    return ConsumerMembers(ConsumerId("1"), ChainId("consumer-1"), frozenset(opted))


def build(*records: ValidatorEndpoint, extra: tuple[str, ...] = ()) -> PeerList:
    return build_peer_list(members(*records, extra=extra), keyed(*records), US, PORT)


def reasons(peers: PeerList) -> dict[str, LeftOutReason]:
    return {(x.operator_address or x.consensus_address): x.reason for x in peers.left_out}


def test_every_opted_in_validator_but_us_sorted() -> None:
    us = validator("us", f"p2p=203.0.113.1 node={node(1)}")
    bob = validator("bob", f"Validator bob - p2p=203.0.113.3 node={node(3)}")
    alice = validator("alice", f"p2p=[2001:db8::2] node={node(2)}")
    carol = validator("carol", "carol.example.com", node_id=node(4))
    peers = build(us, bob, alice, carol)
    assert peers.entries() == (
        f"{node(2)}@[2001:db8::2]:{PORT}",
        f"{node(3)}@203.0.113.3:{PORT}",
        f"{node(4)}@carol.example.com:{PORT}",
    )
    assert peers.persistent_peers() == ",".join(peers.entries())
    assert peers.left_out == ()
    assert {p.operator_address for p in peers.peers} == {
        alice.operator_address,
        bob.operator_address,
        carol.operator_address,
    }


def test_validators_not_opted_in_are_ignored() -> None:
    bob = validator("bob", f"p2p=203.0.113.3 node={node(3)}")
    dave = validator("dave", f"p2p=203.0.113.4 node={node(4)}")
    chain = members(bob)
    peers = build_peer_list(chain, keyed(bob, dave), US, PORT)
    assert peers.entries() == (f"{node(3)}@203.0.113.3:{PORT}",)


def test_left_out_reasons() -> None:
    quiet = validator("quiet", "just a validator")
    loop = validator("loop", f"p2p=127.0.0.1 node={node(5)}")
    noid = validator("noid", "p2p=203.0.113.6")
    badid = validator("badid", "p2p=203.0.113.7", node_id=NodeId("not-an-id"))
    peers = build(quiet, loop, noid, badid, extra=("cosmosvalcons1ghost",))
    assert peers.peers == ()
    assert reasons(peers) == {
        "cosmosvaloper1quiet": LeftOutReason.NO_ENDPOINT,
        "cosmosvaloper1loop": LeftOutReason.INVALID_ENDPOINT,
        "cosmosvaloper1noid": LeftOutReason.NO_NODE_ID,
        "cosmosvaloper1badid": LeftOutReason.NO_NODE_ID,
        "cosmosvalcons1ghost": LeftOutReason.UNKNOWN_VALIDATOR,
    }
    loop_entry = next(x for x in peers.left_out if x.reason is LeftOutReason.INVALID_ENDPOINT)
    assert "forbidden-address" in loop_entry.detail


def test_one_bad_validator_does_not_stop_the_others() -> None:
    good = validator("good", f"p2p=203.0.113.9 node={node(9)}")
    hostile = validator("hostile", f"p2p=203.0.113.8,10.0.0.1 node={node(8)}")
    peers = build(good, hostile)
    assert peers.entries() == (f"{node(9)}@203.0.113.9:{PORT}",)
    assert reasons(peers) == {"cosmosvaloper1hostile": LeftOutReason.INVALID_ENDPOINT}


def test_an_impostor_claiming_anothers_node_id_removes_nobody() -> None:
    a = validator("a", f"p2p=203.0.113.10 node={node(10)}")
    impostor = validator("b", f"p2p=203.0.113.11 node={node(10)}")
    c = validator("c", f"p2p=203.0.113.12 node={node(12)}")
    peers = build(a, impostor, c)
    # Both claims stay: CometBFT refuses the one whose key does not match.
    assert peers.entries() == tuple(
        sorted(
            [
                f"{node(10)}@203.0.113.10:{PORT}",
                f"{node(10)}@203.0.113.11:{PORT}",
                f"{node(12)}@203.0.113.12:{PORT}",
            ]
        )
    )
    assert peers.left_out == ()


def test_an_impostor_claiming_anothers_host_removes_nobody() -> None:
    a = validator("a", f"p2p=203.0.113.10 node={node(10)}")
    # The same host written differently is still the same host.
    b = validator("b", f"p2p=[::ffff:203.0.113.10]:26656 node={node(11)}")
    peers = build(a, b)
    assert {p.operator_address for p in peers.peers} == {a.operator_address, b.operator_address}
    assert peers.left_out == ()


def test_one_validator_publishing_anothers_host_and_a_third_ones_id_removes_neither() -> None:
    # The attack: p2p=<B's host> node=<A's node ID> used to evict A and B.
    a = validator("a", f"p2p=203.0.113.10 node={node(10)}")
    b = validator("b", f"p2p=203.0.113.11 node={node(11)}")
    mallory = validator("m", f"p2p=203.0.113.11 node={node(10)}")
    peers = build(a, b, mallory)
    assert f"{node(10)}@203.0.113.10:{PORT}" in peers.entries()
    assert f"{node(11)}@203.0.113.11:{PORT}" in peers.entries()
    assert peers.left_out == ()


def test_copying_our_endpoint_or_node_id_only_hurts_the_copier() -> None:
    us = validator("us", f"p2p=203.0.113.1 node={node(1)}")
    host_copier = validator("hostcopy", f"p2p=203.0.113.1 node={node(20)}")
    id_copier = validator("idcopy", f"p2p=203.0.113.21 node={node(1)}")
    honest = validator("honest", f"p2p=203.0.113.22 node={node(22)}")
    peers = build(us, host_copier, id_copier, honest)
    assert peers.entries() == (f"{node(22)}@203.0.113.22:{PORT}",)
    assert reasons(peers) == {
        "cosmosvaloper1hostcopy": LeftOutReason.DUPLICATE_ADDRESS,
        "cosmosvaloper1idcopy": LeftOutReason.DUPLICATE_NODE_ID,
    }
    assert all("us" in x.detail for x in peers.left_out)


def test_keyed_by_operator_address_not_moniker() -> None:
    # Two validators with the same moniker text are two validators.
    a = validator("a", f"Validator bob - p2p=203.0.113.30 node={node(30)}")
    b = validator("b", f"Validator bob - p2p=203.0.113.31 node={node(31)}")
    assert len(build(a, b).peers) == 2


def test_callers_node_id_wins_over_the_published_one() -> None:
    a = validator("a", f"p2p=203.0.113.40 node={node(40)}", node_id=NodeId(f"{41:040X}"))
    assert build(a).entries() == (f"{node(41)}@203.0.113.40:{PORT}",)


def test_hand_built_hosts_are_not_trusted() -> None:
    forged = ValidatorEndpoint(
        OperatorAddress("cosmosvaloper1forged"),
        ConsensusAddress("cosmosvalcons1forged"),
        PublishedEndpoint(Host("1.2.3.4,5.6.7.8", HostKind.IPV4), node(50)),
    )
    loop = ValidatorEndpoint(
        OperatorAddress("cosmosvaloper1loop"),
        ConsensusAddress("cosmosvalcons1loop"),
        PublishedEndpoint(Host("127.0.0.1", HostKind.IPV4), node(51)),
    )
    peers = build(forged, loop)
    assert peers.peers == ()
    assert set(reasons(peers).values()) == {LeftOutReason.INVALID_ENDPOINT}


def test_ambiguous_consensus_addresses_are_left_out() -> None:
    a = validator("a", f"p2p=203.0.113.60 node={node(60)}")
    b = ValidatorEndpoint(
        OperatorAddress("cosmosvaloper1b"),
        a.consensus_address,
        read_details(f"p2p=203.0.113.61 node={node(61)}"),
    )
    peers = build_peer_list(members(a), keyed(a, b), US, PORT)
    assert peers.peers == ()
    assert [x.reason for x in peers.left_out] == [LeftOutReason.UNKNOWN_VALIDATOR]


def test_a_rejected_endpoint_record_keeps_its_reason() -> None:
    rejected = ValidatorEndpoint(
        OperatorAddress("cosmosvaloper1r"),
        ConsensusAddress("cosmosvalcons1r"),
        EndpointRejection(RejectReason.CONFLICTING_ENDPOINTS, "2 different p2p= hosts"),
    )
    (left,) = build(rejected).left_out
    assert left.reason is LeftOutReason.INVALID_ENDPOINT
    assert "conflicting-endpoints" in left.detail


@pytest.mark.parametrize("port", [0, 65536, -5, True])
def test_bad_ports_are_refused(port: int) -> None:
    with pytest.raises(InvalidPort):
        build_peer_list(members(), {}, US, port)


def test_mis_keyed_validators_are_refused() -> None:
    a = validator("a", "p2p=203.0.113.1")
    with pytest.raises(InvalidInput):
        build_peer_list(members(a), {OperatorAddress("cosmosvaloper1zzz"): a}, US, PORT)


details_strategy = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda host, n, text: f"{text} p2p={host} node={n:040x}",
        st.sampled_from(
            ["203.0.113.1", "203.0.113.2", "[2001:db8::1]", "a.example", "127.0.0.1", "x,y"]
        ),
        st.integers(0, 6),
        st.text(max_size=10),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(details_strategy, max_size=25), st.integers(1, 65535), st.data())
def test_every_built_list_passes_cometbft_checks_and_accounts_for_everyone(
    all_details: list[str], port: int, data: st.DataObject
) -> None:
    records = [validator(f"v{i}", d) for i, d in enumerate(all_details)]
    records.append(validator("us", "p2p=203.0.113.1 node=" + "0" * 40))
    opted = data.draw(st.sets(st.sampled_from([r.consensus_address for r in records])))
    chain = ConsumerMembers(ConsumerId("7"), ChainId("c-7"), frozenset(opted))
    peers = build_peer_list(chain, keyed(*records), US, port)
    entries = peers.entries()
    assert list(entries) == sorted(entries)
    for entry in entries:
        check_peer_entry(entry)
        assert entry.count("@") == 1
        assert "," not in entry
        assert entry.endswith(f":{port}")
    # Nobody claiming our node ID or host is a peer; duplicates among others stay.
    assert all(p.node_id != "0" * 40 for p in peers.peers)
    assert all(p.host.name != "203.0.113.1" for p in peers.peers)
    listed = [p.operator_address for p in peers.peers] + [
        x.operator_address for x in peers.left_out
    ]
    assert len(listed) == len(set(listed))
    named = set(listed)
    expected = {r.operator_address for r in records if r.consensus_address in opted} - {US}
    assert named == expected
    assert US not in {p.operator_address for p in peers.peers}
    # Same input, same bytes.
    assert build_peer_list(chain, keyed(*reversed(records)), US, port) == peers
