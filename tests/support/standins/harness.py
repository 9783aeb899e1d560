"""Runs `scripts/clusters/*.sh` against the stand-in docker, kind, kubectl and helm.

Each test bed is a folder with: a `bin/` that is the scripts' whole PATH (links
to the few system programs they use, plus the chosen stand-ins, so a host's
real docker or kubectl can never answer), the stand-ins' world and call log,
the scripts' state folder and a HOME. The Python parts stay real: the
`ics-discovery` CLI plans the MetalLB pools, `interchain-security-pd` builds
the genesis, and the real `helm` renders the charts the stand-in installs.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.procs import REPO, tool

STANDINS = Path(__file__).resolve().parent
SCRIPTS = REPO / "scripts" / "clusters"
NETWORKS = REPO / "tests" / "data" / "docker-network-inspect"
TOOLS = ("docker", "kind", "kubectl", "helm")
# What the scripts run besides the four tools (bash builtins aside).
SYSTEM = (
    "bash", "sh", "env", "dirname", "basename", "cat", "grep", "sort", "head", "mktemp",
    "rm", "rmdir", "mkdir", "chmod", "mv", "sleep", "sed", "tr", "cut", "id", "seq",
    "install", "readlink",
)  # fmt: skip
CLUSTERS = ("alice", "bob", "charlie")


@dataclass
class ScriptBed:
    root: Path
    last_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def standin_home(self) -> Path:
        return self.root / "standins"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def env(self) -> dict[str, str]:
        venv_bin = Path(sys.executable).parent
        return {
            "PATH": str(self.bin),
            "HOME": str(self.root / "home"),
            "LANG": "C.UTF-8",
            "STANDIN_HOME": str(self.standin_home),
            "STANDIN_PYTHON": sys.executable,
            "ICS_PYTHON": sys.executable,
            "ICS_DISCOVERY": str(venv_bin / "ics-discovery"),
            "ICS_PROVIDER_DAEMON": str(tool("interchain-security-pd")),
            "ICS_KIND_STATE": str(self.state),
            "ICS_KIND_RETRY_PAUSE": "0",
        }

    def run(
        self, script: str, *args: str, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """Run one script; returns it finished, whatever its exit status."""
        mark = len(self.calls())
        argv = [str(SCRIPTS / script), *args]
        proc = subprocess.Popen(
            argv,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the script and every stand-in it started
            out, err = proc.communicate()
            raise AssertionError(f"{script} did not finish in {timeout}s:\n{err[-3000:]}") from None
        self.last_calls = self.calls()[mark:]
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    # ---- the stand-ins' world ----------------------------------------------

    def world(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.standin_home / "world.json").read_text())
        return doc

    def update_world(self, **changes: Any) -> None:
        w = self.world()
        w.update(changes)
        (self.standin_home / "world.json").write_text(json.dumps(w, sort_keys=True))

    def calls(self) -> list[dict[str, Any]]:
        path = self.standin_home / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def objects(self, cluster: str, kind: str | None = None) -> list[dict[str, Any]]:
        objs = self.world()["clusters"][cluster]["objects"].values()
        return [o for o in objs if kind is None or o.get("kind") == kind]

    def seed(self, cluster: str, objects: Iterable[Mapping[str, Any]]) -> None:
        """Put objects into a cluster, as if they had been created there."""
        w = self.world()
        for obj in objects:
            meta = obj["metadata"]
            group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
            key = f"{group}/{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"
            w["clusters"][cluster]["objects"][key] = dict(obj)
        self.update_world(clusters=w["clusters"])


_GENESIS: list[Path] = []


def provider_genesis() -> Path:
    """A provider genesis (3 validators) built once per test session with the real daemon."""
    if not _GENESIS:
        root = Path(tempfile.mkdtemp(prefix="ics-kind-genesis-"))
        atexit.register(shutil.rmtree, root, True)
        subprocess.run(
            [
                sys.executable,
                str(SCRIPTS / "testnet.py"),
                "genesis",
                "--dir",
                str(root / "provider"),
                "--chain-id",
                "provider",
                "--validators",
                ",".join(CLUSTERS),
                "--daemon",
                str(tool("interchain-security-pd")),
            ],
            check=True,
            capture_output=True,
        )
        _GENESIS.append(root / "provider")
    return _GENESIS[0]


def make_testbed(
    root: Path,
    *,
    network: str = "ipv4-first-16.json",
    tools: Iterable[str] = TOOLS,
    versions: Mapping[str, str] | None = None,
    docker_daemon: bool = True,
    real_helm: bool = True,
    reuse_genesis: bool = False,
) -> ScriptBed:
    """A fresh test bed; `reuse_genesis` starts from the session's provider genesis
    (as a second `make kind-up` would), to spare the daemon's 2 s where genesis is not
    what the test is about."""
    bed = ScriptBed(root)
    bed.bin.mkdir(parents=True)
    (root / "home").mkdir()
    bed.standin_home.mkdir()
    for name in SYSTEM:
        found = shutil.which(name)
        if found:
            os.symlink(found, bed.bin / name)
    for name in tools:
        os.symlink(STANDINS / name, bed.bin / name)
    world = {
        "versions": dict(versions or {}),
        "docker_daemon": docker_daemon,
        "network_file": str(NETWORKS / network),
        "network_exists": False,
        "images": {},
        "clusters": {},
        "real_helm": str(tool("helm")) if real_helm else None,
        "kube_version": "1.33.13",
    }
    (bed.standin_home / "world.json").write_text(json.dumps(world, sort_keys=True))
    if reuse_genesis:
        bed.state.mkdir(mode=0o700)
        shutil.copytree(provider_genesis(), bed.state / "provider", symlinks=True)
    return bed


__all__ = ["CLUSTERS", "NETWORKS", "SCRIPTS", "ScriptBed", "make_testbed"]
