"""Running `make kind-up` again changes nothing; a changed kind network stops it with a reason.

The second run finds the clusters, reuses the pool plan and the genesis (same
keys, same files), and every `kubectl apply` reports `unchanged`; the
stand-ins' world (clusters, applied objects, loaded images, Helm release
values and rendered objects) is identical afterwards. If the `kind` network
was recreated with another subnet, addresses already published on chain would
be wrong: the script refuses and names what to do, touching nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.support.standins.harness import ScriptBed, make_testbed

pytestmark = pytest.mark.helm


def _snapshot(bed: ScriptBed) -> dict[str, Any]:
    world = bed.world()
    for cluster in world["clusters"].values():
        for release in cluster["releases"].values():
            release.pop("revision")  # Helm counts upgrades even when nothing changes
    files = {
        str(p.relative_to(bed.state)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(bed.state.rglob("*"))
        if p.is_file()
    }
    return {"world": world, "files": files}


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    bed = make_testbed(tmp_path)
    first = bed.run("kind-up.sh")
    assert first.returncode == 0, first.stderr
    before = _snapshot(bed)
    assert before["files"]["provider/genesis.json"]

    second = bed.run("kind-up.sh")
    assert second.returncode == 0, second.stderr
    assert _snapshot(bed) == before

    calls = bed.last_calls
    commands = [(c["tool"], *c["argv"][:2]) for c in calls]
    assert ("kind", "create", "cluster") not in commands
    assert ("kind", "delete", "cluster") not in commands
    assert ("docker", "network", "rm") not in commands
    assert not [c for c in calls if c["tool"] == "kubectl" and "delete" in c["argv"]]
    applied = [line for line in second.stdout.splitlines() if line.strip()]
    assert applied, "the second run applies again (and must find everything unchanged)"
    assert [line for line in applied if not line.endswith(" unchanged")] == [
        line for line in applied if line.startswith("(applied https://")
    ]
    assert "cluster alice exists" in second.stderr
    assert "reusing the MetalLB pools planned before" in second.stderr


def test_a_recreated_kind_network_with_another_subnet_stops_the_run(tmp_path: Path) -> None:
    bed = make_testbed(tmp_path, reuse_genesis=True)
    assert bed.run("kind-up.sh").returncode == 0
    before = _snapshot(bed)
    # Someone ran `docker network rm kind`; docker chose another subnet for the new one.
    bed.update_world(
        network_file=bed.world()["network_file"].replace(
            "ipv4-first-16.json", "ipv6-first-24-no-gateway.json"
        )
    )
    done = bed.run("kind-up.sh")
    assert done.returncode == 1
    assert "subnet changed from 172.18.0.0/16 to 10.89.3.0/24" in done.stderr
    assert "make kind-down" in done.stderr
    after = _snapshot(bed)
    assert after["world"]["clusters"] == before["world"]["clusters"]
    assert after["files"] == before["files"]
