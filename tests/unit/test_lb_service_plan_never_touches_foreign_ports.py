"""Service plans: foreign ports untouched, per-chain refusals, owners never remove others' ports."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbmanager.consumer_pods import keyed_pod_selector
from lbmanager.errors import (
    InvalidChainSpec,
    KeyExposedByOtherOwner,
    OwnershipRecordCorrupt,
    PortNumberTaken,
)
from lbmanager.naming import PORTS_ANNOTATION, is_dns_label, service_port_name
from lbmanager.service_builder import ObservedService, observe_service, service_is_current
from lbmanager.types import ChainExposure, ChainKey, ExposedPort
from tests.support.lb_plan import apply, ch, chart_service, plan, port_map

# ---- examples -----------------------------------------------------------------


def test_missing_service_is_planned_with_placeholder_only() -> None:
    p = plan([], [])
    [shard] = apply([], p)
    assert [(x.name, x.port) for x in shard.ports] == [("placeholder", 1)]
    assert PORTS_ANNOTATION not in (shard.raw["metadata"].get("annotations") or {})
    assert shard.raw["spec"]["selector"] == {"this-will-not-match": "anything"}
    assert shard.raw["spec"]["type"] == "LoadBalancer"


def test_placeholder_goes_with_the_first_port_and_returns_with_the_last() -> None:
    [s1] = apply([chart_service()], plan([chart_service()], [ch("a", 30001)]))
    assert [x.name for x in s1.ports] == [service_port_name("a", "p2p")]
    [s2] = apply([s1], plan([s1], []))
    assert [x.name for x in s2.ports] == ["placeholder"]


def test_foreign_port_number_is_refused_for_that_chain_only() -> None:
    svc = chart_service({"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"})
    p = plan([svc], [ch("a", 9100), ch("b", 30002)])
    outcome = {c.key: c for c in p.chains}
    assert outcome["a"].status == "refused"
    assert isinstance(outcome["a"].error, PortNumberTaken)
    assert outcome["a"].error.port == 9100
    assert not outcome["a"].error.transient
    assert outcome["b"].status == "exposed"
    [after] = apply([svc], p)
    assert port_map(after) == {"metrics": 9100, service_port_name("b", "p2p"): 30002}


def test_same_port_for_a_udp_and_a_tcp_chain_is_fine() -> None:
    udp = ChainExposure(
        ChainKey("udp"), (ExposedPort("p2p", 30001, 1, "UDP"),), keyed_pod_selector("udp")
    )
    p = plan([], [udp, ch("tcp", 30001)])
    assert [c.status for c in p.chains] == ["exposed", "exposed"]


def test_a_change_that_clashes_keeps_what_exists() -> None:
    [s1] = apply([], plan([], [ch("a", 30001), ch("b", 30002)]))
    p = plan([s1], [ch("a", 30002), ch("b", 30002)])
    outcome = {c.key: c for c in p.chains}
    assert outcome["a"].status == "kept"
    assert isinstance(outcome["a"].error, PortNumberTaken)
    assert outcome["b"].status == "exposed"
    [s2] = apply([s1], p)
    assert port_map(s2) == port_map(s1)
    assert service_is_current(s1, p.shard(0))  # nothing to write


def test_chains_may_swap_ports_in_one_write() -> None:
    [s1] = apply([], plan([], [ch("a", 30001), ch("b", 30002)]))
    p = plan([s1], [ch("a", 30002), ch("b", 30001)])
    assert [c.status for c in p.chains] == ["exposed", "exposed"]
    [s2] = apply([s1], p)
    assert port_map(s2) == {
        service_port_name("a", "p2p"): 30002,
        service_port_name("b", "p2p"): 30001,
    }


def test_a_blocked_move_blocks_the_chain_waiting_for_its_port() -> None:
    svc = chart_service({"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"})
    [s1] = apply([svc], plan([svc], [ch("a", 30001), ch("b", 30002)]))
    # b wants the foreign port (refused, keeps 30002), so a cannot have 30002 either.
    p = plan([s1], [ch("a", 30002), ch("b", 9100)])
    outcome = {c.key: c for c in p.chains}
    assert outcome["b"].status == "kept"
    assert "foreign port 'metrics'" in str(outcome["b"].error)
    assert outcome["a"].status == "kept"
    assert "chain 'b'" in str(outcome["a"].error)
    assert service_is_current(s1, p.shard(0))


def test_invalid_or_duplicate_chains_are_refused_and_existing_ones_kept() -> None:
    [s1] = apply([], plan([], [ch("a", 30001), ch("dup", 30003)]))
    p = plan([s1], [ch("a", 0), ch("dup", 30003), ch("dup", 30004), ch("", 30005)])
    outcome = {c.key: c for c in p.chains}
    assert outcome["a"].status == "kept"
    assert isinstance(outcome["a"].error, InvalidChainSpec)
    assert outcome["dup"].status == "kept"
    assert "more than once" in str(outcome["dup"].error)
    assert outcome[""].status == "refused"
    [s2] = apply([s1], p)
    assert port_map(s2) == port_map(s1)


def test_unreadable_ownership_record_stops_instead_of_guessing() -> None:
    raw = chart_service().raw
    raw["metadata"]["annotations"] = {PORTS_ANNOTATION: "{not json"}
    with pytest.raises(OwnershipRecordCorrupt, match="p2p-loadbalancer") as err:
        observe_service(0, raw)
    assert not err.value.transient


def test_other_owners_key_is_refused_and_their_ports_survive_my_removals() -> None:
    [s1] = apply([], plan([], [ch("shared", 30001), ch("theirs", 30002)], owner="them"))
    p = plan([s1], [ch("shared", 30001), ch("mine", 30003)], owner="me")
    outcome = {c.key: c for c in p.chains}
    assert isinstance(outcome["shared"].error, KeyExposedByOtherOwner)
    [s2] = apply([s1], p)
    [s3] = apply([s2], plan([s2], [], owner="me"))
    assert port_map(s3) == port_map(s1)
    assert s3.ownership == s1.ownership


# ---- properties ----------------------------------------------------------------

key_st = st.sampled_from(["a", "b", "c", "Chain_A", "chain-a", "x" * 50, "ü/ç", "d", "e"])
port_st = st.integers(min_value=30000, max_value=30006)
chain_st = st.builds(
    lambda k, ps: ch(k, *ps), key_st, st.lists(port_st, min_size=1, max_size=2, unique=True)
)
foreign_st = st.lists(
    st.builds(
        lambda n, p: {"name": f"foreign-{n}", "port": p, "targetPort": 8080, "protocol": "TCP"},
        st.integers(0, 3),
        port_st,
    ),
    max_size=3,
    unique_by=(lambda d: d["name"], lambda d: d["port"]),
)


def check_valid_service(o: ObservedService) -> None:
    names = [p.name for p in o.ports]
    assert len(names) == len(set(names))
    assert len({(p.port, p.protocol) for p in o.ports}) == len(o.ports)
    assert all(is_dns_label(n) for n in names)
    assert ("placeholder" in names) == (len(names) == 1 and names == ["placeholder"])


@settings(max_examples=150)
@given(foreign_st, st.lists(st.lists(chain_st, max_size=6), min_size=1, max_size=4))
def test_foreign_ports_survive_any_sequence_and_exposed_chains_stay(
    foreign: list[dict[str, Any]], steps: list[list[ChainExposure]]
) -> None:
    state = [chart_service(*foreign)]
    previous: dict[str, tuple[int, ...]] = {}
    for desired in steps:
        p = plan(state, desired)
        state = apply(state, p)
        [svc] = state
        check_valid_service(svc)
        assert [dict(x) for x in svc.raw_ports[: len(foreign)]] == foreign
        got = port_map(svc)
        exposed: dict[str, tuple[int, ...]] = {}
        for c in p.chains:
            spec = next(d for d in desired if d.key == c.key)
            if c.status == "exposed":
                want = {service_port_name(c.key, x.name): x.port for x in spec.ports}
                assert want.items() <= got.items()
                exposed[c.key] = tuple(sorted(x.port for x in spec.ports))
            elif c.status == "refused":
                assert not any(service_port_name(c.key, x.name) in got for x in spec.ports)
        # An exposed chain asking for the same ports again is never displaced.
        for key, ports in previous.items():
            same = [d for d in desired if d.key == key]
            if len(same) == 1 and tuple(sorted(x.port for x in same[0].ports)) == ports:
                assert key in exposed
        previous = exposed
        # Idempotent: planning again on the result writes nothing.
        again = plan(state, desired)
        assert service_is_current(svc, again.shard(0))
        assert [(c.key, c.status) for c in again.chains] == [(c.key, c.status) for c in p.chains]


@settings(max_examples=100)
@given(
    st.lists(chain_st, max_size=5),
    st.lists(chain_st, max_size=5),
    st.lists(st.sampled_from(["A", "B"]), min_size=2, max_size=8),
)
def test_two_owners_in_any_interleaving_converge_to_the_union(
    a_chains: list[ChainExposure], b_chains: list[ChainExposure], order: list[str]
) -> None:
    desired = {"A": a_chains, "B": b_chains}
    state: list[ObservedService] = []
    for who in [*order, "A", "B"]:  # both run at least once at the end
        state = apply(state, plan(state, desired[who], owner=who))
    [svc] = state
    check_valid_service(svc)
    # At rest: neither owner has anything left to write.
    for who in ("A", "B"):
        p = plan(state, desired[who], owner=who)
        assert service_is_current(svc, p.shard(0))
        got = port_map(svc)
        for c in p.chains:
            if c.status == "exposed":
                spec = next(d for d in desired[who] if d.key == c.key)
                for x in spec.ports:
                    assert got[service_port_name(c.key, x.name)] == x.port
    # Every port is accounted for by exactly one owner.
    owned = [n for keys in svc.ownership.values() for names in keys.values() for n in names]
    assert sorted(owned) == sorted(n for n in port_map(svc) if n != "placeholder")
