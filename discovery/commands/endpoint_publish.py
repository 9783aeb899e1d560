"""`ics-discovery endpoint publish`: put our endpoint into our validator's description on chain.

The domain decisions stay here in `discovery` (is the host acceptable, does the
chain already show this endpoint, what the new details are, via
`discovery.endpoints`); `chainmonitor.publish` only reads the description,
signs and broadcasts. The signing key comes from a file (mode 0600) or an
environment variable, never from an argument, and is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from chainmonitor.errors import ChainMonitorError
from chainmonitor.types import Description
from discovery.cli import UsageError
from discovery.commands import Subparsers, add_policy_arguments, policy_from_args, print_json
from discovery.endpoints import (
    PublishedEndpoint,
    format_details,
    go_extract_p2p_endpoint,
    go_reads,
    parse_host,
    read_details,
)
from discovery.errors import DiscoveryError
from discovery.types import parse_node_id

if TYPE_CHECKING:
    from chainmonitor.publish import PublishOutcome

# Read when neither --key-file nor --key-env is given.
DEFAULT_KEY_ENV: Final = "ICS_DISCOVERY_SIGNING_KEY"


def register_publish(actions: Subparsers) -> None:
    parser = actions.add_parser(
        "publish",
        help="sign and broadcast MsgEditValidator carrying HOST in our validator's details",
        description=(
            "Rewrite our validator's description.details to carry HOST (and --node-id), keeping "
            "the operator's own text; every other description field is left as it is. Nothing "
            "is sent when the chain already shows this endpoint. Signs with the operator key, "
            "or with an authz grantee key inside MsgExec. The key is read from --key-file "
            f"(mode 0600), --key-env, or ${DEFAULT_KEY_ENV}; never from the command line."
        ),
    )
    parser.add_argument("--host", required=True, metavar="HOST", help="IPv4, IPv6 or DNS name")
    parser.add_argument("--node-id", metavar="ID", help="40 hexadecimal digits")
    parser.add_argument(
        "--validator",
        metavar="OPERATOR",
        help="operator address (cosmosvaloper1...); default: the key's own (operator key)",
    )
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--key-file", type=Path, metavar="PATH", help="hex key or mnemonic, 0600")
    keys.add_argument("--key-env", metavar="VAR", help="environment variable holding the key")
    parser.add_argument(
        "--grpc",
        required=True,
        metavar="URL",
        help="provider node gRPC address (host:port, grpc://, grpcs://)",
    )
    parser.add_argument("--chain-id", help="provider chain ID (default: asked from the node)")
    parser.add_argument("--fee-denom", default="stake", help="fee denomination (default stake)")
    parser.add_argument("--gas-price", type=float, default=0.0, help="fee per gas unit (default 0)")
    parser.add_argument(
        "--gas-adjustment", type=float, default=1.5, help="gas limit = simulated x this"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the block (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_policy_arguments(parser)
    parser.set_defaults(func=run_publish)


def run_publish(args: argparse.Namespace) -> int:
    # cosmpy takes a third of a second to import: only this action pays for it.
    from chainmonitor.keys import load_signing_key, operator_of
    from chainmonitor.publish import ChainConnection, EndpointPublisher

    policy = policy_from_args(args)
    try:
        desired_host = parse_host(args.host, policy)
        desired_node = parse_node_id(args.node_id) if args.node_id is not None else None
    except DiscoveryError as e:
        raise UsageError(str(e)) from e
    if args.gas_price < 0 or args.gas_adjustment <= 0 or args.timeout <= 0:
        raise UsageError("--gas-price must be >= 0, --gas-adjustment and --timeout > 0")

    key_env = args.key_env
    if args.key_file is None and key_env is None:
        if not os.environ.get(DEFAULT_KEY_ENV):
            raise UsageError(
                f"no signing key: give --key-file, --key-env or set ${DEFAULT_KEY_ENV}"
            )
        key_env = DEFAULT_KEY_ENV
    try:
        key = load_signing_key(file=args.key_file, env=key_env)
    except ChainMonitorError as e:
        raise UsageError(str(e)) from e

    operator = args.validator or operator_of(key)

    def decide(current: Description) -> str | None:
        existing = read_details(current.details, policy)
        if (
            isinstance(existing, PublishedEndpoint)
            and existing.host == desired_host
            and existing.node_id == desired_node
            # Old-order details (`p2p=HOST node=ID`) are rewritten so Go reads the host.
            and go_extract_p2p_endpoint(current.details) == go_reads(desired_host)
        ):
            return None
        details = format_details(current.details, desired_host, desired_node, policy)
        return None if details == current.details else details

    publisher = EndpointPublisher(
        ChainConnection(
            grpc_url=args.grpc,
            chain_id=args.chain_id,
            fee_denom=args.fee_denom,
            gas_price=args.gas_price,
            gas_adjustment=args.gas_adjustment,
            commit_timeout=args.timeout,
        ),
        key,
    )
    try:
        outcome = publisher.publish_details(operator, decide)
    except DiscoveryError as e:  # format_details: the result would not fit, ...
        raise UsageError(str(e)) from e
    except ChainMonitorError as e:
        kind = "temporary" if e.transient else "error"
        print(f"ics-discovery endpoint publish: {kind}: {e}", file=sys.stderr)
        return 1
    _report(outcome, args.json)
    return 0


def _report(outcome: PublishOutcome, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "sent": outcome.sent,
                "operator": outcome.operator,
                "signer": outcome.signer,
                "mode": outcome.mode,
                "details": outcome.details,
                "tx_hash": outcome.tx_hash or None,
                "height": outcome.height or None,
            }
        )
    elif outcome.sent:
        print(
            f"published: tx {outcome.tx_hash} at height {outcome.height} "
            f"({outcome.mode} key {outcome.signer})"
        )
    else:
        print(f"unchanged: {outcome.operator} already shows this endpoint; nothing sent")
