"""Sharding: chains fill shards in key order, respect the limit, and never move while they stay."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lbmanager.errors import ShardFull
from lbmanager.service_builder import ChainPlacement, ObservedService
from lbmanager.types import ChainExposure
from tests.support.lb_plan import apply, ch, plan


def placement(p_chains: tuple[ChainPlacement, ...]) -> dict[str, int | None]:
    return {c.key: c.index for c in p_chains}


def test_new_chains_fill_shards_in_key_order() -> None:
    chains = [ch(f"c{i}", 30000 + i) for i in range(5)]
    p = plan([], chains, max_ports=2)
    assert placement(p.chains) == {"c0": 0, "c1": 0, "c2": 1, "c3": 1, "c4": 2}
    assert [s.name for s in p.shards] == [
        "p2p-loadbalancer",
        "p2p-loadbalancer-1",
        "p2p-loadbalancer-2",
    ]


def test_a_chain_too_wide_for_any_shard_is_refused() -> None:
    p = plan([], [ch("wide", 30001, 30002, 30003)], max_ports=2)
    [c] = p.chains
    assert c.status == "refused"
    assert isinstance(c.error, ShardFull)


def test_holes_are_reused_and_nobody_moves() -> None:
    state = apply([], plan([], [ch(f"c{i}", 30000 + i) for i in range(6)], max_ports=2))
    p = plan(
        state,
        [ch(k, 30000 + int(k[1])) for k in ("c0", "c2", "c3", "c4", "c5")] + [ch("b", 31000)],
        max_ports=2,
    )
    got = placement(p.chains)
    assert got == {"b": 0, "c0": 0, "c2": 1, "c3": 1, "c4": 2, "c5": 2}


def test_same_port_number_lands_in_another_shard_instead_of_being_refused() -> None:
    p = plan([], [ch("a", 30001), ch("b", 30001)], max_ports=5)
    assert placement(p.chains) == {"a": 0, "b": 1}
    assert all(c.status == "exposed" for c in p.chains)


def test_growth_that_does_not_fit_keeps_the_chain_where_it_is() -> None:
    state = apply([], plan([], [ch("a", 30001), ch("b", 30002)], max_ports=2))
    p = plan(state, [ch("a", 30001, 30003), ch("b", 30002)], max_ports=2)
    outcome = {c.key: c for c in p.chains}
    assert outcome["a"].status == "kept"
    assert outcome["a"].index == 0
    assert isinstance(outcome["a"].error, ShardFull)


universe = [f"k{i:02d}" for i in range(12)]
desired_st = st.lists(st.sets(st.sampled_from(universe), max_size=12), min_size=1, max_size=6)


def spec(key: str) -> ChainExposure:
    i = int(key[1:])
    # 1 to 3 ports per chain, numbers unique per chain key.
    return ch(key, *(30000 + 10 * i + j for j in range(1 + i % 3)))


@settings(max_examples=150)
@given(desired_st, st.integers(min_value=3, max_value=6))
def test_placement_is_deterministic_bounded_and_stable(steps: list[set[str]], limit: int) -> None:
    state: list[ObservedService] = []
    where: dict[str, int] = {}
    for keys in steps:
        desired = [spec(k) for k in sorted(keys)]
        p = plan(state, desired, max_ports=limit)
        assert p == plan(state, list(reversed(desired)), max_ports=limit)  # order-free
        now = {c.key: c.index for c in p.chains if c.status == "exposed"}
        assert set(now) == keys  # room is always found in some shard
        for k, i in now.items():
            if k in where:
                assert where[k] == i, f"{k} moved from shard {where[k]} to {i}"
        state = apply(state, p)
        for svc in state:
            ours = [x for x in svc.ports if x.name != "placeholder"]
            assert len(ours) <= limit
        where = {k: i for k, i in now.items() if i is not None}
