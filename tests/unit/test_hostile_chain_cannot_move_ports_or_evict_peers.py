"""A hostile provider chain cannot move our ports, starve our chains or evict our peers.

Each test builds the chain state an attacker can produce with permissionless
transactions (register, rename, opt in, launch, edit a description) and runs
the service's own decision function on it.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainmonitor.types import ConsumerChain, ConsumerPhase
from discovery.desired import DesiredCluster, ExposurePolicy, desired_cluster
from discovery.endpoints import DEFAULT_POLICY
from discovery.errors import InvalidInput
from discovery.peers import MAX_PEERS_LIMIT, LeftOutReason
from discovery.ports import derive_ports
from discovery.types import parse_spawn_time
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
REGISTERED = ConsumerPhase.REGISTERED
INITIALIZED = ConsumerPhase.INITIALIZED
T0 = "2026-01-01T00:00:00Z"


def spawn(seconds: int) -> str:
    return f"2026-01-01T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"


def ports_of(d: DesiredCluster) -> dict[str, dict[str, int] | None]:
    return {v.consumer_id: (dict(v.ports.ports) if v.ports else None) for v in d.state.chains}


def decide(chains: list[ConsumerChain], **policy: object) -> DesiredCluster:
    vals = [validator(n) for n in (1, 2, 3)]
    p = ExposurePolicy(consumer_namespace="consumers", **policy)  # type: ignore[arg-type]
    return desired_cluster(snapshot(vals, chains), US, p, DEFAULT_POLICY)


# --- ports --------------------------------------------------------------------


def test_four_hundred_chains_that_never_launch_cannot_starve_a_launched_one() -> None:
    spam = [
        consumer(i, f"spam-{i}", opted_in=[2], phase=REGISTERED if i % 2 else INITIALIZED)
        for i in range(400)
    ]
    ours = consumer(400, "neutron-1", opted_in=[1, 2], spawn_time=T0, powers={1: 5, 2: 5})
    d = decide([*spam, ours])
    [chain] = d.chains
    assert chain.chain_id == "neutron-1"
    # No chain that never launched holds a port, so ours gets its derived ports.
    assert chain.allocation.ports == derive_ports("neutron-1")
    assert sum(1 for v in d.state.chains if v.ports is not None) == 1


def test_renaming_an_earlier_registered_chain_onto_ours_moves_nothing() -> None:
    first, second = colliding_chain_ids()
    ours = consumer(5, second, opted_in=[1, 2], spawn_time=T0)
    before = decide([consumer(3, "innocent", phase=REGISTERED), ours])
    # Consumer 3 (lower ID) is renamed to a chain ID colliding with ours.
    after = decide([consumer(3, first, phase=REGISTERED), ours])
    assert ports_of(before)["5"] == ports_of(after)["5"] == derive_ports(second).as_json()


def test_a_chain_launching_later_never_moves_a_launched_one() -> None:
    first, second = colliding_chain_ids()
    # Ours (the higher consumer ID) launched first.
    ours = consumer(9, second, opted_in=[1, 2], spawn_time=spawn(10))
    alone = decide([consumer(2, first, phase=INITIALIZED, spawn_time=spawn(500)), ours])
    # The lower-ID chain with a colliding chain ID launches later.
    both = decide([consumer(2, first, opted_in=[2], spawn_time=spawn(500)), ours])
    assert ports_of(alone)["9"] == ports_of(both)["9"] == derive_ports(second).as_json()
    # The newcomer takes what is left: its P2P port moved off ours.
    moved = both.state.chains[0]
    assert moved.ports is not None
    assert "p2p" in moved.ports.moved


def test_a_stopped_chain_keeps_its_ports_until_it_is_deleted() -> None:
    first, second = colliding_chain_ids()
    old = consumer(1, first, spawn_time=spawn(1))
    ours = consumer(2, second, opted_in=[1], spawn_time=spawn(2))
    launched = ports_of(decide([old, ours]))["2"]
    stopped = decide([consumer(1, first, phase=ConsumerPhase.STOPPED, spawn_time=spawn(1)), ours])
    assert ports_of(stopped)["2"] == launched != derive_ports(second).as_json()
    deleted = decide([consumer(1, first, phase=ConsumerPhase.DELETED), ours])
    # Deletion frees the ports: ours gets its derived ones back (documented).
    assert ports_of(deleted)["2"] == derive_ports(second).as_json()


@st.composite
def hostile_histories(draw: st.DrawFn) -> tuple[list[ConsumerChain], list[ConsumerChain]]:
    """Launched chains, then what an attacker adds: spam, renames, later launches."""
    names = [f"c-{i}" for i in range(40)]
    launched_n = draw(st.integers(1, 12))
    ids = draw(st.lists(st.integers(0, 500), min_size=launched_n, max_size=launched_n, unique=True))
    launched = [
        consumer(cid, draw(st.sampled_from(names)), opted_in=[1], spawn_time=spawn(10 + k))
        for k, cid in enumerate(ids)
    ]
    used = set(ids)
    extra: list[ConsumerChain] = []
    for k in range(draw(st.integers(0, 30))):
        cid = draw(st.integers(0, 600).filter(lambda c: c not in used))
        used.add(cid)
        phase = draw(st.sampled_from([REGISTERED, INITIALIZED, ConsumerPhase.LAUNCHED]))
        # A later launch has a spawn time after every launched chain's.
        when = spawn(1000 + k) if phase is not REGISTERED else ""
        extra.append(consumer(cid, draw(st.sampled_from(names)), phase=phase, spawn_time=when))
    return launched, extra


@settings(max_examples=150, deadline=None)
@given(hostile_histories(), st.sampled_from(["document", "ics-operator"]))
def test_property_launched_ports_survive_spam_renames_and_later_launches(
    history: tuple[list[ConsumerChain], list[ConsumerChain]], scheme: str
) -> None:
    from discovery.ports import PortScheme

    launched, extra = history
    policy = {"scheme": PortScheme(scheme)}
    before = ports_of(decide(launched, **policy))
    after = ports_of(decide([*launched, *extra], **policy))
    for c in launched:
        assert before[c.consumer_id] is not None
        assert after[c.consumer_id] == before[c.consumer_id]
    # Chains that never launched hold nothing, whatever their number.
    for c in extra:
        if c.phase is not ConsumerPhase.LAUNCHED:
            assert after[c.consumer_id] is None


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("", None),
        ("0001-01-01T00:00:00Z", None),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("1970-01-01T01:00:00+01:00", 0),
        ("2026-01-01T00:00:00.000000001Z", 1767225600_000000001),
    ],
)
def test_spawn_times_compare_exactly(text: str, nanos: int | None) -> None:
    assert parse_spawn_time(text) == nanos


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01T00:00:00Z", "2026-01-01 00:00:00"])
def test_bad_spawn_times_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_spawn_time(bad)


# --- peers from the consumer validator set --------------------------------------


def test_peers_come_from_the_validator_set_not_every_opted_in_validator() -> None:
    # 2, 3, 4 opted in; only 2 and 3 have power on the consumer chain.
    vals = [validator(n) for n in (1, 2, 3, 4)]
    chain = consumer(0, "c", opted_in=[1, 2, 3, 4], spawn_time=T0, powers={1: 9, 2: 5, 3: 7, 4: 0})
    d = desired_cluster(snapshot(vals, [chain]), US, NS, DEFAULT_POLICY)
    [c] = d.chains
    assert {p.operator_address for p in c.peers.peers} == {op(2), op(3)}


def test_thousands_of_powerless_opted_in_validators_make_no_peers_and_a_small_configmap() -> None:
    vals = [validator(n) for n in range(1, 250)]
    # Everyone opted in (jailed, unbonded: no power); 5 validate the chain.
    powers = {n: (100 - n if n <= 6 else 0) for n in range(1, 250)}
    chain = consumer(0, "c", opted_in=range(1, 250), spawn_time=T0, powers=powers)
    d = desired_cluster(snapshot(vals, [chain]), US, NS, DEFAULT_POLICY)
    [c] = d.chains
    assert len(c.peers.peers) == 5
    [cm] = c.configmaps
    assert len(cm.render()) < 64 * 1024


def test_max_peers_keeps_the_highest_power_and_breaks_ties_by_consensus_address() -> None:
    vals = [validator(n) for n in range(1, 21)]
    powers = {n: (50 if n in (7, 8, 9) else n) for n in range(1, 21)}
    chain = consumer(0, "c", opted_in=range(1, 21), spawn_time=T0, powers=powers)
    policy = ExposurePolicy(consumer_namespace="consumers", max_peers=4)
    d = desired_cluster(snapshot(vals, [chain]), US, policy, DEFAULT_POLICY)
    [c] = d.chains
    chosen = {p.operator_address for p in c.peers.peers}
    # 7, 8, 9 (power 50), then 20 (the highest of the rest).
    assert chosen == {op(7), op(8), op(9), op(20)}
    over = [x for x in c.peers.left_out if x.reason == LeftOutReason.OVER_MAX_PEERS]
    assert len(over) == 20 - 1 - 4
    # A tie at the cut is broken by consensus address: the same on every validator.
    tie_powers = {n: 10 for n in range(1, 21)}
    tied = consumer(0, "c", opted_in=range(1, 21), spawn_time=T0, powers=tie_powers)
    ordered = snapshot(vals, [tied])
    again = desired_cluster(ordered, US, policy, DEFAULT_POLICY)
    # The same chain state with the registry in the other order.
    reordered = replace(ordered, validators=tuple(reversed(ordered.validators)))
    rev = desired_cluster(reordered, US, policy, DEFAULT_POLICY)
    assert again.render() == rev.render()
    assert len(again.chains[0].peers.peers) == 4


def test_max_peers_outside_its_range_is_refused() -> None:
    vals = [validator(n) for n in (1, 2)]
    chain = consumer(0, "c", opted_in=[1, 2], spawn_time=T0, powers={1: 1, 2: 1})
    policy = ExposurePolicy(consumer_namespace="consumers", max_peers=MAX_PEERS_LIMIT + 1)
    with pytest.raises(InvalidInput):
        desired_cluster(snapshot(vals, [chain]), US, policy, DEFAULT_POLICY)


def test_configmap_stays_under_the_kubernetes_limit_with_huge_hostile_sets() -> None:
    # 2500 validators with power, each with the longest moniker and details.
    moniker = "\U0001f600" * 70
    vals = [
        validator(
            n,
            f"p2p={'a' * 60}.{'b' * 60}.{'c' * 60}.n{n}.example node={node_id(n % 256)}",
            moniker=moniker,
        )
        for n in range(1, 2501)
    ]
    powers = dict.fromkeys(range(1, 2501), 1)
    chain = consumer(0, "c", opted_in=range(1, 2501), spawn_time=T0, powers=powers)
    policy = ExposurePolicy(consumer_namespace="consumers", max_peers=MAX_PEERS_LIMIT)
    d = desired_cluster(snapshot(vals, [chain]), US, policy, DEFAULT_POLICY)
    [c] = d.chains
    assert len(c.peers.peers) == MAX_PEERS_LIMIT
    [cm] = c.configmaps
    size = sum(len(k) + len(v.encode()) for k, v in cm.data.items())
    assert size < 1024 * 1024
    left = json.loads(cm.data["left_out.json"])
    assert len(left) <= 100


# --- impostors ------------------------------------------------------------------


def test_an_impostor_cannot_remove_two_honest_validators_from_our_peers() -> None:
    a, b = 2, 3
    mallory = validator(4, f"p2p=203.0.113.{b} node={node_id(a)}")
    vals = [validator(1), validator(a), validator(b), mallory]
    chain = consumer(0, "c", opted_in=[1, 2, 3, 4], spawn_time=T0, powers={1: 1, 2: 1, 3: 1, 4: 1})
    d = desired_cluster(snapshot(vals, [chain]), US, NS, DEFAULT_POLICY)
    [c] = d.chains
    entries = c.peers.persistent_peers().split(",")
    p2p = c.allocation.ports.p2p
    assert f"{node_id(a)}@203.0.113.{a}:{p2p}" in entries
    assert f"{node_id(b)}@203.0.113.{b}:{p2p}" in entries


def test_a_validator_that_opted_out_is_dropped_before_the_epoch_ends() -> None:
    # 3 opted out; the provider removes its power only at the epoch end.
    vals = [validator(n) for n in (1, 2, 3)]
    chain = consumer(0, "c", opted_in=[1, 2], spawn_time=T0, powers={1: 5, 2: 5, 3: 5})
    d = desired_cluster(snapshot(vals, [chain]), US, NS, DEFAULT_POLICY)
    [c] = d.chains
    assert {p.operator_address for p in c.peers.peers} == {op(2)}
