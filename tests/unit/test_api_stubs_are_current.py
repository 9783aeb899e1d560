"""The committed API modules under discovery/_proto are what `make proto` generates now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARGS = [
    "--out",
    "discovery/_proto",
    "--package",
    "discovery._proto",
    "--pool",
    "discovery._proto._pool:POOL",
    "proto/ics",
]


def test_generated_api_modules_match_the_proto() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--check", *ARGS],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_makefile_generates_them_with_the_same_arguments() -> None:
    makefile = (REPO / "Makefile").read_text().replace("\\\n\t", "")
    assert " ".join(ARGS) in makefile


def test_the_streaming_method_is_typed_as_a_stream() -> None:
    stub = (REPO / "discovery/_proto/ics/discovery/v1/discovery_pb2_grpc.pyi").read_text()
    assert "WatchPeers: UnaryStream[" in stub
    assert "GetPeers: UnaryUnary[" in stub
