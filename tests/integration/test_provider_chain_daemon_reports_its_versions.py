"""The provider and consumer daemons from `make tools` report the ICS, SDK and CometBFT versions
pinned."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.procs import REPO, tool


def pinned(pattern: str, text: str) -> str:
    m = re.search(pattern, text, re.M)
    assert m, f"{pattern!r} not found"
    return m.group(1)


@pytest.mark.parametrize("name", ["interchain-security-pd", "interchain-security-cd"])
def test_daemon_reports_pinned_versions(name: str, tmp_path: Path) -> None:
    ics = pinned(r"^ICS_VERSION=(\S+)$", (REPO / "scripts" / "tools.sh").read_text())
    gomod = (REPO / "tools" / "ics" / "go.mod").read_text()
    sdk = pinned(r"^\s*github\.com/cosmos/cosmos-sdk (v\S+)", gomod)
    comet = pinned(r"^\s*github\.com/cometbft/cometbft (v\S+)", gomod)
    daemon = str(tool(name))
    # Any command writes a default config into its home: keep it out of $HOME.
    home = ["--home", str(tmp_path)]

    short = subprocess.run(
        [daemon, "version", *home], capture_output=True, text=True, check=True, timeout=30
    )
    assert (short.stdout + short.stderr).strip() == f"v{ics}"

    long = subprocess.run(
        [daemon, "version", "--long", *home], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert f"server_name: {name}\n" in long
    assert f"cosmos_sdk_version: {sdk}\n" in long
    # The ICS module is a dependency of the wrapper (pd) or, built from its own package
    # path, the binary's main module (cd): Go's build info names it either way.
    info = subprocess.run(
        ["go", "version", "-m", daemon], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert re.search(
        rf"^\s+(mod|dep)\s+github\.com/cosmos/interchain-security/v7\s+v{ics}\s", info, re.M
    ), info
    assert f"- github.com/cometbft/cometbft@{comet}\n" in long
    # The README states the same versions.
    readme = (REPO / "README.md").read_text()
    assert f"Interchain\nSecurity v{ics}" in readme or f"Interchain Security v{ics}" in readme
    assert sdk in readme
    assert comet in readme
