"""`ics-discovery --help` lists every registered subcommand."""

from __future__ import annotations

import subprocess
import sys

from discovery.cli import COMMANDS, build_parser


def test_every_registered_command_appears_in_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set(getattr(sub, "choices", {}) or {})
    assert len(names) >= len(COMMANDS) > 0
    out = subprocess.run(
        [sys.executable, "-m", "discovery.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in names:
        assert name in out


def test_unknown_subcommand_exits_with_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "discovery.cli", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
