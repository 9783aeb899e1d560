"""`--compat ics-operator`: Go's ports, endpoint forms and node IDs, with our checks kept.

The expected values come from `tests/support/go_reference.py`, a statement by
statement translation of the Go implementation (roylee17/monitor at b5b303d),
never from the product code under test.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.desired import ExposurePolicy, desired_cluster
from discovery.endpoints import (
    DEFAULT_POLICY,
    EndpointPolicy,
    EndpointRejection,
    PublishedEndpoint,
    RejectReason,
    parse_host,
    read_details,
)
from discovery.errors import EndpointRejected
from discovery.interop import (
    Compat,
    compat_allocate,
    go_port_refusal,
    go_reserved_ports,
    moniker_node_ids,
    read_details_compat,
)
from discovery.ports import ConsumerChainRef, PortScheme, allocate_ports, chain_offset
from discovery.types import OperatorAddress
from tests.support.go_reference import go_calculate_ports, go_extract_p2p_endpoint, go_node_id
from tests.support.snapshots import colliding_chain_ids, consumer, node_id, op, snapshot, validator

ICS = Compat.ICS_OPERATOR
# offset 26: RPC = 26757 + 260 = 27017, in Go's reserved list (MongoDB).
REFUSED_CHAIN = "consumer-180"
COMPAT = ExposurePolicy(scheme=PortScheme.ICS_OPERATOR, compat=ICS, consumer_namespace="consumers")
US = op(1)

chain_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=50
)


# --- ports -------------------------------------------------------------------------


def test_offset_26_is_refused_as_go_refuses_it() -> None:
    assert chain_offset(REFUSED_CHAIN) == 26
    assert go_calculate_ports(REFUSED_CHAIN) is None
    reason = go_port_refusal(REFUSED_CHAIN)
    assert reason is not None
    assert "RPC port 27017" in reason
    assert "MongoDB" in reason


@settings(max_examples=300)
@given(chain_ids)
def test_go_refuses_exactly_the_chains_we_refuse_and_agrees_on_the_rest(chain_id: str) -> None:
    go = go_calculate_ports(chain_id)
    assert (go is None) == (go_port_refusal(chain_id) is not None)
    if go is None:
        return
    plan, refused = compat_allocate([ConsumerChainRef.parse("0", chain_id)])
    assert refused == {}
    [a] = plan.allocations
    assert {k: v for k, v in a.ports.as_json().items() if k in go} == go


def test_a_refused_chain_gets_no_ports_and_takes_none_from_the_others() -> None:
    chains = [
        ConsumerChainRef.parse("0", "alpha-1"),
        ConsumerChainRef.parse("1", REFUSED_CHAIN),
        ConsumerChainRef.parse("2", "beta-1"),
    ]
    plan, refused = compat_allocate(chains)
    assert list(refused) == ["1"]
    assert [a.chain_id for a in plan.allocations] == ["alpha-1", "beta-1"]
    assert go_reserved_ports() <= plan.reserved
    assert 27017 in plan.reserved
    assert 1023 in plan.reserved
    assert 1024 not in plan.reserved
    # Without compat mode the chain gets its derived ports, 27017 included.
    plain = allocate_ports(chains, PortScheme.ICS_OPERATOR)
    assert plain.for_consumer("1").ports.rpc == 27017  # type: ignore[arg-type]


def test_collisions_differ_from_go_only_for_the_later_chain() -> None:
    first, second = colliding_chain_ids()
    go_first, go_second = go_calculate_ports(first), go_calculate_ports(second)
    assert go_first is not None
    assert go_second is not None
    # Go gives both chains the same ports ...
    assert go_first == go_second
    plan, _ = compat_allocate(
        [ConsumerChainRef.parse("0", first), ConsumerChainRef.parse("1", second)]
    )
    a, b = plan.allocations
    # ... we keep them for the earlier chain and move the later one (docs/interop.md).
    assert {k: v for k, v in a.ports.as_json().items() if k in go_first} == go_first
    assert b.collided
    assert b.ports.p2p != go_second["p2p"]


def test_compat_desired_state_does_not_expose_a_chain_go_refuses() -> None:
    snap = snapshot(
        [validator(1), validator(2)],
        [consumer(0, REFUSED_CHAIN, opted_in=[1, 2]), consumer(1, "alpha-1", opted_in=[1, 2])],
    )
    d = desired_cluster(snap, US, COMPAT, DEFAULT_POLICY)
    assert [c.chain_id for c in d.chains] == ["alpha-1"]
    view = next(v for v in d.state.chains if v.chain_id == REFUSED_CHAIN)
    assert view.ports is None
    assert not view.exposed
    assert "27017" in view.problem
    plain = desired_cluster(
        snap,
        US,
        ExposurePolicy(scheme=PortScheme.ICS_OPERATOR, consumer_namespace="c"),
        DEFAULT_POLICY,
    )
    assert [c.chain_id for c in plain.chains] == ["alpha-1", REFUSED_CHAIN]


# --- endpoints ------------------------------------------------------------------------

GO_FORMS = [
    ("Validator bob - p2p=203.0.113.7", "203.0.113.7"),
    ("p2p=203.0.113.7:26656", "203.0.113.7"),
    ('{"p2p":"203.0.113.7:26656"}', "203.0.113.7"),
    ('{"moniker":"bob","p2p":"node.example.com"}', "node.example.com"),
    ("p2p= 203.0.113.7", "203.0.113.7"),
    ("see xp2p=203.0.113.7", "203.0.113.7"),
    ("p2p=203.0.113.7:99999", "203.0.113.7"),
]


@pytest.mark.parametrize(("details", "host"), GO_FORMS)
def test_go_forms_are_read_in_compat_mode(details: str, host: str) -> None:
    assert go_extract_p2p_endpoint(details) == host
    result = read_details_compat(details, DEFAULT_POLICY, ICS)
    assert result == PublishedEndpoint(parse_host(host))


@pytest.mark.parametrize(
    ("details", "reason"),
    [
        ('{"p2p":"127.0.0.1:26656"}', RejectReason.FORBIDDEN_ADDRESS),
        ("p2p= 203.0.113.7,evil@198.51.100.1:1", RejectReason.MALFORMED_HOST),
        ("p2p= 203.0.113.7 node=junk", RejectReason.MALFORMED_HOST),
        ("p2p= localhost", RejectReason.FORBIDDEN_NAME),
        ('{"p2p":"[2001:db8:"}', RejectReason.MALFORMED_HOST),
        # Our own verdicts on our own forms stand, whatever Go would read.
        ("p2p=203.0.113.7\np2p=198.51.100.1", RejectReason.CONFLICTING_ENDPOINTS),
        ("p2p=10.0.0.1", RejectReason.DENIED_BY_POLICY),
    ],
)
def test_hostile_go_forms_are_still_refused(details: str, reason: RejectReason) -> None:
    policy = EndpointPolicy.from_strings(deny=["10.0.0.0/8"])
    result = read_details_compat(details, policy, ICS)
    assert isinstance(result, EndpointRejection), result
    assert result.reason is reason


def test_without_compat_go_only_forms_are_not_read() -> None:
    result = read_details_compat('{"p2p":"203.0.113.7:26656"}', DEFAULT_POLICY, Compat.NONE)
    assert isinstance(result, EndpointRejection)
    assert result.reason is RejectReason.NO_ENDPOINT


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list('p2=:"{} \nx1.[]a-,@')), max_size=50))
def test_compat_reads_our_host_or_go_host_and_nothing_unvalidated(details: str) -> None:
    result = read_details_compat(details, DEFAULT_POLICY, ICS)
    ours = read_details(details)
    if isinstance(ours, PublishedEndpoint):
        assert result == ours
        return
    if isinstance(result, PublishedEndpoint):
        # Only ever what Go itself reads, and only once our host rules accept it.
        go = go_extract_p2p_endpoint(details)
        assert result.host == parse_host(go)
        assert result.node_id is None
    else:
        try:
            parse_host(go_extract_p2p_endpoint(details))
        except EndpointRejected:
            return
        assert ours.reason not in (RejectReason.NO_ENDPOINT, RejectReason.MALFORMED_HOST)


# --- node IDs -------------------------------------------------------------------------


def test_validators_without_node_id_get_the_go_node_id_by_moniker() -> None:
    o = {n: OperatorAddress(op(n)) for n in (2, 3, 4, 5)}
    endpoints = {
        o[2]: read_details_compat("p2p=203.0.113.2", DEFAULT_POLICY, ICS),
        o[3]: read_details_compat(f"node={node_id(3)} p2p=203.0.113.3", DEFAULT_POLICY, ICS),
        o[4]: read_details_compat("p2p=203.0.113.4", DEFAULT_POLICY, ICS),
        o[5]: read_details_compat("nothing", DEFAULT_POLICY, ICS),
    }
    monikers = {o[2]: "bob", o[3]: "carol", o[4]: "", o[5]: "eve"}
    derived = moniker_node_ids(endpoints, monikers, "alpha-1")
    # carol publishes hers; the empty moniker is skipped as Go skips it; eve has no endpoint.
    assert dict(derived.node_ids) == {o[2]: go_node_id("bob", "alpha-1")}


def test_compat_peers_list_a_go_validator_with_its_go_node_id() -> None:
    snap = snapshot(
        [
            validator(1),
            validator(2, "Validator bob - p2p=203.0.113.2", moniker="bob"),
            validator(3, " carol ", moniker=" carol "),
        ],
        [consumer(0, "alpha-1", opted_in=[1, 2, 3])],
    )
    d = desired_cluster(snap, US, COMPAT, DEFAULT_POLICY)
    [chain] = d.chains
    p2p = chain.allocation.ports.p2p
    assert chain.peers.persistent_peers() == f"{go_node_id('bob', 'alpha-1')}@203.0.113.2:{p2p}"
    assert chain.moniker_node_ids == (OperatorAddress(op(2)),)
    # Without compat mode the Go validator is left out for want of a node ID.
    plain = desired_cluster(
        snap,
        US,
        ExposurePolicy(scheme=PortScheme.ICS_OPERATOR, consumer_namespace="c"),
        DEFAULT_POLICY,
    )
    [plain_chain] = plain.chains
    assert plain_chain.peers.persistent_peers() == ""
    assert plain_chain.moniker_node_ids == ()
    assert "no-node-id" in {x.reason for x in plain_chain.peer_list.left_out}


def test_a_copied_moniker_does_not_evict_the_go_validator() -> None:
    # Validator 3 copies bob's moniker, so both get the same Go-derived node ID.
    # As with any duplicate claim, both are kept: leaving both out would let
    # anyone evict a Go validator by copying its moniker, and CometBFT refuses a
    # connection whose key does not match the ID (which is all moniker IDs offer).
    snap = snapshot(
        [
            validator(1),
            validator(2, "p2p=203.0.113.2", moniker="bob"),
            validator(3, "p2p=203.0.113.3", moniker="bob"),
        ],
        [consumer(0, "alpha-1", opted_in=[1, 2, 3])],
    )
    d = desired_cluster(snap, US, COMPAT, DEFAULT_POLICY)
    [chain] = d.chains
    p2p = chain.allocation.ports.p2p
    bob = go_node_id("bob", "alpha-1")
    assert chain.peers.persistent_peers() == f"{bob}@203.0.113.2:{p2p},{bob}@203.0.113.3:{p2p}"
    assert chain.peer_list.left_out == ()
    assert set(chain.moniker_node_ids) == {OperatorAddress(op(2)), OperatorAddress(op(3))}


@settings(max_examples=100)
@given(st.lists(chain_ids, min_size=1, max_size=12, unique=True), st.randoms())
def test_compat_plan_is_the_same_in_any_input_order_and_never_uses_go_reserved_ports(
    ids: list[str], rng: random.Random
) -> None:
    chains = [ConsumerChainRef.parse(str(i), c) for i, c in enumerate([*ids, REFUSED_CHAIN])]
    shuffled = list(chains)
    rng.shuffle(shuffled)
    plan, refused = compat_allocate(chains)
    assert compat_allocate(shuffled) == (plan, refused)
    assert str(len(ids)) in refused
    assert not plan.all_ports() & go_reserved_ports()
    for a in plan.allocations:
        assert go_calculate_ports(a.chain_id) is not None
