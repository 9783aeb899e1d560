"""Compatibility with validators that run the Go implementation (`--compat ics-operator`).

The LoadBalancer discovery design was first built in Go (roylee17/monitor,
later sourcenetwork/ics-operator; read at commit b5b303d). In a network where
some validators still run it, every validator must agree on ports and be able
to name every other validator's node. This module holds the decisions that
compatibility mode adds, as pure functions (see docs/interop.md for users):

- ports: the `ics-operator` scheme, and a chain whose derived ports hit Go's
  reserved list gets no ports at all, because Go refuses to run it
  (`CalculatePorts` fails, internal/subnet/ports.go:99-124, and the consumer
  handler gives up, internal/monitor/handlers.go:1139-1145). Go's reserved
  ports are also never handed to a moved port. Collisions between two chains
  are still resolved by our rule (Go gives both chains the same port, which
  one LoadBalancer Service cannot route twice; see docs/interop.md);
- endpoints: besides our own forms, whatever Go's reader extracts
  (`p2p=` to the end of the line, the JSON-like `"p2p":"host:port"`), always
  validated by our host rules afterwards;
- node IDs: a validator that publishes no `node=` gets the node ID Go gives
  its nodes, derived from its moniker and the chain ID. INSECURE by
  construction: anyone can compute that private key.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from discovery.endpoints import (
    DEFAULT_POLICY,
    EndpointPolicy,
    EndpointRejection,
    EndpointResult,
    PublishedEndpoint,
    RejectReason,
    go_extract_p2p_endpoint,
    parse_host,
    read_details,
)
from discovery.errors import EndpointRejected, InvalidNodeKey
from discovery.nodekey import insecure_node_id_from_moniker
from discovery.ports import (
    ConsumerChainRef,
    PortKind,
    PortPlan,
    PortScheme,
    allocate_ports,
    derive_ports,
)
from discovery.types import ConsumerId, NodeId, OperatorAddress


class Compat(StrEnum):
    """Which other implementation this validator must interoperate with."""

    NONE = "none"
    ICS_OPERATOR = "ics-operator"


# internal/subnet/ports.go:45-52 (ReservedPorts), inclusive ranges.
GO_RESERVED_RANGES: Final = (
    (0, 1023, "System ports"),
    (3000, 3000, "Common development servers"),
    (5432, 5432, "PostgreSQL"),
    (6379, 6379, "Redis"),
    (8080, 8080, "HTTP alternate"),
    (27017, 27017, "MongoDB"),
)
# internal/constants/ports.go:6-7 (MinUserPort, MaxUserPort).
GO_MIN_PORT: Final = 1024
GO_MAX_PORT: Final = 65535
# The kinds ValidatePorts checks (internal/subnet/ports.go:66-74), with Go's names;
# REST (RPC + 660, internal/subnet/k8s_manager.go:344) is not checked by Go.
_GO_CHECKED: Final = (
    (PortKind.P2P, "P2P"),
    (PortKind.RPC, "RPC"),
    (PortKind.GRPC, "gRPC"),
    (PortKind.GRPC_WEB, "gRPC-Web"),
)


def go_reserved_ports() -> frozenset[int]:
    """Every port (1..65535) in Go's reserved list: never given to any chain in compat mode."""
    return frozenset(
        port for start, end, _ in GO_RESERVED_RANGES for port in range(max(start, 1), end + 1)
    )


def go_port_refusal(chain_id: str) -> str | None:
    """Why the Go implementation refuses to run `chain_id` (its ports), or None if it runs it.

    Follows `ValidatePorts` (internal/subnet/ports.go:65-96) on the ports of
    `CalculatePorts`: the first checked port out of 1024..65535 or in a
    reserved range decides. (Two kinds never share a port in this scheme, so
    Go's internal collision check cannot fire.) Only offset 26 is refused
    today: its RPC port is 27017 (MongoDB).
    """
    ports = derive_ports(chain_id, PortScheme.ICS_OPERATOR).by_kind()
    for kind, name in _GO_CHECKED:
        port = ports[kind]
        if not GO_MIN_PORT <= port <= GO_MAX_PORT:
            return f"{name} port {port} is out of the Go implementation's range"
        for start, end, service in GO_RESERVED_RANGES:
            if start <= port <= end:
                return (
                    f"the Go implementation refuses this chain: its {name} port {port} "
                    f"is reserved for {service}"
                )
    return None


def compat_allocate(
    chains: Iterable[ConsumerChainRef], reserved: Iterable[int] = frozenset()
) -> tuple[PortPlan, dict[ConsumerId, str]]:
    """Ports as a mixed fleet needs them: Go-refused chains get none (with the reason).

    The other chains are allocated by `allocate_ports` in the `ics-operator`
    scheme with Go's reserved ports added to `reserved`. Which chains Go
    refuses depends only on each chain ID, so the plan is as stable as
    `allocate_ports`' own. Raises what `allocate_ports` raises.
    """
    refused: dict[ConsumerId, str] = {}
    kept: list[ConsumerChainRef] = []
    for chain in chains:
        problem = go_port_refusal(chain.chain_id)
        if problem is None:
            kept.append(chain)
        else:
            refused[chain.consumer_id] = problem
    plan = allocate_ports(kept, PortScheme.ICS_OPERATOR, frozenset(reserved) | go_reserved_ports())
    return plan, refused


def allocate_for(
    chains: Iterable[ConsumerChainRef],
    scheme: PortScheme,
    reserved: Iterable[int],
    compat: Compat,
) -> tuple[PortPlan, dict[ConsumerId, str]]:
    """The plan for `compat`: plain `allocate_ports`, or `compat_allocate` for ics-operator."""
    if compat is Compat.ICS_OPERATOR:
        return compat_allocate(chains, reserved)
    return allocate_ports(chains, scheme, reserved), {}


# Rejections after which Go's own reading is tried: ours found no usable
# `p2p=` token. Conflicts, bad node IDs, forbidden addresses and the length
# limit stand: Go's reading of such details is never more trustworthy.
_GO_FALLBACK: Final = frozenset({RejectReason.NO_ENDPOINT, RejectReason.MALFORMED_HOST})


def read_details_compat(
    details: str, policy: EndpointPolicy = DEFAULT_POLICY, compat: Compat = Compat.NONE
) -> EndpointResult:
    """`read_details`, and in `ics-operator` mode also every form the Go reader accepts.

    When our reader finds no usable `p2p=` token, the text Go's
    `extractP2PEndpoint` would take (validator_registry.go:68-108) is
    validated as one host by `parse_host` under `policy`: a hostile or broken
    string is refused exactly as in our own forms, with its reason. An
    endpoint found this way carries no node ID.
    """
    result = read_details(details, policy)
    if compat is Compat.NONE or isinstance(result, PublishedEndpoint):
        return result
    if result.reason not in _GO_FALLBACK:
        return result
    text = go_extract_p2p_endpoint(details)
    if not text:
        return result
    try:
        host = parse_host(text, policy)
    except EndpointRejected as e:
        return EndpointRejection(
            RejectReason(e.reason), f"as the Go implementation reads it: {e.detail}"
        )
    return PublishedEndpoint(host)


# ~80 us per derivation (an ed25519 key): every reconcile would redo them for
# every chain and Go validator. Pure, so cached; bounded against a registry
# full of junk monikers.
_cached_go_node_id = functools.lru_cache(maxsize=16384)(insecure_node_id_from_moniker)


@dataclass(frozen=True)
class MonikerNodeIds:
    """Node IDs derived from monikers for one chain (compat mode), by operator address."""

    node_ids: Mapping[OperatorAddress, NodeId]

    def operators(self) -> tuple[OperatorAddress, ...]:
        return tuple(sorted(self.node_ids))


def moniker_node_ids(
    endpoints: Mapping[OperatorAddress, EndpointResult],
    monikers: Mapping[OperatorAddress, str],
    chain_id: str,
) -> MonikerNodeIds:
    """INSECURE: the Go node ID of each validator that publishes an endpoint but no `node=`.

    Go derives it from the on-chain moniker exactly as written (no trimming);
    a validator with an empty moniker gets none (Go keys it by operator
    address then, and finds no endpoint for it: internal/monitor/handlers.go:1333-1338).
    """
    out: dict[OperatorAddress, NodeId] = {}
    for operator, endpoint in endpoints.items():
        if not isinstance(endpoint, PublishedEndpoint) or endpoint.node_id is not None:
            continue
        moniker = monikers.get(operator, "")
        if not moniker:
            continue
        try:
            out[operator] = _cached_go_node_id(moniker, chain_id)
        except InvalidNodeKey:  # not UTF-8: cannot come from the chain
            continue
    return MonikerNodeIds(dict(sorted(out.items())))
