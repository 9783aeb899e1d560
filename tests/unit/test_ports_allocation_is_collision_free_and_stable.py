"""The allocator gives distinct ports, keeps derived ones when free, never moves live chains."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.errors import (
    DuplicateConsumerId,
    InvalidChainId,
    InvalidConsumerId,
    InvalidPort,
    PortSpaceExhausted,
)
from discovery.ports import (
    ConsumerChainRef,
    PortKind,
    PortPlan,
    PortScheme,
    allocate_ports,
    chain_offset,
    derive_ports,
    scheme_range,
)
from discovery.types import ChainId, ConsumerId, ConsumerPhase

PHASES = st.none() | st.sampled_from(list(ConsumerPhase))


def chain(consumer_id: int, chain_id: str, phase: ConsumerPhase | None = None) -> ConsumerChainRef:
    return ConsumerChainRef(ConsumerId(str(consumer_id)), ChainId(chain_id), phase)


@st.composite
def chain_sets(draw: st.DrawFn, max_size: int = 300) -> list[ConsumerChainRef]:
    """Up to `max_size` chains; chain IDs from a small space so that some repeat."""
    size = draw(st.integers(0, max_size))
    ids = draw(st.lists(st.integers(0, 2**64 - 1), min_size=size, max_size=size, unique=True))
    names = draw(st.lists(st.integers(0, 3 * max_size), min_size=size, max_size=size))
    phases = draw(st.lists(PHASES, min_size=size, max_size=size))
    return [chain(i, f"chain-{n}", p) for i, n, p in zip(ids, names, phases, strict=True)]


reserved_sets = st.frozensets(
    st.sampled_from([26656, 26657, 9090, 1317, 30100, 30555, 30999, 28766, 11200, 27417]),
    max_size=4,
)
schemes = st.sampled_from(list(PortScheme))


def check_invariants(plan: PortPlan, chains: list[ConsumerChainRef]) -> None:
    """Every property the allocation rule promises, checked against an independent replay."""
    order = sorted(chains, key=lambda c: (int(c.consumer_id), c.chain_id.encode()))
    assert [a.consumer_id for a in plan.allocations] == [c.consumer_id for c in order]
    taken = set(plan.reserved)
    for a, c in zip(plan.allocations, order, strict=True):
        assert (a.chain_id, a.phase) == (c.chain_id, c.phase)
        derived = derive_ports(c.chain_id, plan.scheme)
        assert a.derived == derived
        assert a.offset == chain_offset(c.chain_id)
        ports = a.ports.by_kind()
        # No two chains share any port of any kind, and nobody gets a reserved port.
        assert len(set(ports.values())) == len(ports)
        assert not (set(ports.values()) & taken)
        for kind, port in ports.items():
            assert port in scheme_range(plan.scheme, kind)
        derived_by_kind = derived.by_kind()
        assert set(ports) == set(derived_by_kind)
        collides = bool(set(derived_by_kind.values()) & taken)
        assert a.collided == collides
        if not collides:
            assert a.ports == derived
        # Free derived ports are kept even by a collided chain; only taken ones move.
        for kind, port in derived_by_kind.items():
            assert (kind in a.moved) == (port in taken)
            if kind not in a.moved:
                assert ports[kind] == port
        taken |= set(ports.values())


@settings(max_examples=60, deadline=None)
@given(chain_sets(), schemes, reserved_sets)
def test_allocation_invariants_hold_for_up_to_300_chains(
    chains: list[ConsumerChainRef], scheme: PortScheme, reserved: frozenset[int]
) -> None:
    plan = allocate_ports(chains, scheme, reserved)
    check_invariants(plan, chains)


@settings(max_examples=40, deadline=None)
@given(chain_sets(), schemes, reserved_sets, st.randoms(use_true_random=False))
def test_input_order_does_not_matter(
    chains: list[ConsumerChainRef],
    scheme: PortScheme,
    reserved: frozenset[int],
    rnd: random.Random,
) -> None:
    shuffled = list(chains)
    rnd.shuffle(shuffled)
    assert allocate_ports(shuffled, scheme, reserved) == allocate_ports(chains, scheme, reserved)


@settings(max_examples=40, deadline=None)
@given(chain_sets(), schemes, reserved_sets, st.integers(0, 2**64 - 1))
def test_adding_later_chains_never_moves_existing_ones(
    chains: list[ConsumerChainRef], scheme: PortScheme, reserved: frozenset[int], cut: int
) -> None:
    # The provider assigns consumer IDs from a counter: chains added later sort last.
    existing = [c for c in chains if int(c.consumer_id) < cut]
    before = allocate_ports(existing, scheme, reserved)
    after = allocate_ports(chains, scheme, reserved)
    assert after.allocations[: len(existing)] == before.allocations


@settings(max_examples=40, deadline=None)
@given(chain_sets(), schemes, reserved_sets, st.data())
def test_phase_changes_never_move_any_chain(
    chains: list[ConsumerChainRef],
    scheme: PortScheme,
    reserved: frozenset[int],
    data: st.DataObject,
) -> None:
    # Any chain may stop or be deleted; None keeps its phase.
    moves = data.draw(
        st.lists(
            st.sampled_from([None, ConsumerPhase.STOPPED, ConsumerPhase.DELETED]),
            min_size=len(chains),
            max_size=len(chains),
        )
    )
    changed = [
        ConsumerChainRef(c.consumer_id, c.chain_id, move or c.phase)
        for c, move in zip(chains, moves, strict=True)
    ]
    before = allocate_ports(chains, scheme, reserved)
    after = allocate_ports(changed, scheme, reserved)
    assert [a.ports for a in after.allocations] == [a.ports for a in before.allocations]


def test_without_collisions_allocation_equals_plain_derivation() -> None:
    chains = [chain(i, f"consumer-{i}") for i in range(5)]
    offsets = {chain_offset(c.chain_id) for c in chains}
    # The document scheme collides when offsets are equal or 100/200 apart.
    assert all(abs(a - b) not in (0, 100, 200) for a in offsets for b in offsets if a != b)
    plan = allocate_ports(chains)
    for a in plan.allocations:
        assert not a.collided
        assert a.ports == derive_ports(a.chain_id)


def _pair_with_offset_gap(gap: int) -> tuple[str, str]:
    """Two chain IDs whose offsets differ by exactly `gap` (searched, not hard-coded)."""
    seen: dict[int, str] = {}
    for i in range(100_000):
        name = f"net-{i}"
        o = chain_offset(name)
        if o - gap in seen:
            return seen[o - gap], name
        seen[o] = name
    raise AssertionError("no pair found")


def test_document_scheme_rpc_meeting_another_chains_p2p_is_resolved() -> None:
    first, second = _pair_with_offset_gap(100)
    # The second chain's P2P port is the first chain's RPC port, and its RPC the
    # first chain's gRPC: both move, its gRPC stays derived.
    assert derive_ports(second).p2p == derive_ports(first).rpc
    plan = allocate_ports([chain(0, first), chain(1, second)])
    a, b = plan.allocations
    assert not a.collided
    assert a.ports == derive_ports(first)
    assert b.collided
    assert b.moved == (PortKind.P2P, PortKind.RPC)
    assert b.ports.grpc == derive_ports(second).grpc
    assert not (a.ports.ports() & b.ports.ports())


def test_the_earlier_consumer_id_keeps_its_ports_whatever_the_chain_ids() -> None:
    first, second = _pair_with_offset_gap(100)
    # Numeric order: consumer 9 comes before consumer 10 although "10" < "9" as text.
    plan = allocate_ports([chain(10, first), chain(9, second)])
    assert [a.consumer_id for a in plan.allocations] == ["9", "10"]
    assert plan.for_consumer(ConsumerId("9")).ports == derive_ports(second)
    assert plan.for_consumer(ConsumerId("10")).collided


def test_equal_consumer_ids_are_an_error() -> None:
    with pytest.raises(DuplicateConsumerId):
        allocate_ports([chain(3, "a-1"), chain(3, "b-1")])


def test_same_chain_id_twice_gets_two_disjoint_port_sets() -> None:
    for scheme in PortScheme:
        plan = allocate_ports([chain(0, "dup-1"), chain(1, "dup-1")], scheme)
        a, b = plan.allocations
        assert a.ports == derive_ports("dup-1", scheme)
        assert set(b.moved) == set(b.ports.by_kind())
        assert not (a.ports.ports() & b.ports.ports())


def test_ics_operator_rest_port_blocks_another_chains_rpc() -> None:
    # REST = RPC + 660 = the RPC port of the chain whose offset is 66 higher.
    first, second = _pair_with_offset_gap(66)
    assert (
        derive_ports(first, PortScheme.ICS_OPERATOR).rest
        == derive_ports(second, PortScheme.ICS_OPERATOR).rpc
    )
    plan = allocate_ports([chain(0, first), chain(1, second)], PortScheme.ICS_OPERATOR)
    b = plan.allocations[1]
    assert b.moved == (PortKind.RPC,)
    assert b.ports.p2p == derive_ports(second, PortScheme.ICS_OPERATOR).p2p


def test_reserved_ports_are_never_allocated() -> None:
    target = derive_ports("reserved-test-1")
    plan = allocate_ports([chain(0, "reserved-test-1")], reserved={target.p2p})
    (a,) = plan.allocations
    assert a.collided
    assert a.moved == (PortKind.P2P,)
    assert a.ports.p2p != target.p2p
    assert (a.ports.rpc, a.ports.grpc) == (target.rpc, target.grpc)


def test_a_full_range_raises_port_space_exhausted() -> None:
    reserved = set(scheme_range(PortScheme.DOCUMENT, PortKind.P2P))
    with pytest.raises(PortSpaceExhausted) as info:
        allocate_ports([chain(0, "full-1")], reserved=reserved)
    assert info.value.kind == PortKind.P2P
    assert not info.value.transient


@pytest.mark.parametrize("bad", [0, 65536, -1, True])
def test_reserved_ports_must_be_valid_port_numbers(bad: int) -> None:
    with pytest.raises(InvalidPort):
        allocate_ports([], reserved={bad})


@pytest.mark.parametrize("scheme", list(PortScheme))
def test_three_hundred_chains_fit_and_most_keep_derived_ports(scheme: PortScheme) -> None:
    chains = [chain(i, f"consumer-{i}-1751686503-0") for i in range(300)]
    plan = allocate_ports(chains, scheme)
    check_invariants(plan, chains)
    kept = sum(1 for a in plan.allocations if not a.collided)
    assert kept > 0
    assert len(plan.all_ports()) == sum(len(a.ports.ports()) for a in plan.allocations)


def test_moved_ports_depend_only_on_earlier_chains() -> None:
    chains = [chain(i, f"c-{i % 40}") for i in range(120)]
    full = allocate_ports(chains)
    for cut in (1, 40, 41, 80, 119):
        assert allocate_ports(chains[:cut]).allocations == full.allocations[:cut]


@pytest.mark.parametrize("bad", ["", "-1", "01", "x", "18446744073709551616", "\u0661"])
def test_consumer_ids_must_be_canonical_uint64(bad: str) -> None:
    with pytest.raises(InvalidConsumerId):
        ConsumerChainRef(ConsumerId(bad), ChainId("a-1"))


def test_chain_refs_validate_chain_ids() -> None:
    with pytest.raises(InvalidChainId):
        ConsumerChainRef(ConsumerId("1"), ChainId(""))
    assert ConsumerChainRef(ConsumerId("18446744073709551615"), ChainId("a-1")).order_key()[2] == (
        2**64 - 1
    )
