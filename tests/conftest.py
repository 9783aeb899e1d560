"""Shared pytest fixtures: real components on 127.0.0.1.

Kubernetes (see `tests/README.md`):
- `control_plane` (session): etcd + kube-apiserver (RBAC) + kube-controller-manager.
- `control_planes` (session): factory `control_planes("alice")` for independent
  clusters, started on first use and shared by the session.
- `namespace` (function): a fresh namespace in `control_plane`, deleted after.
- `kube` (function): an admin `kubernetes.client.ApiClient` for `control_plane`.

When a test that used any of these fails, the tail of every component's log is
attached to the failure report. Every process is stopped at session end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube import ControlPlane, start_control_plane
from tests.support.polling import any_error, wait_until

# Fixture modules of other components (provider chain, ...) register here.
pytest_plugins: list[str] = [
    "tests.support.chain_fixtures",
    "tests.support.helm_fixtures",
    "tests.support.service_fixtures",
]


class HasLogs(Protocol):
    def log_tails(self, lines: int = 40) -> dict[str, str]: ...


@pytest.fixture(scope="session")
def testbed_dir() -> Iterator[Path]:
    """Short-pathed working folder for component data and logs (kept on failure)."""
    base = Path(tempfile.mkdtemp(prefix="ics-testbed-"))
    yield base
    if os.environ.get("ICS_KEEP_TESTBED") != "1":
        shutil.rmtree(base, ignore_errors=True)


class ControlPlaneFactory:
    """Starts named control planes on demand; `stop_all` at session end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.planes: dict[str, ControlPlane] = {}

    def __call__(self, name: str) -> ControlPlane:
        if name not in self.planes:
            self.planes[name] = start_control_plane(name, self.root / name)
        return self.planes[name]

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, plane in self.planes.items():
            for comp, tail in plane.log_tails(lines).items():
                out[f"{name}/{comp}"] = tail
        return out

    def stop_all(self) -> None:
        for plane in self.planes.values():
            plane.stop()


@pytest.fixture(scope="session")
def control_planes(testbed_dir: Path) -> Iterator[ControlPlaneFactory]:
    factory = ControlPlaneFactory(testbed_dir / "clusters")
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def control_plane(control_planes: ControlPlaneFactory) -> ControlPlane:
    return control_planes("default")


@pytest.fixture
def kube(control_plane: ControlPlane) -> client.ApiClient:
    return control_plane.admin_client()


def namespace_name(nodeid: str) -> str:
    """A valid, unique-enough namespace name for one test."""
    base = re.sub(r"[^a-z0-9-]+", "-", nodeid.split("::")[-1].lower()).strip("-")[:40]
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
    return f"t-{base}-{digest}".replace("--", "-")


def create_namespace(api: client.ApiClient, name: str, wait_default_sa: bool = True) -> str:
    core = client.CoreV1Api(api)
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)
    wait_until(
        f"namespace {name} to be gone",
        lambda: _absent(lambda: core.read_namespace(name)),
        timeout=60,
        not_yet=any_error,
    )
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    if wait_default_sa:
        # The ServiceAccount admission plugin refuses pods until the controller
        # manager has created `default` in the namespace.
        wait_until(
            f"default ServiceAccount in {name}",
            lambda: core.read_namespaced_service_account("default", name) is not None,
            timeout=30,
            not_yet=any_error,
        )
    return name


def _absent(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


@pytest.fixture
def namespace(request: pytest.FixtureRequest, control_plane: ControlPlane) -> Iterator[str]:
    api = control_plane.admin_client()
    name = create_namespace(api, namespace_name(request.node.nodeid))
    yield name
    with contextlib.suppress(ApiException):
        client.CoreV1Api(api).delete_namespace(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.passed or report.skipped:
        return report
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    seen: set[int] = set()
    for value in funcargs.values():
        if id(value) in seen or not callable(getattr(value, "log_tails", None)):
            continue
        seen.add(id(value))
        for name, tail in value.log_tails(40).items():
            report.sections.append((f"component log: {name}", tail))
    return report
