"""Pure: MetalLB address pools for Kind clusters that share the `kind` docker network.

MetalLB in L2 mode can only announce addresses of the nodes' own broadcast
domain, so every cluster's pool must lie inside the Kind network's IPv4
subnet, must not overlap another cluster's pool, and must avoid the network,
gateway and broadcast addresses and every address docker already gave a
container. `docker network inspect kind` lists the IPv6 and IPv4 subnets in an
order that varies between docker versions, and `Gateway` may be missing (docker
then uses the first host address), so the subnet is chosen by address family.
Pools are taken from the top of the subnet downwards, away from the low
addresses docker hands to new containers.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict

import yaml

from .errors import InspectOutputInvalid, MetalLBPlanError, NoIPv4Subnet, NotEnoughAddresses

METALLB_API: Final = "metallb.io/v1beta1"
DEFAULT_POOL_SIZE: Final = 10
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class RawIpamConfig(TypedDict, total=False):
    Subnet: str
    Gateway: str
    IPRange: str
    AuxiliaryAddresses: dict[str, str]


class RawContainer(TypedDict, total=False):
    Name: str
    IPv4Address: str
    IPv6Address: str


@dataclass(frozen=True)
class AddressRange:
    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, ipaddress.IPv4Address) and self.start <= ip <= self.end


@dataclass(frozen=True)
class PoolPlan:
    """The chosen IPv4 subnet and one address range per cluster, in the given order."""

    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    reserved: frozenset[ipaddress.IPv4Address]
    pools: tuple[tuple[str, AddressRange], ...]

    def pool(self, cluster: str) -> AddressRange:
        return dict(self.pools)[cluster]

    def as_json(self) -> dict[str, Any]:
        return {
            "subnet": str(self.subnet),
            "pools": {name: {"start": str(r.start), "end": str(r.end)} for name, r in self.pools},
        }


@dataclass(frozen=True)
class _Ipv4Subnet:
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    auxiliary: tuple[ipaddress.IPv4Address, ...]


def _network_entry(doc: Any, network_name: str) -> dict[str, Any]:
    if isinstance(doc, dict):
        return doc
    if not isinstance(doc, list) or not doc:
        raise InspectOutputInvalid("expected the JSON array `docker network inspect` prints")
    named = [n for n in doc if isinstance(n, dict) and n.get("Name") == network_name]
    if named:
        return named[0]
    if len(doc) == 1 and isinstance(doc[0], dict):
        return doc[0]
    raise InspectOutputInvalid(f"no network named {network_name!r} in the inspect output")


def _ipv4_subnets(net: dict[str, Any]) -> list[_Ipv4Subnet]:
    ipam = net.get("IPAM")
    if not isinstance(ipam, dict):
        raise InspectOutputInvalid("the network has no IPAM section")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list):
        raise InspectOutputInvalid("IPAM.Config is not a list")
    out: list[_Ipv4Subnet] = []
    for cfg in configs:
        if not isinstance(cfg, dict) or not isinstance(cfg.get("Subnet"), str):
            continue
        try:
            network = ipaddress.ip_network(cfg["Subnet"], strict=False)
        except ValueError as e:
            raise InspectOutputInvalid(f"bad subnet {cfg['Subnet']!r}: {e}") from e
        if not isinstance(network, ipaddress.IPv4Network):
            continue  # IPv6 entries may come first; family decides, not position
        gateway: ipaddress.IPv4Address | None = None
        if cfg.get("Gateway"):
            try:
                gw = ipaddress.ip_address(str(cfg["Gateway"]).split("/")[0])
            except ValueError as e:
                raise InspectOutputInvalid(f"bad gateway {cfg['Gateway']!r}: {e}") from e
            if isinstance(gw, ipaddress.IPv4Address):
                gateway = gw
        aux: list[ipaddress.IPv4Address] = []
        for value in (cfg.get("AuxiliaryAddresses") or {}).values():
            try:
                a = ipaddress.ip_address(str(value).split("/")[0])
            except ValueError:
                continue
            if isinstance(a, ipaddress.IPv4Address):
                aux.append(a)
        out.append(_Ipv4Subnet(network, gateway, tuple(aux)))
    return out


def _container_addresses(net: dict[str, Any]) -> set[ipaddress.IPv4Address]:
    out: set[ipaddress.IPv4Address] = set()
    containers = net.get("Containers") or {}
    if not isinstance(containers, dict):
        raise InspectOutputInvalid("Containers is not an object")
    for c in containers.values():
        if not isinstance(c, dict):
            continue
        text = c.get("IPv4Address")
        if not isinstance(text, str) or not text:
            continue
        try:
            out.add(ipaddress.IPv4Interface(text).ip)
        except ValueError as e:
            raise InspectOutputInvalid(f"bad container address {text!r}: {e}") from e
    return out


def plan_pools(
    inspect_output: str | Any,
    clusters: Sequence[str],
    size: int = DEFAULT_POOL_SIZE,
    *,
    network_name: str = "kind",
) -> PoolPlan:
    """One non-overlapping range of `size` free addresses per cluster inside the IPv4 subnet."""
    if size < 1:
        raise MetalLBPlanError(f"pool size must be at least 1, not {size}")
    if not clusters:
        raise MetalLBPlanError("no cluster names given")
    for name in clusters:
        if not _CLUSTER_NAME.match(name) or len(name) > 63:
            raise MetalLBPlanError(f"cluster name {name!r} is not a DNS label")
    if len(set(clusters)) != len(clusters):
        raise MetalLBPlanError("cluster names must be distinct")
    if isinstance(inspect_output, str):
        try:
            doc = json.loads(inspect_output)
        except ValueError as e:
            raise InspectOutputInvalid(f"not JSON: {e}") from e
    else:
        doc = inspect_output
    net = _network_entry(doc, network_name)
    subnets = _ipv4_subnets(net)
    if not subnets:
        raise NoIPv4Subnet(f"network {net.get('Name', network_name)!r} has no IPv4 subnet")
    # The largest IPv4 subnet (then the lowest): a choice by content, never by position.
    chosen = sorted(subnets, key=lambda s: (s.network.prefixlen, int(s.network.network_address)))[0]
    network = chosen.network
    if network.num_addresses < 4:
        raise NotEnoughAddresses(str(network), clusters[0], size, 0)
    first_host = network.network_address + 1
    gateway = chosen.gateway or first_host  # docker's default when Gateway is absent
    reserved = {network.network_address, network.broadcast_address, gateway, *chosen.auxiliary}
    reserved |= {a for a in _container_addresses(net) if a in network}
    blocked = sorted(int(a) for a in reserved)

    pools: list[tuple[str, AddressRange]] = []
    low = int(first_host)
    cursor = int(network.broadcast_address) - 1
    for name in clusters:
        hi = cursor
        while True:
            lo = hi - size + 1
            if lo < low:
                free = _free_between(low, cursor, blocked)
                raise NotEnoughAddresses(str(network), name, size, free)
            # highest reserved address inside [lo, hi], if any
            j = bisect.bisect_right(blocked, hi) - 1
            if j >= 0 and blocked[j] >= lo:
                hi = blocked[j] - 1
                continue
            break
        pools.append((name, AddressRange(ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi))))
        cursor = lo - 1
    return PoolPlan(
        subnet=network,
        gateway=gateway,
        reserved=frozenset(reserved),
        pools=tuple(pools),
    )


def _free_between(lo: int, hi: int, blocked: Sequence[int]) -> int:
    if hi < lo:
        return 0
    taken = bisect.bisect_right(blocked, hi) - bisect.bisect_left(blocked, lo)
    return hi - lo + 1 - taken


def pool_object_name(cluster: str) -> str:
    return f"ics-discovery-{cluster}"


def manifests(
    plan: PoolPlan, *, namespace: str = "metallb-system", cluster: str | None = None
) -> str:
    """IPAddressPool + L2Advertisement YAML per cluster (each to be applied in its cluster)."""
    names = [n for n, _ in plan.pools]
    if cluster is not None and cluster not in names:
        raise MetalLBPlanError(f"cluster {cluster!r} is not one of {', '.join(names)}")
    parts: list[str] = []
    for name, rng in plan.pools:
        if cluster is not None and name != cluster:
            continue
        obj = pool_object_name(name)
        labels = {"ics-discovery.io/cluster": name}
        docs = [
            {
                "apiVersion": METALLB_API,
                "kind": "IPAddressPool",
                "metadata": {"name": obj, "namespace": namespace, "labels": labels},
                "spec": {"addresses": [str(rng)], "autoAssign": True},
            },
            {
                "apiVersion": METALLB_API,
                "kind": "L2Advertisement",
                "metadata": {"name": obj, "namespace": namespace, "labels": labels},
                "spec": {"ipAddressPools": [obj]},
            },
        ]
        body = yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True)
        parts.append(f"# cluster {name}: apply in that cluster only\n{body}")
    return "".join(parts)
