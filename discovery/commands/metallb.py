"""`ics-discovery metallb-pools`: MetalLB address pools for the Kind testnet's clusters.

`make kind-up` feeds it `docker network inspect kind` and the cluster names and
applies the result, so every cluster's LoadBalancer addresses are reachable on
the shared Kind network and no two clusters hand out the same address.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from discovery.cli import UsageError
from discovery.commands import print_json
from lbmanager.errors import MetalLBPlanError
from lbmanager.metallb import DEFAULT_POOL_SIZE, PoolPlan, manifests, plan_pools


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "metallb-pools",
        help="plan non-overlapping MetalLB pools inside the Kind network's IPv4 subnet",
        description=(
            "Read `docker network inspect kind` output and give each cluster a range of "
            "free addresses inside the network's IPv4 subnet (never the network, gateway, "
            "broadcast or a container's address; ranges never overlap)."
        ),
    )
    parser.add_argument(
        "--network-json",
        metavar="FILE",
        required=True,
        help='output of `docker network inspect kind` ("-" for stdin)',
    )
    parser.add_argument(
        "--clusters",
        metavar="NAMES",
        required=True,
        help="comma-separated cluster names, e.g. alice,bob,charlie",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=DEFAULT_POOL_SIZE,
        help="addresses per cluster (default: %(default)s)",
    )
    parser.add_argument(
        "--network-name",
        default="kind",
        help="docker network to use when the file lists several (default: %(default)s)",
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help='print {"subnet", "pools"} as JSON')
    out.add_argument(
        "--manifests",
        action="store_true",
        help="print IPAddressPool and L2Advertisement YAML (metallb.io/v1beta1) per cluster",
    )
    parser.add_argument(
        "--namespace",
        default="metallb-system",
        help="with --manifests: MetalLB's namespace (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        metavar="CLUSTER",
        help="with --manifests: print only this cluster's objects (pools still planned for all)",
    )
    parser.set_defaults(func=run)


def _clusters(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--clusters needs at least one name")
    return names


def _read(source: str) -> str:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {source}: {e.strerror or e}") from e
    return data.decode("utf-8", errors="replace")


def run(args: argparse.Namespace) -> int:
    if args.only and not args.manifests:
        raise UsageError("--only works with --manifests")
    clusters = _clusters(args.clusters)
    text = _read(args.network_json)
    try:
        plan = plan_pools(text, clusters, args.size, network_name=args.network_name)
        if args.manifests:
            sys.stdout.write(manifests(plan, namespace=args.namespace, cluster=args.only))
            return 0
    except MetalLBPlanError as e:
        raise UsageError(str(e)) from e
    if args.json:
        print_json(plan.as_json())
    else:
        _print_table(plan)
    return 0


def _print_table(plan: PoolPlan) -> None:
    print(f"subnet {plan.subnet} (gateway {plan.gateway})")
    width = max(len(name) for name, _ in plan.pools)
    for name, rng in plan.pools:
        print(f"  {name:<{width}}  {rng.start} - {rng.end}  ({rng.size} addresses)")
