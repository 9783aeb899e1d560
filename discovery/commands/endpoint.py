"""`ics-discovery endpoint`: read and write the endpoint published in validator details.

`parse` shows what every validator will make of a description's details (or
why it is rejected), and `format` produces new details that keep the operator's
text, so an operator can check an edit before sending it. Each action is one
function in `ACTIONS`; adding an action (such as `publish`) means adding one
register function there.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from discovery.cli import UsageError
from discovery.commands import Subparsers, add_policy_arguments, policy_from_args, print_json
from discovery.commands.endpoint_publish import register_publish
from discovery.endpoints import (
    EndpointRejection,
    format_details,
)
from discovery.errors import DiscoveryError
from discovery.interop import Compat, read_details_compat
from discovery.nodekey import insecure_node_id_from_moniker


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "endpoint",
        help="parse or format the endpoint in a validator's description details",
        description="Read or write the LoadBalancer endpoint published in description.details.",
    )
    actions = parser.add_subparsers(dest="endpoint_action", metavar="ACTION", required=True)
    for add_action in ACTIONS:
        add_action(actions)


def _register_parse(actions: Subparsers) -> None:
    parser = actions.add_parser(
        "parse",
        help="show the endpoint in DETAILS, or why it is rejected",
        description="Print the endpoint in DETAILS; exit 2 with the reason if it is rejected.",
    )
    parser.add_argument("details", metavar="DETAILS", help="the description.details text")
    parser.add_argument("--json", action="store_true", help='print {"host", "node_id"} as JSON')
    add_policy_arguments(parser)
    add_compat_argument(parser)
    parser.add_argument(
        "--moniker",
        metavar="MONIKER",
        help=(
            "with --compat ics-operator and --chain-id: when DETAILS carry no node=, show "
            "the node ID the Go implementation derives from this moniker (INSECURE)"
        ),
    )
    parser.add_argument("--chain-id", metavar="CHAIN_ID", help="consumer chain ID (see --moniker)")
    parser.set_defaults(func=_run_parse)


def add_compat_argument(parser: argparse.ArgumentParser) -> None:
    """`--compat`: interoperate with the Go implementation (see docs/interop.md)."""
    parser.add_argument(
        "--compat",
        choices=[c.value for c in Compat],
        default=Compat.NONE.value,
        help="ics-operator: also accept the Go implementation's forms (default: %(default)s)",
    )


def _run_parse(args: argparse.Namespace) -> int:
    compat = Compat(args.compat)
    if (args.moniker is None) != (args.chain_id is None):
        raise UsageError("--moniker and --chain-id go together")
    if args.moniker is not None and compat is Compat.NONE:
        raise UsageError("--moniker needs --compat ics-operator")
    result = read_details_compat(args.details, policy_from_args(args), compat)
    if isinstance(result, EndpointRejection):
        raise UsageError(str(result))
    node_id, source = result.node_id, "published" if result.node_id else None
    if node_id is None and args.moniker is not None:
        try:
            node_id = insecure_node_id_from_moniker(args.moniker, args.chain_id)
        except DiscoveryError as e:
            raise UsageError(str(e)) from e
        source = "moniker (insecure)"
    if args.json:
        document: dict[str, str | None] = {"host": result.host.name, "node_id": node_id}
        if compat is not Compat.NONE:
            document["node_id_source"] = source
        print_json(document)
    else:
        print(f"host: {result.host.name}")
        print(f"node_id: {node_id or '-'}")
        if compat is not Compat.NONE:
            print(f"node_id_source: {source or '-'}")
    return 0


def _register_format(actions: Subparsers) -> None:
    parser = actions.add_parser(
        "format",
        help="new details carrying HOST, keeping the operator's text",
        description=(
            "Print description details that keep the text of --details and carry exactly "
            "one p2p= token (and node= with --node-id); exit 2 if over 280 bytes."
        ),
    )
    parser.add_argument("--details", required=True, metavar="TEXT", help="current details")
    parser.add_argument("--host", required=True, metavar="HOST", help="IPv4, IPv6 or DNS name")
    parser.add_argument("--node-id", metavar="ID", help="40 hexadecimal digits")
    parser.add_argument("--json", action="store_true", help='print {"details"} as JSON')
    add_policy_arguments(parser)
    parser.set_defaults(func=_run_format)


def _run_format(args: argparse.Namespace) -> int:
    policy = policy_from_args(args)
    try:
        details = format_details(args.details, args.host, args.node_id, policy)
    except DiscoveryError as e:
        raise UsageError(str(e)) from e
    if args.json:
        print_json({"details": details})
    else:
        print(details)
    return 0


# One register function per action, in `--help` order.
ACTIONS: list[Callable[[Subparsers], None]] = [
    _register_parse,
    _register_format,
    register_publish,
]
