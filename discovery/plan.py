"""What the service would do, from a chain snapshot alone: the `ics-discovery plan` view. Pure.

There is no second copy of the rules here: `plan_cluster` calls the service's
own `desired.desired_cluster` with the same parameter objects the service
builds from its settings (`ExposurePolicy`, `EndpointPolicy`), and this
module only renders the answer. A new option of the decision belongs in
`plan_policies` (and so in both the service and `plan`) and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chainmonitor.types import ChainSnapshot
from discovery.desired import DesiredCluster, ExposurePolicy, desired_cluster
from discovery.endpoints import EndpointPolicy, EndpointProfile
from discovery.interop import Compat
from discovery.peers import DEFAULT_MAX_PEERS
from discovery.ports import PortScheme


def plan_policies(
    scheme: PortScheme | str = PortScheme.DOCUMENT,
    endpoint_profile: EndpointProfile | str = EndpointProfile.MAINNET,
    max_peers: int = DEFAULT_MAX_PEERS,
    reserved_ports: Iterable[int] = (),
    compat: Compat | str = Compat.NONE,
) -> tuple[ExposurePolicy, EndpointPolicy]:
    """The decision's parameters, as the service builds them from the same settings."""
    exposure = ExposurePolicy(
        scheme=PortScheme(scheme),
        reserved_ports=frozenset(reserved_ports),
        max_peers=max_peers,
        compat=Compat(compat),
    )
    return exposure, EndpointPolicy.for_profile(endpoint_profile)


def plan_cluster(
    snapshot: ChainSnapshot,
    operator: str,
    exposure: ExposurePolicy,
    endpoint_policy: EndpointPolicy,
) -> DesiredCluster:
    """The service's decision for `snapshot` as validator `operator` (no Kubernetes input)."""
    return desired_cluster(snapshot, operator, exposure, endpoint_policy, {}, pods_known=False)


def plan_document(desired: DesiredCluster) -> dict[str, Any]:
    """`plan --json`: every listed chain, its ports, and (if exposed) peers and who is left out."""
    chains: list[dict[str, Any]] = []
    for view in desired.state.chains:
        peers = view.peers
        chains.append(
            {
                "consumer_id": view.consumer_id,
                "chain_id": view.chain_id,
                "phase": view.phase,
                "exposed": view.exposed,
                "ports": dict(view.ports.ports) if view.ports else None,
                "peers": [p.checked_entry() for p in peers.peers] if peers else [],
                "left_out": [
                    {"operator": x.operator_address or x.consensus_address, "reason": x.reason}
                    for x in peers.left_out
                ]
                if peers
                else [],
            }
        )
    return {"chains": chains}


def _cell(text: str, limit: int = 48) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def plan_table(desired: DesiredCluster) -> list[str]:
    """A readable table: one row per chain, then each exposed chain's peers and left-out ones."""
    header = ["CONSUMER", "CHAIN ID", "PHASE", "EXPOSED", "P2P", "RPC", "GRPC", "PEERS", "NOTE"]
    rows: list[list[str]] = []
    for v in desired.state.chains:
        ports = v.ports.ports if v.ports else {}
        rows.append(
            [
                v.consumer_id,
                _cell(v.chain_id),
                v.phase.removeprefix("CONSUMER_PHASE_").lower(),
                "yes" if v.exposed else "no",
                *(str(ports[k]) if k in ports else "-" for k in ("p2p", "rpc", "grpc")),
                str(len(v.peers.peers)) if v.peers else "-",
                _cell(
                    v.problem
                    or (
                        "ports moved: " + ",".join(v.ports.moved)
                        if v.ports and v.ports.moved
                        else ""
                    ),
                    80,
                ),
            ]
        )
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    for v in desired.state.chains:
        if v.peers is None:
            continue
        lines.append("")
        lines.append(f"{_cell(v.chain_id)} (consumer {v.consumer_id}): {len(v.peers.peers)} peers")
        lines += [f"  {p.checked_entry()}  {_cell(p.moniker, 32)}" for p in v.peers.peers]
        for x in v.peers.left_out:
            who = x.operator_address or x.consensus_address
            lines.append(
                f"  left out {who} ({_cell(x.moniker, 32)}): {x.reason}: {_cell(x.detail, 100)}"
            )
    for problem in desired.problems:
        lines.append(f"problem: {_cell(problem, 200)}")
    return lines
