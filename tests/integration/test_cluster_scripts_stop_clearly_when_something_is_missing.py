"""The cluster scripts stop at once, with a message that says what to do, before changing anything.

Missing programs, programs too old (their recorded version outputs), a Docker
daemon that does not answer, and kind networks with no room for MetalLB pools
(no IPv4 subnet; a /28 too small for three pools of ten).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.standins.harness import CLUSTERS, TOOLS, make_testbed

pytestmark = pytest.mark.helm


def _changed_nothing(calls: list[dict[str, Any]]) -> bool:
    changing = {("kind", "create"), ("kind", "delete"), ("kind", "load"), ("docker", "build")}
    return not [
        c
        for c in calls
        if (c["tool"], c["argv"][0]) in changing
        or (c["tool"] in ("kubectl", "helm") and "version" not in c["argv"])
    ]


@pytest.mark.parametrize("missing", TOOLS)
def test_a_missing_tool_is_named(tmp_path: Path, missing: str) -> None:
    bed = make_testbed(tmp_path, tools=[t for t in TOOLS if t != missing])
    done = bed.run("kind-up.sh")
    assert done.returncode == 1
    assert f"{missing} is not installed or not on PATH" in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "error:" in x]
    assert f"{missing} is not installed or not on PATH: install" in line
    assert _changed_nothing(bed.last_calls)
    assert not bed.state.exists()


@pytest.mark.parametrize(
    ("tool", "recorded", "message"),
    [
        (
            "docker",
            "docker-server-version-old.txt",
            "docker (server) 19.03.15 is too old: need >= 20.10.0",
        ),
        ("kind", "kind-version-old.txt", "kind 0.11.1 is too old: need >= 0.20.0"),
        (
            "kubectl",
            "kubectl-version-client-old.json",
            "kubectl 1.20.15 is too old: need >= 1.27.0",
        ),
        ("helm", "helm-version-old.txt", "helm 3.8.0 is too old: need >= 3.12.0"),
    ],
)
def test_a_tool_too_old_is_named_with_both_versions(
    tmp_path: Path, tool: str, recorded: str, message: str
) -> None:
    bed = make_testbed(tmp_path, versions={tool: recorded})
    done = bed.run("kind-up.sh")
    assert done.returncode == 1
    assert message in done.stderr
    assert _changed_nothing(bed.last_calls)


def test_recorded_current_versions_pass(tmp_path: Path) -> None:
    """The real outputs of docker 28, kind 0.31, kubectl 1.32 and helm 3.17 are accepted."""
    bed = make_testbed(tmp_path)
    done = bed.run("status.sh")
    assert done.returncode == 0, done.stderr
    assert [c["argv"][:2] for c in bed.last_calls if c["tool"] in ("kind", "kubectl")] == [
        ["version"],
        ["version", "--client"],
        ["get", "clusters"],
    ]


@pytest.mark.parametrize("script", ["kind-up.sh", "kind-down.sh", "image.sh"])
def test_a_silent_docker_daemon_is_reported(tmp_path: Path, script: str) -> None:
    bed = make_testbed(tmp_path, docker_daemon=False)
    done = bed.run(script)
    assert done.returncode == 1
    assert "docker is installed but its daemon is not reachable" in done.stderr
    assert "Cannot connect to the Docker daemon" in done.stderr
    assert _changed_nothing(bed.last_calls)


def test_make_image_without_docker_says_docker_is_needed(tmp_path: Path) -> None:
    bed = make_testbed(tmp_path, tools=["kind", "kubectl", "helm"])
    done = bed.run("image.sh", "ics-discovery:test")
    assert done.returncode == 1
    assert "docker is not installed or not on PATH" in done.stderr
    assert "Docker Engine" in done.stderr


def test_image_builds_the_requested_target_and_tag(tmp_path: Path) -> None:
    bed = make_testbed(tmp_path)
    assert bed.run("image.sh", "ics-discovery:test").returncode == 0
    assert bed.run("image.sh", "--provider").returncode == 0
    builds = [c["argv"] for c in bed.calls() if c["tool"] == "docker" and c["argv"][0] == "build"]
    repo = str(Path(__file__).resolve().parents[2])
    assert builds == [
        ["build", "--target", "service", "--tag", "ics-discovery:test", repo],
        ["build", "--target", "provider", "--tag", "ics-provider:kind", repo],
    ]


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("ipv6-only.json", "has no IPv4 subnet"),
        ("ipv4-only-28.json", "172.30.9.0/28"),
    ],
)
def test_a_network_without_room_for_pools_stops_before_metallb(
    tmp_path: Path, shape: str, message: str
) -> None:
    bed = make_testbed(tmp_path, network=shape, reuse_genesis=True)
    done = bed.run("kind-up.sh")
    assert done.returncode == 1
    assert message in done.stderr
    assert "no MetalLB pools for alice,bob,charlie" in done.stderr
    assert not (bed.state / "metallb-pools.json").exists()
    for cluster in CLUSTERS:
        assert not bed.objects(cluster, "IPAddressPool")
    assert not [c for c in bed.calls() if c["tool"] in ("kubectl", "helm") and "apply" in c["argv"]]
