"""Every Kubernetes write is refused unless the Lease is surely ours, by its own expiry.

The fence is checked just before each write request, in the thread that makes
it, against our monotonic time of the last successful renewal: a write after
the renew deadline or the lease's expiry is refused even if the campaign loop
has not noticed the loss yet. Leadership changes clear every per-leader memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client

from chainmonitor.addresses import bech32_encode
from discovery.apply.dials import live_dial_memory
from discovery.apply.effects import Wake
from discovery.service import DiscoveryService
from discovery.settings import load_settings
from lbmanager import DesiredState
from lbmanager.consumer_pods import PodInfo
from lbmanager.kube import KubeRest
from lbmanager.leader import LeaderElector, LeaseConfig, NotLeader, lease_problem

CONFIG = LeaseConfig("ns", "lease", "me", lease_duration=15, renew_deadline=10, retry_period=2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(clock: Clock) -> LeaderElector:
    rest = KubeRest(client.ApiClient(client.Configuration(host="http://127.0.0.1:9")))
    return LeaderElector(rest, CONFIG, clock=clock)


def lead(e: LeaderElector, clock: Clock) -> None:
    """As after a successful renewal that started now."""
    e._last_renew = clock.now
    e._set_leading(True)


@given(
    st.booleans(),
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.floats(min_value=0.1, max_value=30, allow_nan=False),
    st.floats(min_value=0.1, max_value=30, allow_nan=False),
)
def test_lease_problem_allows_writes_only_before_deadline_and_expiry(
    leading: bool, elapsed: float, deadline: float, lease: float
) -> None:
    now = 500.0 + elapsed
    problem = lease_problem(
        leading=leading,
        now=now,
        last_renew=500.0,
        renew_deadline=deadline,
        lease_seconds=lease,
    )
    allowed = leading and now < 500.0 + lease and now - 500.0 < deadline
    assert (problem is None) == allowed


def test_fence_refuses_once_the_renew_deadline_passes_without_the_loop_noticing() -> None:
    clock = Clock()
    e = elector(clock)
    with pytest.raises(NotLeader, match="not holding it"):
        e.fence("PUT /x")
    lead(e, clock)
    e.fence("PUT /x")  # fresh renewal: allowed
    clock.now += 9.9
    e.fence("PUT /x")
    clock.now += 0.1  # renew deadline reached; `_set_leading(False)` has not run
    with pytest.raises(NotLeader, match="renew deadline") as info:
        e.fence("PUT /x")
    assert info.value.transient
    clock.now += 5.0  # and now past the lease's own expiry
    with pytest.raises(NotLeader, match="expired"):
        e.fence("PUT /x")


def test_the_lease_duration_written_bounds_the_fence_when_shorter() -> None:
    clock = Clock()
    e = elector(clock)
    lead(e, clock)
    from lbmanager.leader import LeaseRecord

    e._observed = LeaseRecord("me", 5, "t0", "t1", 0)
    clock.now += 5.0
    with pytest.raises(NotLeader, match="expired"):
        e.fence("DELETE /y")


def test_kube_rest_asks_the_guard_before_every_write_and_never_before_a_read() -> None:
    rest = KubeRest(
        client.ApiClient(client.Configuration(host="http://127.0.0.1:9")),
        attempts=1,
    )
    asked: list[str] = []

    def guard(op: str) -> None:
        asked.append(op)
        raise NotLeader("ns/lease", op, "test")

    rest.write_guard = guard
    for write in (
        lambda: rest.create("/api/v1/namespaces/a/configmaps", {}),
        lambda: rest.replace("/api/v1/namespaces/a/configmaps/b", {}),
        lambda: rest.merge_patch("/api/v1/namespaces/a/configmaps/b", {}),
        lambda: rest.delete("/api/v1/namespaces/a/configmaps/b"),
    ):
        with pytest.raises(NotLeader):
            write()
    assert [op.split()[0] for op in asked] == ["POST", "PUT", "PATCH", "DELETE"]
    assert rest.writes == 0  # nothing left the process


OPERATOR = bech32_encode("cosmosvaloper", bytes(range(1, 21)))


def service(clock: Clock) -> DiscoveryService:
    settings = load_settings(
        None,
        provider_rpc_urls=["http://127.0.0.1:9"],
        provider_grpc_urls=["127.0.0.1:9"],
        operator_address=OPERATOR,
        grpc_listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",
        lease_duration=15.0,
        renew_deadline=10.0,
        retry_period=2.0,
    )
    api = client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))
    return DiscoveryService(settings, api_client=api, identity="me", clock=clock)


def test_the_service_fences_its_writes_and_forgets_everything_on_leadership_change() -> None:
    clock = Clock()
    svc = service(clock)
    assert svc.elector is not None
    svc.elector.clock = clock
    with pytest.raises(NotLeader):
        svc.rest.write_guard("PUT /x")  # type: ignore[misc]
    with pytest.raises(NotLeader):
        svc.lb.reconciler.rest.write_guard("PUT /x")  # type: ignore[misc]
    svc._leading = True
    lead(svc.elector, clock)
    svc._fence("PUT /x")
    clock.now += 10.0
    with pytest.raises(NotLeader):
        svc._fence("PUT /x")

    async def fill_and_forget() -> None:
        svc._applied_lb = DesiredState(chains=())
        svc._lb_outcomes = {"c": None}
        svc.configmaps.applied[("ns", "cm")] = object()  # type: ignore[assignment]
        svc.configmaps.problems = {"c": "x"}
        svc.dials.dialed = {"uid": "h"}
        svc.operators.written = {"c": "h"}
        svc.operators.problems = {"c": "x"}
        svc.operators.nodes = {"c": ("r", True)}
        svc.endpoint.retry_at = 1e9
        await svc.restarts.keys.apply("c", "ns", "h", configmap_written=False, now=0)
        svc.restarts._wake_at(clock.now + 60)
        wake = svc.restarts.hold_down_wake
        assert wake is not None
        svc.endpoint.refusal_wake = svc.effects.wake_later(60, Wake.PUBLISH)
        refusal_wake = svc.endpoint.refusal_wake
        never = asyncio.get_running_loop().create_future()

        async def in_flight() -> bool:
            await never
            return True

        svc._round = asyncio.create_task(in_flight())
        await asyncio.sleep(0)
        svc._round_leading = False  # a follower's round goes on (it writes nothing)
        svc._forget_leader_work()
        assert not svc._round.done()
        svc._round_leading = True
        svc._forget_leader_work()
        with pytest.raises(asyncio.CancelledError):
            await svc._round
        memories: dict[str, Any] = {
            "lb": svc._applied_lb,
            "outcomes": svc._lb_outcomes,
            "configmaps": svc.configmaps.applied,
            "configmap problems": svc.configmaps.problems,
            "restarts": svc.restarts.keys.memory,
            "dial": svc.dials.dialed,
            "operator written": svc.operators.written,
            "operator problems": svc.operators.problems,
            "operator nodes": svc.operators.nodes,
            "hold-down wake": svc.restarts.hold_down_wake,
            "publish refusal wake": svc.endpoint.refusal_wake,
        }
        assert {k: v for k, v in memories.items() if v} == {}
        assert svc.endpoint.retry_at == 0.0
        assert wake[1].cancelled()
        assert refusal_wake.cancelled()

    asyncio.run(fill_and_forget())


def pod(uid: str) -> PodInfo:
    return PodInfo("ns", f"pod-{uid}", uid, ("10.0.0.1",), True, False, "Running")


def test_dial_memory_keeps_only_pods_that_exist() -> None:
    dialed = {f"uid-{i}": "h" for i in range(1000)}
    pods = {"c-1": [pod("uid-3")], "c-2": [pod("uid-7"), pod("new")]}
    assert live_dial_memory(dialed, pods) == {"uid-3": "h", "uid-7": "h"}
    assert live_dial_memory(dialed, {}) == {}


def test_losing_leadership_stops_the_pod_watch_and_cancels_the_round() -> None:
    clock = Clock()
    svc = service(clock)
    closed: list[bool] = []

    async def forever() -> None:
        await asyncio.get_running_loop().create_future()

    async def close() -> None:
        closed.append(True)

    svc.lb.run = forever  # type: ignore[method-assign]
    svc.lb.close = close  # type: ignore[method-assign]

    async def run() -> None:
        lead_task = asyncio.create_task(svc._lead())
        await asyncio.sleep(0)
        assert svc._leading
        svc.dials.dialed = {"uid": "h"}

        async def in_flight() -> bool:
            await forever()
            return True

        svc._round = asyncio.create_task(in_flight())
        svc._round_leading = True
        lead_task.cancel()  # as the elector does when a renewal misses its deadline
        with pytest.raises(asyncio.CancelledError):
            await lead_task
        assert not svc._leading
        assert closed == [True]
        assert svc.dials.dialed == {}
        await asyncio.sleep(0)
        assert svc._round.cancelled()

    asyncio.run(run())
