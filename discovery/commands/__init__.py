"""Subcommands of `ics-discovery`, one module each, plus the JSON output they share."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TypeAlias

from discovery.cli import UsageError
from discovery.endpoints import EndpointPolicy, EndpointProfile
from discovery.errors import DiscoveryError
from discovery.interop import Compat
from discovery.ports import PortScheme

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def json_text(document: Any) -> str:
    """Stable bytes for machine output: sorted keys, ASCII only, two-space indent, newline."""
    return json.dumps(document, sort_keys=True, ensure_ascii=True, indent=2) + "\n"


def print_json(document: Any) -> None:
    """Write `json_text(document)` to standard output."""
    sys.stdout.write(json_text(document))


def add_scheme_options(parser: argparse.ArgumentParser) -> None:
    """`--scheme` and `--compat`, read back by `scheme_and_compat`."""
    parser.add_argument(
        "--scheme",
        choices=[s.value for s in PortScheme],
        default=None,
        help="port scheme (default: document; ics-operator with --compat ics-operator)",
    )
    parser.add_argument(
        "--compat",
        choices=[c.value for c in Compat],
        default=Compat.NONE.value,
        help=(
            "ics-operator: as in a network that also runs the Go implementation (its port "
            "scheme; chains Go refuses get no ports; see docs/interop.md)"
        ),
    )


def scheme_and_compat(args: argparse.Namespace) -> tuple[PortScheme, Compat]:
    """The port scheme and compatibility mode the options name (compat implies its scheme)."""
    compat = Compat(args.compat)
    if compat is Compat.ICS_OPERATOR:
        if args.scheme not in (None, PortScheme.ICS_OPERATOR.value):
            raise UsageError("--compat ics-operator needs --scheme ics-operator")
        return PortScheme.ICS_OPERATOR, compat
    return PortScheme(args.scheme or PortScheme.DOCUMENT.value), compat


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that build an `EndpointPolicy` (see `policy_from_args`)."""
    parser.add_argument(
        "--endpoint-profile",
        choices=[p.value for p in EndpointProfile],
        default=EndpointProfile.MAINNET.value,
        help="mainnet: public unicast addresses only, no DNS names; testnet: private "
        "ranges and DNS names too (default: %(default)s)",
    )
    parser.add_argument(
        "--deny",
        metavar="CIDR",
        action="append",
        default=[],
        help="reject addresses in this network (repeatable)",
    )
    parser.add_argument(
        "--allow",
        metavar="CIDR",
        action="append",
        default=[],
        help="accept only addresses in these networks (repeatable)",
    )
    parser.add_argument(
        "--no-dns-names",
        action="store_true",
        help="reject DNS names (CIDR lists cannot judge them), whatever the profile",
    )
    parser.add_argument(
        "--deny-name-suffix",
        metavar="SUFFIX",
        action="append",
        default=[],
        help="reject DNS names under this suffix, in addition to 'local' (repeatable)",
    )


def policy_from_args(args: argparse.Namespace) -> EndpointPolicy:
    """The policy the `add_policy_arguments` options describe."""
    try:
        return EndpointPolicy.for_profile(
            args.endpoint_profile,
            deny=args.deny,
            allow=args.allow,
            allow_dns_names=False if args.no_dns_names else None,
            deny_name_suffixes=["local", *args.deny_name_suffix],
        )
    except DiscoveryError as e:
        raise UsageError(str(e)) from e
