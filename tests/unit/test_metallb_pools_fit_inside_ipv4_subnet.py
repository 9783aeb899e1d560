"""MetalLB pools: inside the IPv4 subnet whatever the inspect output's shape, never overlapping,
never on the network, gateway, broadcast or a container's address."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbmanager.errors import (
    InspectOutputInvalid,
    MetalLBPlanError,
    NoIPv4Subnet,
    NotEnoughAddresses,
)
from lbmanager.metallb import PoolPlan, manifests, plan_pools

DATA = Path(__file__).resolve().parents[1] / "data" / "docker-network-inspect"
RECORDED = sorted(p.name for p in DATA.glob("*.json") if p.name != "ipv6-only.json")


def recorded(name: str) -> str:
    return (DATA / name).read_text()


def containers_v4(doc: Any) -> set[ipaddress.IPv4Address]:
    out = set()
    for c in doc[0]["Containers"].values():
        if c.get("IPv4Address"):
            out.add(ipaddress.IPv4Interface(c["IPv4Address"]).ip)
    return out


def check_plan(plan: PoolPlan, doc: Any, size: int, clusters: list[str]) -> None:
    subnet = plan.subnet
    gateways = {
        ipaddress.ip_address(c["Gateway"])
        for c in doc[0]["IPAM"]["Config"]
        if c.get("Gateway") and ipaddress.ip_network(c["Subnet"]).version == 4
    } or {subnet.network_address + 1}
    forbidden = {subnet.network_address, subnet.broadcast_address} | gateways | containers_v4(doc)
    assert [n for n, _ in plan.pools] == clusters
    seen: set[ipaddress.IPv4Address] = set()
    for _, r in plan.pools:
        assert r.size == size
        addrs = {ipaddress.IPv4Address(i) for i in range(int(r.start), int(r.end) + 1)}
        assert all(a in subnet for a in addrs)
        assert not addrs & forbidden
        assert not addrs & seen
        seen |= addrs


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_networks_get_valid_pools(name: str) -> None:
    doc = json.loads(recorded(name))
    clusters = ["alice", "bob", "charlie"]
    size = 3 if name == "ipv4-only-28.json" else 10
    plan = plan_pools(recorded(name), clusters, size)
    assert ipaddress.ip_network(plan.subnet).version == 4
    check_plan(plan, doc, size, clusters)


def test_ipv6_listed_first_does_not_matter() -> None:
    v6_first = plan_pools(recorded("ipv6-first-16.json"), ["alice", "bob", "charlie"])
    v4_first = plan_pools(recorded("ipv4-first-16.json"), ["alice", "bob", "charlie"])
    assert str(v6_first.subnet) == str(v4_first.subnet) == "172.18.0.0/16"
    assert v6_first.as_json() == v4_first.as_json()
    assert v6_first.as_json()["pools"]["alice"] == {
        "start": "172.18.255.245",
        "end": "172.18.255.254",
    }


def test_missing_gateway_reserves_dockers_default_and_skips_containers() -> None:
    plan = plan_pools(recorded("ipv6-first-24-no-gateway.json"), ["alice", "bob", "charlie"])
    assert str(plan.subnet) == "10.89.3.0/24"
    assert str(plan.gateway) == "10.89.3.1"
    # .250 belongs to a container, .251-.254 is too short for 10: alice ends at .249.
    assert plan.as_json()["pools"]["alice"] == {"start": "10.89.3.240", "end": "10.89.3.249"}


def test_no_ipv4_subnet_is_a_clear_error() -> None:
    with pytest.raises(NoIPv4Subnet, match="no IPv4 subnet"):
        plan_pools(recorded("ipv6-only.json"), ["alice"])


def test_not_enough_room_is_a_clear_error() -> None:
    with pytest.raises(NotEnoughAddresses) as err:
        plan_pools(recorded("ipv4-only-28.json"), ["alice", "bob", "charlie"], 10)
    assert err.value.subnet == "172.30.9.0/28"
    assert not err.value.transient


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", InspectOutputInvalid),
        ("[]", InspectOutputInvalid),
        ('[{"Name": "kind"}]', InspectOutputInvalid),
        (
            '[{"Name": "kind", "IPAM": {"Config": [{"Subnet": "300.1.0.0/16"}]}}]',
            InspectOutputInvalid,
        ),
    ],
)
def test_malformed_inspect_output_is_refused(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        plan_pools(text, ["alice"])


@pytest.mark.parametrize(
    ("clusters", "size"), [([], 10), (["alice", "alice"], 10), (["Alice!"], 10), (["alice"], 0)]
)
def test_bad_arguments_are_refused(clusters: list[str], size: int) -> None:
    with pytest.raises(MetalLBPlanError):
        plan_pools(recorded("ipv4-first-16.json"), clusters, size)


def test_several_networks_pick_kind_by_name() -> None:
    kind = json.loads(recorded("ipv6-first-24-no-gateway.json"))
    other = json.loads(recorded("docker27-20.json"))
    other[0]["Name"] = "bridge"
    plan = plan_pools(json.dumps(other + kind), ["alice"])
    assert str(plan.subnet) == "10.89.3.0/24"


def test_manifests_name_each_clusters_pool() -> None:
    import yaml

    plan = plan_pools(recorded("ipv6-first-16.json"), ["alice", "bob"])
    docs = [d for d in yaml.safe_load_all(manifests(plan)) if d]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("IPAddressPool", "ics-discovery-alice"),
        ("L2Advertisement", "ics-discovery-alice"),
        ("IPAddressPool", "ics-discovery-bob"),
        ("L2Advertisement", "ics-discovery-bob"),
    ]
    assert docs[0]["apiVersion"] == "metallb.io/v1beta1"
    assert docs[0]["spec"]["addresses"] == ["172.18.255.245-172.18.255.254"]
    assert docs[1]["spec"]["ipAddressPools"] == ["ics-discovery-alice"]
    only_bob = [d for d in yaml.safe_load_all(manifests(plan, cluster="bob")) if d]
    assert {d["metadata"]["name"] for d in only_bob} == {"ics-discovery-bob"}


def inspect_doc(subnet: str, gateway: str | None, containers: list[str], v6_first: bool) -> str:
    v4: dict[str, str] = {"Subnet": subnet}
    if gateway:
        v4["Gateway"] = gateway
    v6 = {"Subnet": "fc00:f853:ccd:e793::/64", "Gateway": "fc00:f853:ccd:e793::1"}
    return json.dumps(
        [
            {
                "Name": "kind",
                "IPAM": {"Driver": "default", "Config": [v6, v4] if v6_first else [v4, v6]},
                "Containers": {
                    f"id{i}": {"Name": f"c{i}", "IPv4Address": f"{ip}/{subnet.split('/')[1]}"}
                    for i, ip in enumerate(containers)
                },
            }
        ]
    )


@st.composite
def networks(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    prefix = draw(st.integers(min_value=16, max_value=26))
    base = draw(st.integers(min_value=0, max_value=2**32 - 1))
    net = ipaddress.IPv4Network((base, prefix), strict=False)
    hosts = net.num_addresses - 2
    gw_choice = draw(st.sampled_from(["first", "last", "none"]))
    gateway = {
        "first": str(net.network_address + 1),
        "last": str(net.broadcast_address - 1),
        "none": None,
    }[gw_choice]
    offsets = draw(st.lists(st.integers(1, hosts), max_size=12, unique=True))
    containers = [str(net.network_address + o) for o in offsets]
    text = inspect_doc(str(net), gateway, containers, draw(st.booleans()))
    return text, json.loads(text)


@given(networks(), st.integers(min_value=1, max_value=20), st.integers(min_value=1, max_value=4))
def test_any_network_gets_valid_pools_or_a_clear_error(
    net: tuple[str, Any], size: int, n: int
) -> None:
    text, doc = net
    clusters = ["alice", "bob", "charlie", "dave"][:n]
    try:
        plan = plan_pools(text, clusters, size)
    except NotEnoughAddresses:
        # Independent oracle: greedy packing of runs from the bottom (optimal for
        # equal-length intervals) finds fewer than n runs of `size` free addresses.
        cfg = next(c for c in doc[0]["IPAM"]["Config"] if ":" not in c["Subnet"])
        subnet = ipaddress.IPv4Network(cfg["Subnet"], strict=False)
        gateway = (
            ipaddress.IPv4Address(cfg["Gateway"])
            if "Gateway" in cfg
            else subnet.network_address + 1
        )
        forbidden = {gateway} | containers_v4(doc)
        runs = run = 0
        for i in range(int(subnet.network_address) + 1, int(subnet.broadcast_address)):
            run = 0 if ipaddress.IPv4Address(i) in forbidden else run + 1
            if run == size:
                runs, run = runs + 1, 0
        assert runs < n
        return
    check_plan(plan, doc, size, clusters)
