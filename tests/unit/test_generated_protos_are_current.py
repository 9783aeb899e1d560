"""The committed protobuf modules under chainmonitor/_proto are what `make proto` generates now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_modules_match_the_proto_files() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "gen_protos.py"),
            "--check",
            "--out",
            str(REPO / "chainmonitor" / "_proto"),
            "--package",
            "chainmonitor._proto",
            "--pool",
            "chainmonitor._proto._pool:POOL",
            str(REPO / "proto" / "cosmos"),
            str(REPO / "proto" / "interchain_security"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_makefile_target_uses_the_same_arguments() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "--package chainmonitor._proto" in makefile
    assert "--pool chainmonitor._proto._pool:POOL proto/cosmos proto/interchain_security" in (
        makefile.replace("\\\n\t", "")
    )
