"""`ics-discovery run`: start the discovery service with validated settings.

The settings reference in `--help` is rendered from the settings model, so it
lists exactly what the service accepts. Settings are checked before anything
starts (`--check-config` stops there and prints them), so a bad setting fails
at once with its name instead of later, far from the cause.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from discovery.cli import UsageError
from discovery.commands import print_json
from discovery.settings import (
    CONFIG_FILE_ENV,
    Settings,
    SettingsInvalid,
    check_files,
    load_settings,
    settings_help,
    unknown_environment,
)

# The composition root that runs the service loop (chain, Kubernetes, API, metrics).
SERVICE_MODULE = "discovery.service"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the discovery service",
        description="Run the discovery service for this validator's cluster.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"settings file (.yaml, .yml, .toml or .json); default ${CONFIG_FILE_ENV}",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the settings, print them as JSON and exit",
    )
    parser.set_defaults(func=handle)


def settings_from(args: argparse.Namespace) -> Settings:
    """The checked settings, or a `UsageError` naming every bad setting."""
    try:
        settings = load_settings(args.config)
        check_files(settings)
    except SettingsInvalid as e:
        raise UsageError(str(e)) from e
    for name in unknown_environment():
        print(f"ics-discovery run: warning: {name} is not a setting (ignored)", file=sys.stderr)
    return settings


def handle(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.check_config:
        print_json(settings.public_view())
        return 0
    try:
        service = importlib.import_module(SERVICE_MODULE)
    except ModuleNotFoundError as e:
        if e.name != SERVICE_MODULE:
            raise
        print(
            "ics-discovery run: the service loop is not part of this build yet; "
            "settings are valid (see --check-config)",
            file=sys.stderr,
        )
        return 1
    return int(service.main(settings))
