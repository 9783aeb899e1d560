"""The MetalLB stand-in's address choice: pools, requests, stickiness, determinism."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from tests.support.dataplane import LbService, Pool, announced_addresses, assign_addresses

A = ipaddress.IPv4Address


def pool(name: str, spec: list[str], *, auto: bool = True, announced: bool = True) -> Pool:
    return Pool.from_spec(name, {"addresses": spec, "autoAssign": auto}, announced)


def test_pool_spec_ranges_and_cidrs() -> None:
    p = pool("p", ["172.30.0.250-172.30.0.252", "10.1.0.0/30", "10.2.0.7/32", "fd00::/120", "x"])
    assert [str(a) for a in p.addresses] == [
        "172.30.0.250",
        "172.30.0.251",
        "172.30.0.252",
        "10.1.0.1",
        "10.1.0.2",
        "10.2.0.7",
    ]


def test_first_free_address_of_the_first_auto_pool() -> None:
    pools = [pool("b", ["10.0.0.10-10.0.0.11"]), pool("a", ["10.0.0.1-10.0.0.1"])]
    got = assign_addresses([LbService("ns/x"), LbService("ns/y"), LbService("ns/z")], pools)
    assert got == {
        "ns/x": (A("10.0.0.1"), "a"),
        "ns/y": (A("10.0.0.10"), "b"),
        "ns/z": (A("10.0.0.11"), "b"),
    }


def test_current_address_is_kept_and_others_work_around_it() -> None:
    pools = [pool("a", ["10.0.0.1-10.0.0.2"])]
    got = assign_addresses([LbService("ns/a"), LbService("ns/b", current=A("10.0.0.1"))], pools)
    assert got == {"ns/b": (A("10.0.0.1"), "a"), "ns/a": (A("10.0.0.2"), "a")}


def test_request_moves_the_address_and_must_be_in_a_pool() -> None:
    pools = [pool("a", ["10.0.0.1-10.0.0.4"])]
    moved = LbService("ns/a", current=A("10.0.0.1"), requested=(A("10.0.0.3"),))
    outside = LbService("ns/b", requested=(A("192.0.2.1"),))
    got = assign_addresses([moved, outside], pools)
    assert got == {"ns/a": (A("10.0.0.3"), "a"), "ns/b": None}


def test_named_pool_and_manual_pools() -> None:
    pools = [pool("auto", ["10.0.0.1"]), pool("manual", ["10.9.0.1"], auto=False)]
    got = assign_addresses([LbService("ns/m", pool="manual"), LbService("ns/x")], pools)
    assert got == {"ns/m": (A("10.9.0.1"), "manual"), "ns/x": (A("10.0.0.1"), "auto")}
    # A current address outside the named pool is given up.
    got = assign_addresses([LbService("ns/m", current=A("10.0.0.1"), pool="manual")], pools)
    assert got == {"ns/m": (A("10.9.0.1"), "manual")}


def test_exhausted_pool_gives_none_and_only_advertised_pools_are_announced() -> None:
    pools = [pool("a", ["10.0.0.1"]), pool("quiet", ["10.0.0.2"], auto=False, announced=False)]
    got = assign_addresses(
        [LbService("ns/a"), LbService("ns/b"), LbService("ns/q", pool="quiet")], pools
    )
    assert got == {"ns/a": (A("10.0.0.1"), "a"), "ns/b": None, "ns/q": (A("10.0.0.2"), "quiet")}
    assert announced_addresses(got, pools) == {A("10.0.0.1")}


@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), unique=True),
    st.integers(min_value=1, max_value=6),
    st.randoms(),
)
def test_distinct_inside_and_order_independent(keys: list[str], size: int, rnd: object) -> None:
    pools = [pool("p", [f"10.0.0.1-10.0.0.{size}"])]
    services = [LbService(f"ns/{k}") for k in keys]
    got = assign_addresses(services, pools)
    addrs = [v[0] for v in got.values() if v is not None]
    assert len(addrs) == len(set(addrs)) == min(size, len(keys))
    shuffled = list(services)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert assign_addresses(shuffled, pools) == got


def test_current_assignment_reads_what_the_controller_assigned() -> None:
    from tests.support.dataplane import current_assignment

    pools = [pool("a", ["10.0.0.1-10.0.0.2"]), pool("b", ["10.0.0.9"], announced=False)]
    services = [
        LbService("ns/a", current=A("10.0.0.2")),
        LbService("ns/b", current=A("10.0.0.9")),
        LbService("ns/none"),
        LbService("ns/foreign", current=A("192.0.2.1")),
    ]
    got = current_assignment(services, pools)
    assert got == {
        "ns/a": (A("10.0.0.2"), "a"),
        "ns/b": (A("10.0.0.9"), "b"),
        "ns/none": None,
        "ns/foreign": None,
    }
    assert announced_addresses(got, pools) == {A("10.0.0.2")}
