"""Two electors on a real Lease: one leads, the other takes over after expiry or at release."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from kubernetes import client

from lbmanager.kube import KubeRest
from lbmanager.leader import LeaderElector, LeaseConfig, LeaseError
from lbmanager.paths import lease_path
from tests.support.kube import ControlPlane
from tests.support.polling import eventually

pytestmark = pytest.mark.kube

LEASE_DURATION = 3.0
RENEW_DEADLINE = 2.0
RETRY_PERIOD = 0.5
# Slowest acquire retry: retry_period * (1 + jitter factor 1.2).
MAX_RETRY_WAIT = RETRY_PERIOD * 2.2


@dataclass
class Work:
    """The writing work of one replica: records when it ran."""

    name: str
    started: list[float] = field(default_factory=list)
    ended: list[float] = field(default_factory=list)

    async def __call__(self) -> None:
        self.started.append(time.monotonic())
        try:
            await asyncio.Event().wait()
        finally:
            self.ended.append(time.monotonic())


@dataclass
class Replica:
    elector: LeaderElector
    work: Work
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.elector.run(self.work))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def replicas(
    control_plane: ControlPlane, namespace: str
) -> AsyncIterator[Callable[..., Replica]]:
    made: list[Replica] = []

    def make(identity: str, *, release_on_exit: bool = True) -> Replica:
        rest = KubeRest(control_plane.admin_client(), timeout=2.0, attempts=2, retry_delay=0.1)
        config = LeaseConfig(
            namespace, "discovery-leader", identity, LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD
        )
        elector = LeaderElector(rest, config, release_on_exit=release_on_exit)
        replica = Replica(elector, Work(identity))
        made.append(replica)
        return replica

    yield make
    for r in made:
        if r.task is not None and not r.task.done():
            await r.stop()


async def until(what: str, check: Callable[[], bool], limit: float = 15.0) -> float:
    """When `check` (in-process state, polled on the loop) became true: `time.monotonic()`."""
    await eventually(what, check, timeout=limit, interval=0.02, in_thread=False)
    return time.monotonic()


def read_lease(control_plane: ControlPlane, namespace: str) -> dict[str, object]:
    rest = KubeRest(control_plane.admin_client())
    obj = rest.get(lease_path(namespace, "discovery-leader"))
    assert obj is not None
    spec: dict[str, object] = obj["spec"]
    return spec


async def test_one_leads_and_the_other_takes_over_after_the_lease_expires(
    replicas: Callable[..., Replica], control_plane: ControlPlane, namespace: str
) -> None:
    a = replicas("replica-a", release_on_exit=False)  # stops like a crash: no release
    b = replicas("replica-b")
    a.start()
    await until("a to lead", lambda: a.elector.is_leader)
    b.start()
    await until("b to see a's lease", lambda: b.elector.observed_holder == "replica-a")
    # Several renew periods pass: a keeps the lease, b never runs the writing work.
    await asyncio.sleep(RENEW_DEADLINE)
    assert a.elector.is_leader
    assert not b.elector.is_leader
    assert b.work.started == []
    assert len(a.work.started) == 1
    before = read_lease(control_plane, namespace)
    assert before["holderIdentity"] == "replica-a"

    await a.stop()
    crashed = time.monotonic()
    assert a.work.ended[-1] <= crashed  # a's work stopped with it
    took_over = await until("b to lead", lambda: b.elector.is_leader, limit=LEASE_DURATION * 3)
    waited = took_over - crashed
    # b times the lease on its own clock, from when *it* first saw a's last renewal:
    # a renewed at most one retry period before it stopped, and b saw that renewal
    # at its next poll, up to one slowest acquire retry later. The lease then runs
    # its full duration, and b takes it at its next poll, up to one more retry.
    # So: earliest LEASE_DURATION - RETRY_PERIOD (never before a's lease expired),
    # latest LEASE_DURATION - RETRY_PERIOD + 2 * MAX_RETRY_WAIT, plus the API
    # round trips of the polls (slack for a loaded machine).
    earliest = LEASE_DURATION - RETRY_PERIOD - 0.3
    latest = LEASE_DURATION - RETRY_PERIOD + 2 * MAX_RETRY_WAIT + 1.0
    assert earliest <= waited <= latest
    await until("b's work to start", lambda: len(b.work.started) == 1)
    after = read_lease(control_plane, namespace)
    assert after["holderIdentity"] == "replica-b"
    assert after["leaseTransitions"] == int(str(before["leaseTransitions"])) + 1
    print(f"takeover after crash: {waited:.2f} s (lease duration {LEASE_DURATION:g} s)")


async def test_release_on_graceful_shutdown_hands_over_at_once(
    replicas: Callable[..., Replica], control_plane: ControlPlane, namespace: str
) -> None:
    a = replicas("replica-a")
    b = replicas("replica-b")
    a.start()
    await until("a to lead", lambda: a.elector.is_leader)
    b.start()
    await until("b to see a's lease", lambda: b.elector.observed_holder == "replica-a")
    await a.stop()
    stopped = time.monotonic()
    assert read_lease(control_plane, namespace)["holderIdentity"] == ""
    took_over = await until("b to lead", lambda: b.elector.is_leader)
    waited = took_over - stopped
    # b takes the released lease at its next poll, long before the lease would expire.
    assert waited <= MAX_RETRY_WAIT + 1.0 < LEASE_DURATION
    # The work is a task started on becoming leader: it runs on a later loop turn.
    await until("b's work to start", lambda: len(b.work.started) == 1)
    assert not a.elector.is_leader
    print(f"takeover after release: {waited:.2f} s")


async def test_a_replica_without_lease_permissions_fails_loudly(
    control_plane: ControlPlane, namespace: str
) -> None:
    core = client.CoreV1Api(control_plane.admin_client())
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="no-rbac"))
    )
    rest = KubeRest(control_plane.service_account_client(namespace, "no-rbac"), timeout=2.0)
    config = LeaseConfig(
        namespace, "discovery-leader", "x", LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD
    )
    work = Work("x")
    with pytest.raises(LeaseError) as exc:
        await asyncio.wait_for(LeaderElector(rest, config).run(work), 10)
    assert not exc.value.transient
    assert "forbidden" in str(exc.value)
    assert work.started == []
