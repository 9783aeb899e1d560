"""requirements.lock pins, with hashes, every dependency pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$", line)
        if match:
            assert "--hash=sha256:" in lines[i + 1], f"{match.group(1)} is pinned without a hash"
            pins[_name(match.group(1))] = match.group(2)
    return pins


def test_every_declared_dependency_is_pinned_with_a_hash() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    locked = _locked()
    missing = sorted({_name(r) for r in declared} - set(locked))
    assert not missing, f"run `make lock`: not in requirements.lock: {missing}"


def test_the_lock_file_names_no_machine_specific_source() -> None:
    text = (ROOT / "requirements.lock").read_text()
    for option in ("--find-links", "--index-url", "--extra-index-url", "file://"):
        assert option not in text
