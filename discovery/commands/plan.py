"""`ics-discovery snapshot` and `plan`: the chain state, and the whole decision, offline.

`snapshot` reads the live provider exactly as the service does (the chain
monitor's full load: validators, consumer chains, opted-in sets, validator
sets, spawn times) and prints it as JSON (`discovery.snapshot_file`). `plan`
reads such a file, or the live chain with `--grpc`, and prints what the
service would decide for `--operator`, through the service's own decision
function (`discovery.plan`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

from chainmonitor.errors import ChainMonitorError
from chainmonitor.monitor import ChainMonitor, MonitorSettings
from chainmonitor.queries import ChainQueries, FallbackQueries, GrpcQueries, RestQueries
from chainmonitor.types import ChainSnapshot
from discovery.cli import UsageError
from discovery.commands import add_scheme_options, json_text, print_json, scheme_and_compat
from discovery.endpoints import EndpointProfile
from discovery.errors import DiscoveryError
from discovery.peers import DEFAULT_MAX_PEERS, MAX_PEERS_LIMIT
from discovery.plan import plan_cluster, plan_document, plan_policies, plan_table
from discovery.snapshot_file import read_snapshot, snapshot_document

# A live read gives up after this long (seconds) rather than hang on a dead node.
LIVE_TIMEOUT = 120.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    snap = subparsers.add_parser(
        "snapshot",
        help="print the provider chain state as JSON (the input of plan)",
        description="Read the provider as the service does and print the snapshot JSON.",
    )
    _add_source(snap, required=True)
    snap.set_defaults(func=run_snapshot)

    plan = subparsers.add_parser(
        "plan",
        help="show what the service would decide, from a snapshot or the live chain",
        description=(
            "Print, for every consumer chain, whether this validator exposes it, its ports, "
            "its peers and who is left out and why, exactly as the service decides them."
        ),
    )
    plan.add_argument("--snapshot", metavar="FILE", help='snapshot JSON ("-" for stdin)')
    _add_source(plan, required=False)
    plan.add_argument(
        "--operator", required=True, metavar="VALOPER", help="our validator's operator address"
    )
    add_scheme_options(plan)
    plan.add_argument(
        "--endpoint-profile",
        choices=[p.value for p in EndpointProfile],
        default=EndpointProfile.MAINNET.value,
        help="endpoint policy profile (default: %(default)s)",
    )
    plan.add_argument(
        "--max-peers",
        type=int,
        default=DEFAULT_MAX_PEERS,
        metavar="N",
        help=f"persistent peers per chain, 1..{MAX_PEERS_LIMIT} (default: %(default)s)",
    )
    plan.add_argument("--json", action="store_true", help="print JSON (sorted keys)")
    plan.set_defaults(func=run_plan)


def _add_source(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--grpc", metavar="HOST:PORT", required=required, help="provider gRPC endpoint"
    )
    parser.add_argument("--rest", metavar="URL", help="provider REST endpoint, used if gRPC fails")


def run_snapshot(args: argparse.Namespace) -> int:
    sys.stdout.write(json_text(snapshot_document(_live(args.grpc, args.rest))))
    return 0


def run_plan(args: argparse.Namespace) -> int:
    if (args.snapshot is None) == (args.grpc is None):
        raise UsageError("give either --snapshot FILE or --grpc HOST:PORT")
    if args.rest and args.grpc is None:
        raise UsageError("--rest goes with --grpc")
    if not 1 <= args.max_peers <= MAX_PEERS_LIMIT:
        raise UsageError(f"--max-peers must be in 1..{MAX_PEERS_LIMIT}")
    snapshot = _from_file(args.snapshot) if args.snapshot else _live(args.grpc, args.rest)
    try:
        scheme, compat = scheme_and_compat(args)
        exposure, endpoint_policy = plan_policies(
            scheme=scheme,
            endpoint_profile=args.endpoint_profile,
            max_peers=args.max_peers,
            compat=compat,
        )
        desired = plan_cluster(snapshot, args.operator, exposure, endpoint_policy)
    except DiscoveryError as e:
        raise UsageError(str(e)) from e
    if args.json:
        print_json(plan_document(desired))
    else:
        sys.stdout.write("".join(line + "\n" for line in plan_table(desired)))
    return 0


def _from_file(source: str) -> ChainSnapshot:
    where = "standard input" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {where}: {e}") from e
    try:
        document: Any = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{where} is not JSON: {e}") from e
    try:
        return read_snapshot(document)
    except DiscoveryError as e:
        raise UsageError(f"invalid snapshot {where}: {e}") from e


def _live(grpc: str, rest: str | None) -> ChainSnapshot:
    try:
        return asyncio.run(read_live(grpc, rest))
    except (ChainMonitorError, TimeoutError) as e:
        raise UsageError(f"cannot read the provider: {e or 'timed out'}") from e


async def read_live(grpc: str, rest: str | None) -> ChainSnapshot:
    """One full load by the service's chain monitor (no event stream), then stop."""
    sources: list[ChainQueries] = [GrpcQueries(grpc)]
    if rest:
        sources.append(RestQueries(rest))
    queries = sources[0] if len(sources) == 1 else FallbackQueries(*sources)
    monitor = ChainMonitor(queries, settings=MonitorSettings(resync_interval=3600.0))
    task = asyncio.create_task(monitor.run())
    try:
        async with asyncio.timeout(LIVE_TIMEOUT):
            waiting = asyncio.create_task(monitor.wait_for(lambda s: True))
            done, _ = await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if waiting not in done:
                waiting.cancel()
                task.result()
            return waiting.result()
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await task
        await queries.close()
