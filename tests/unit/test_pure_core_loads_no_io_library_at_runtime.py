"""Importing the pure core, in a fresh interpreter, loads no I/O library.

import-linter (`make lint`) checks the import graph of the modules listed in
pyproject's "pure core" contract; it does not run package `__init__` files,
which Python runs for every submodule import. This runs the imports for real,
with the same module lists, so an `__init__` that pulls in the Kubernetes
client (as `lbmanager/__init__` once did) fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _pure_contract() -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c["name"] == "the pure core imports no I/O library"]
    return dict(contract)


def _loaded_after_import(modules: list[str]) -> set[str]:
    probe = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


def _forbidden_loaded(loaded: set[str], forbidden: list[str]) -> list[str]:
    return sorted(m for m in loaded if m.split(".")[0] in forbidden)


def test_the_core_modules_load_no_forbidden_package() -> None:
    contract = _pure_contract()
    loaded = _loaded_after_import(list(contract["source_modules"]))
    assert _forbidden_loaded(loaded, list(contract["forbidden_modules"])) == []
    assert "lbmanager.kube" not in loaded
    assert "discovery.settings" not in loaded


def test_the_probe_sees_an_io_library_when_one_is_loaded() -> None:
    contract = _pure_contract()
    loaded = _loaded_after_import(["discovery.settings", "lbmanager.kube"])
    found = {m.split(".")[0] for m in _forbidden_loaded(loaded, contract["forbidden_modules"])}
    assert {"pydantic", "kubernetes"} <= found
