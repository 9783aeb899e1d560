"""The data plane's network plan: node and pod addresses, the `docker network inspect` shape."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbmanager.metallb import plan_pools
from tests.support.netlab import (
    NetlabError,
    inspect_document,
    plan_network,
    stale_namespaces,
)

NAMES = st.lists(
    st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True), min_size=1, max_size=8, unique=True
)


def test_three_clusters() -> None:
    plan = plan_network(["alice", "bob", "charlie"])
    assert str(plan.subnet) == "172.30.0.0/24"
    assert str(plan.gateway) == "172.30.0.1"
    assert [(n.cluster, str(n.address), str(n.pod_cidr)) for n in plan.nodes] == [
        ("alice", "172.30.0.2", "10.244.1.0/24"),
        ("bob", "172.30.0.3", "10.244.2.0/24"),
        ("charlie", "172.30.0.4", "10.244.3.0/24"),
    ]
    assert str(plan.node("bob").pod_gateway) == "10.244.2.1"
    assert str(plan.pod_address("bob", 0)) == "10.244.2.2"
    assert str(plan.pod_address("bob", 7)) == "10.244.2.9"


def test_inspect_document_plans_pools_clear_of_nodes_and_gateway() -> None:
    plan = plan_network(["alice", "bob", "charlie"])
    doc = inspect_document(plan)
    assert doc[0]["IPAM"]["Config"] == [{"Subnet": "172.30.0.0/24", "Gateway": "172.30.0.1"}]
    names = sorted(c["Name"] for c in doc[0]["Containers"].values())
    assert names == ["alice-control-plane", "bob-control-plane", "charlie-control-plane"]
    pools = plan_pools(doc, ["alice", "bob", "charlie"], 5)
    taken = {plan.gateway, *(n.address for n in plan.nodes)}
    for _, rng in pools.pools:
        assert rng.start in plan.subnet
        assert rng.end in plan.subnet
        assert not any(a in rng for a in taken)


@given(NAMES)
def test_plan_is_distinct_and_inside(names: list[str]) -> None:
    plan = plan_network(names)
    addrs = [n.address for n in plan.nodes]
    cidrs = [n.pod_cidr for n in plan.nodes]
    assert len(set(addrs)) == len(addrs)
    assert all(
        a in plan.subnet and a not in (plan.gateway, plan.subnet.network_address) for a in addrs
    )
    assert all(c.subnet_of(plan.pod_supernet) for c in cidrs)
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1 :])
    # The same input gives the same plan.
    assert plan_network(names) == plan


@pytest.mark.parametrize(
    ("clusters", "kw", "message"),
    [
        ([], {}, "no clusters"),
        (["a", "a"], {}, "distinct"),
        (["Alice"], {}, "DNS label"),
        (["a", "b"], {"subnet": ipaddress.IPv4Network("10.0.0.0/30")}, "too small"),
        (["a", "b"], {"pod_supernet": ipaddress.IPv4Network("10.9.0.0/24")}, "too few"),
    ],
)
def test_bad_input_is_refused(clusters: list[str], kw: dict[str, object], message: str) -> None:
    with pytest.raises(NetlabError, match=message):
        plan_network(clusters, **kw)  # type: ignore[arg-type]


def test_pod_ordinal_outside_the_pod_cidr_is_refused() -> None:
    plan = plan_network(["alice"])
    with pytest.raises(NetlabError, match="does not fit"):
        plan.pod_address("alice", 253)
    with pytest.raises(NetlabError, match="no node"):
        plan.pod_address("zed", 0)


def test_sweep_picks_only_dead_runs_of_our_prefix() -> None:
    names = ["icsdp-10-net", "icsdp-10-alice.pod", "icsdp-11-net", "other-10-net", "icsdp-x-net"]
    assert stale_namespaces(names, alive={11}) == ["icsdp-10-net", "icsdp-10-alice.pod"]
    assert stale_namespaces(names, alive={10, 11}) == []


def test_without_root_or_tools_it_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import netlab, procs

    monkeypatch.setattr("tests.support.netlab.os.geteuid", lambda: 1000)
    with pytest.raises(procs.TestBedError, match=r"needs root .*unshare --user --map-root-user"):
        netlab.build_network(["alice"])
    monkeypatch.setattr("tests.support.netlab.shutil.which", lambda name: None)
    with pytest.raises(procs.TestBedError, match=r"ip, nft not found: run `make tools` first"):
        netlab.build_network(["alice"])
