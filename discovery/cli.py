"""The `ics-discovery` command line: one subcommand per module in COMMANDS.

Each command module exposes `register(subparsers)`, adding its parser with a
`func(args) -> int` default. Errors a user can fix print one line on stderr and
exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Command modules, in the order `--help` lists them.
COMMANDS: tuple[str, ...] = (
    "discovery.commands.ports",
    "discovery.commands.endpoint",
    "discovery.commands.nodekey",
    "discovery.commands.metallb",
    "discovery.commands.run",
    "discovery.commands.status",
    "discovery.commands.plan",
)


class UsageError(Exception):
    """Bad input from the user: reported on one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ics-discovery",
        description="Multi-cluster peer discovery for Interchain Security validators.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as e:
        print(f"ics-discovery {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Command modules raise discovery.cli.UsageError; run through that module, not
    # this `__main__` copy of it, so the except clause catches the same class.
    from discovery.cli import main as _main

    sys.exit(_main())
