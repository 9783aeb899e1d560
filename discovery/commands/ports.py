"""`ics-discovery ports`: show a chain's derived ports, or allocate ports for a set of chains.

Operators use it to check what every validator will compute before a chain
launches, and to compare against other implementations; the output is the
same bytes on every machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from discovery.cli import UsageError
from discovery.commands import add_scheme_options, print_json, scheme_and_compat
from discovery.errors import DiscoveryError
from discovery.interop import GO_RESERVED_RANGES, Compat, allocate_for, go_port_refusal
from discovery.ports import (
    Allocation,
    ConsumerChainRef,
    PortPlan,
    PortScheme,
    chain_offset,
    derive_ports,
)
from discovery.types import ConsumerId, ConsumerPhase

_PLAN_KEYS = frozenset({"consumer_id", "chain_id", "phase", "spawn_time"})


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ports",
        help="derive a consumer chain's ports, or allocate ports for many chains",
        description=(
            "Derive the ports of CHAIN_ID, or with --plan allocate collision-free ports "
            "for a JSON list of consumer chains, exactly as every validator does."
        ),
    )
    parser.add_argument("chain_id", nargs="?", metavar="CHAIN_ID", help="consumer chain ID")
    parser.add_argument(
        "--plan",
        metavar="FILE",
        help='JSON list of {"consumer_id", "chain_id", "phase"?, "spawn_time"?} objects ("-" '
        "for stdin), all given ports; `ics-discovery plan` shows which chains the service "
        "gives ports (launched and stopped ones)",
    )
    add_scheme_options(parser)
    parser.add_argument(
        "--reserve",
        metavar="PORT",
        action="append",
        default=[],
        help="with --plan: a port no chain may get (repeatable, or comma separated)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (sorted keys)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    scheme, compat = scheme_and_compat(args)
    if (args.chain_id is None) == (args.plan is None):
        raise UsageError("give either CHAIN_ID or --plan FILE")
    try:
        if args.plan is None:
            if args.reserve:
                raise UsageError("--reserve applies only to --plan")
            if compat is Compat.ICS_OPERATOR:
                refusal = go_port_refusal(args.chain_id)
                if refusal is not None:
                    raise UsageError(f"{args.chain_id!a} gets no ports: {refusal}")
            return _show_derived(args.chain_id, scheme, as_json=args.json)
        chains = _read_plan(args.plan)
        reserved = _reserved_ports(args.reserve)
        plan, refused = allocate_for(chains, scheme, reserved, compat)
    except DiscoveryError as e:
        raise UsageError(str(e)) from e
    if compat is Compat.NONE:
        _show_plan(plan, as_json=args.json)
        return 0
    _show_compat_plan(plan, chains, reserved, refused, as_json=args.json)
    return 0


def _show_compat_plan(
    plan: PortPlan,
    chains: list[ConsumerChainRef],
    reserved: set[int],
    refused: dict[ConsumerId, str],
    *,
    as_json: bool,
) -> None:
    gone = [c for c in sorted(chains, key=ConsumerChainRef.order_key) if c.consumer_id in refused]
    if as_json:
        document = plan_json(plan)
        # Go's reserved ports are reserved too; listing all 1028 would drown the output.
        document["reserved"] = sorted(reserved)
        document["go_reserved"] = [[start, end, name] for start, end, name in GO_RESERVED_RANGES]
        document["compat"] = Compat.ICS_OPERATOR.value
        document["refused"] = [
            {"consumer_id": c.consumer_id, "chain_id": c.chain_id, "reason": refused[c.consumer_id]}
            for c in gone
        ]
        print_json(document)
        return
    _show_plan(plan, as_json=False)
    for c in gone:
        print(f"{c.consumer_id} {c.chain_id!a} no ports: {refused[c.consumer_id]}")


def _show_derived(chain_id: str, scheme: PortScheme, *, as_json: bool) -> int:
    ports = derive_ports(chain_id, scheme)
    document: dict[str, Any] = {
        "chain_id": chain_id,
        "offset": chain_offset(chain_id),
        "scheme": scheme.value,
        **ports.as_json(),
    }
    if as_json:
        print_json(document)
    else:
        for key, value in document.items():
            print(f"{key}: {value}")
    return 0


def _allocation_json(allocation: Allocation) -> dict[str, Any]:
    return {
        "consumer_id": allocation.consumer_id,
        "chain_id": allocation.chain_id,
        "phase": allocation.phase.value if allocation.phase is not None else None,
        "offset": allocation.offset,
        "collided": allocation.collided,
        "moved": [kind.value for kind in allocation.moved],
        **allocation.ports.as_json(),
    }


def plan_json(plan: PortPlan) -> dict[str, Any]:
    """The JSON document `ports --plan --json` prints."""
    return {
        "scheme": plan.scheme.value,
        "reserved": sorted(plan.reserved),
        "chains": [_allocation_json(a) for a in plan.allocations],
    }


def _show_plan(plan: PortPlan, *, as_json: bool) -> None:
    if as_json:
        print_json(plan_json(plan))
        return
    for a in plan.allocations:
        ports = " ".join(f"{kind}={port}" for kind, port in a.ports.as_json().items())
        note = f" (moved: {', '.join(a.moved)})" if a.collided else ""
        print(f"{a.consumer_id} {a.chain_id!a} offset={a.offset} {ports}{note}")


def _reserved_ports(values: list[str]) -> set[int]:
    ports: set[int] = set()
    for value in values:
        for item in value.split(","):
            text = item.strip()
            if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
                raise UsageError(f"--reserve: {item!a} is not a port in 1..65535")
            ports.add(int(text))
    return ports


def _read_plan(source: str) -> list[ConsumerChainRef]:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {source!a}: {e.strerror or e}") from e
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{source!a} is not valid JSON: {e}") from e
    if not isinstance(document, list):
        raise UsageError("the plan must be a JSON list of consumer chains")
    return [_plan_entry(i, entry) for i, entry in enumerate(document)]


def _plan_entry(index: int, entry: object) -> ConsumerChainRef:
    where = f"plan entry {index}"
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: expected an object")
    unknown = sorted(set(entry) - _PLAN_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown keys {', '.join(ascii(k) for k in unknown)}")
    consumer_id = entry.get("consumer_id")
    if isinstance(consumer_id, int) and not isinstance(consumer_id, bool) and consumer_id >= 0:
        consumer_id = str(consumer_id)
    if not isinstance(consumer_id, str):
        raise UsageError(f"{where}: consumer_id must be a decimal string")
    chain_id = entry.get("chain_id")
    if not isinstance(chain_id, str):
        raise UsageError(f"{where}: chain_id must be a string")
    raw_phase = entry.get("phase")
    phase: ConsumerPhase | None = None
    if raw_phase is not None:
        try:
            phase = ConsumerPhase(raw_phase)
        except ValueError as e:
            names = ", ".join(p.value for p in ConsumerPhase)
            raise UsageError(f"{where}: phase must be one of {names}") from e
    spawn_time = entry.get("spawn_time", "")
    if not isinstance(spawn_time, str):
        raise UsageError(f"{where}: spawn_time must be an RFC 3339 string")
    try:
        return ConsumerChainRef.parse(consumer_id, chain_id, phase, spawn_time)
    except DiscoveryError as e:
        raise UsageError(f"{where}: {e}") from e
