"""`ics-discovery status`: what one cluster's service knows, as readable tables.

Operators (and `make localnet`) watch ports and peers converge without
Kubernetes or chain credentials, through the service's gRPC API. Monikers,
chain IDs and rejection details come from the chain and anyone can put
terminal escape sequences in them, so every cell is made printable before it
is shown. Rendering is a pure function of the API's answers. The report ends
with a "problems" section (`discovery.commands.problems`): what the shipped
alerts watch, from those answers and the service's /metrics, in words.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb
from discovery._proto.ics.discovery.v1.discovery_pb2_grpc import DiscoveryStub
from discovery.cli import UsageError
from discovery.commands import print_json
from discovery.commands.problems import Problem, find_problems, read_metrics

DEFAULT_ADDRESS = "127.0.0.1:9400"
DEFAULT_METRICS = "127.0.0.1:9401"
_CELL_LIMIT = 48


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show ports, peers and validators from a running service",
        description="Show what a running discovery service knows, from its gRPC API.",
    )
    parser.add_argument(
        "--address",
        default=os.environ.get("ICS_DISCOVERY_GRPC_LISTEN", DEFAULT_ADDRESS),
        help="host:port of the gRPC API (default: $ICS_DISCOVERY_GRPC_LISTEN or %(default)s)",
    )
    parser.add_argument("--chain", metavar="CHAIN_ID", help="only this consumer chain")
    parser.add_argument(
        "--validators", action="store_true", help="also list the validator registry"
    )
    parser.add_argument("--json", action="store_true", help="print the API's answers as JSON")
    parser.add_argument(
        "--metrics-address",
        default=os.environ.get("ICS_DISCOVERY_METRICS_LISTEN", DEFAULT_METRICS),
        help="host:port of the service's /metrics, read for the problems section "
        "(default: $ICS_DISCOVERY_METRICS_LISTEN or %(default)s)",
    )
    parser.add_argument(
        "--no-metrics", action="store_true", help="do not read /metrics (fewer problem checks)"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per call")
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-ca", type=Path, metavar="FILE", help="CA bundle: connect with TLS")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help="client certificate (mTLS)")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="client key (mTLS)")
    tls.add_argument("--server-name", help="name to verify in the server certificate")
    parser.set_defaults(func=handle)


# --- rendering (pure) --------------------------------------------------------


def printable(text: str, limit: int = _CELL_LIMIT) -> str:
    """Untrusted text made safe for a terminal cell: printable characters only, bounded."""
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces; cells must already be printable."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    for row in [list(header), *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return lines


def _port(value: int) -> str:
    return str(value) if value else "-"


def _phase(phase: str) -> str:
    return phase.removeprefix("CONSUMER_PHASE_")


def _carries(c: pb.Consumer) -> str:
    if c.notify not in ("cosmos-operator", "cosmopilot"):
        return "-"
    if not c.node_resources:
        return "no (none found)"
    return "yes" if c.node_peers_current else "no"


def render_status(
    consumers: pb.ListConsumersResponse,
    peers: Mapping[str, pb.PeerSet],
    validators: pb.ListValidatorsResponse | None = None,
) -> str:
    """The status report: consumers, then each chain's peers and left-out validators."""
    operator = printable(consumers.operator_address, 80)
    lines = [f"provider height {consumers.height}   operator {operator}", ""]
    rows = [
        [
            printable(c.consumer_id),
            printable(c.chain_id),
            printable(_phase(c.phase)),
            "yes" if c.opted_in else "no",
            "yes" if c.exposed else "no",
            _port(c.ports.p2p),
            _port(c.ports.rpc),
            _port(c.ports.grpc),
            str(c.peer_count),
            str(c.left_out_count),
            printable(c.problem, 60),
        ]
        for c in consumers.consumers
    ]
    header = [
        "CONSUMER",
        "CHAIN ID",
        "PHASE",
        "OPTED IN",
        "EXPOSED",
        "P2P",
        "RPC",
        "GRPC",
        "PEERS",
        "LEFT OUT",
        "PROBLEM",
    ]
    lines += table(header, rows) if rows else ["no consumer chains"]
    told = [c for c in consumers.consumers if c.notify]
    if told:
        lines += ["", "how consumer nodes learn their peers:"]
        lines += table(
            ["CHAIN ID", "NOTIFY", "NODE RESOURCES", "CARRY CURRENT PEERS"],
            [
                [
                    printable(c.chain_id),
                    printable(c.notify),
                    printable(c.node_resources or "-", 80),
                    _carries(c),
                ]
                for c in told
            ],
        )
    for chain_id in sorted(peers):
        ps = peers[chain_id]
        lines += ["", f"peers of {printable(chain_id)} (consumer {printable(ps.consumer_id)}):"]
        peer_rows = [
            [printable(p.moniker, 24), printable(p.operator_address, 60), printable(p.entry, 80)]
            for p in ps.peers
        ]
        lines += table(["MONIKER", "OPERATOR", "PEER"], peer_rows) if peer_rows else ["  none"]
        if ps.left_out:
            lines.append("left out:")
            lines += table(
                ["MONIKER", "OPERATOR", "REASON", "DETAIL"],
                [
                    [
                        printable(x.moniker, 24),
                        printable(x.operator_address or x.consensus_address, 60),
                        printable(x.reason),
                        printable(x.detail, 80),
                    ]
                    for x in ps.left_out
                ],
            )
    if validators is not None:
        lines += ["", f"validators at height {validators.height}:"]
        vrows = []
        for v in validators.validators:
            if v.WhichOneof("endpoint") == "accepted":
                node = f" node={v.accepted.node_id}" if v.accepted.node_id else ""
                endpoint = v.accepted.host + node
                verdict = "ok"
            else:
                endpoint = v.rejected.detail
                verdict = v.rejected.reason
            vrows.append(
                [
                    printable(v.moniker, 24),
                    printable(v.operator_address, 60),
                    printable(v.status.removeprefix("BOND_STATUS_"))
                    + (" jailed" if v.jailed else ""),
                    printable(verdict),
                    printable(endpoint, 80),
                ]
            )
        lines += table(["MONIKER", "OPERATOR", "STATUS", "ENDPOINT", "DETAIL"], vrows)
    return "\n".join(lines) + "\n"


def render_problems(problems: Sequence[Problem]) -> str:
    """The closing "problems" section: each problem and what to do."""
    if not problems:
        return "\nproblems: none\n"
    lines = ["", f"problems ({len(problems)}):"]
    for p in problems:
        lines.append(f"- {printable(p.what, 200)}")
        lines.append(f"  do: {p.todo}")
    return "\n".join(lines) + "\n"


# --- talking to the API ------------------------------------------------------


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from e


def open_channel(args: argparse.Namespace) -> Any:
    """An aio channel to `args.address`, with TLS when a CA or client certificate is given."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    options = []
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    if args.tls_ca is None and args.tls_cert is None:
        return grpc.aio.insecure_channel(args.address, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(args.tls_ca),
        private_key=_read(args.tls_key),
        certificate_chain=_read(args.tls_cert),
    )
    return grpc.aio.secure_channel(args.address, credentials, options=options)


async def fetch(
    stub: DiscoveryStub, chain: str | None, with_validators: bool, call_timeout: float
) -> tuple[pb.ListConsumersResponse, dict[str, pb.PeerSet], pb.ListValidatorsResponse | None]:
    """The answers `render_status` needs; `call_timeout` is per call (gRPC deadline)."""
    timeout = call_timeout
    consumers = await stub.ListConsumers(pb.ListConsumersRequest(), timeout=timeout)
    if chain is not None:
        kept = [c for c in consumers.consumers if c.chain_id == chain]
        del consumers.consumers[:]
        consumers.consumers.extend(kept)
    peers: dict[str, pb.PeerSet] = {}
    for c in consumers.consumers:
        if not c.exposed or c.chain_id in peers:
            continue
        try:
            answer = await stub.GetPeers(pb.GetPeersRequest(chain_id=c.chain_id), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                continue  # exposed but no list yet: the table already says how many peers
            raise
        peers[c.chain_id] = answer.peers
    validators = None
    if with_validators:
        validators = await stub.ListValidators(pb.ListValidatorsRequest(), timeout=timeout)
    return consumers, peers, validators


async def _status(args: argparse.Namespace) -> str:
    async with open_channel(args) as channel:
        consumers, peers, validators = await fetch(
            DiscoveryStub(channel), args.chain, args.validators, args.timeout
        )
    metrics = None
    if not args.no_metrics:
        metrics = await asyncio.to_thread(read_metrics, args.metrics_address, args.timeout)
    problems = find_problems(consumers, peers, metrics, time.time())
    if args.json:
        document: dict[str, Any] = {
            "consumers": MessageToDict(consumers, preserving_proto_field_name=True),
            "peers": {
                k: MessageToDict(v, preserving_proto_field_name=True) for k, v in peers.items()
            },
        }
        if validators is not None:
            document["validators"] = MessageToDict(validators, preserving_proto_field_name=True)
        document["problems"] = [asdict(p) for p in problems]
        print_json(document)
        return ""
    return render_status(consumers, peers, validators) + render_problems(problems)


def handle(args: argparse.Namespace) -> int:
    try:
        text = asyncio.run(_status(args))
    except grpc.aio.AioRpcError as e:
        detail = printable(e.details() or "", 200)
        print(f"ics-discovery status: {args.address}: {e.code().name}: {detail}")
        return 1
    if text:
        print(text, end="")
    return 0
