"""Restart mode: a workload is rolled only after its ConfigMap, until made, once per hold-down."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.apply.restarts import RestartApplier
from discovery.errors import KubernetesWriteError
from discovery.restarts import (
    CONFIGMAP_NOT_WRITTEN,
    HOLD_DOWN,
    Action,
    RestartMemory,
    after_restart,
    restart_step,
)
from discovery.workloads import NotifyReport, WorkloadRef

REF = WorkloadRef("StatefulSet", "consumers", "node")
ROLLED = NotifyReport(restarted=(REF,))
CARRIES = NotifyReport(unchanged=(REF,))
FAILED = NotifyReport(failed=((REF, "apiserver unavailable"),))


def test_nothing_when_the_workloads_carry_the_hash() -> None:
    step = restart_step(RestartMemory(made="h1"), "h1", configmap_written=True, now=0, hold_down=60)
    assert step.action is Action.NOTHING


def test_waits_for_the_configmap_then_restarts_once_it_is_written() -> None:
    m = RestartMemory(made="h0", made_at=-1000.0)
    step = restart_step(m, "h1", configmap_written=False, now=0, hold_down=60)
    assert step.action is Action.WAIT
    assert step.reason == CONFIGMAP_NOT_WRITTEN
    assert step.due is None
    assert step.newly_waiting
    again = restart_step(step.memory, "h1", configmap_written=False, now=1, hold_down=60)
    assert again.action is Action.WAIT
    assert not again.newly_waiting
    later = restart_step(again.memory, "h1", configmap_written=True, now=2, hold_down=60)
    assert later.action is Action.RESTART


def test_a_failed_roll_is_not_remembered_as_made() -> None:
    m = after_restart(RestartMemory(made="h0", pending="h1"), "h1", FAILED, now=5)
    assert m.made == "h0"
    assert restart_step(m, "h1", configmap_written=True, now=6, hold_down=60).action is (
        Action.RESTART
    )
    made = after_restart(m, "h1", ROLLED, now=7)
    assert made == RestartMemory(made="h1", made_at=7)


def test_a_workload_already_carrying_the_hash_does_not_start_a_hold_down() -> None:
    m = after_restart(RestartMemory(), "h1", CARRIES, now=5)
    assert m.made == "h1"
    assert m.made_at is None
    step = restart_step(m, "h2", configmap_written=True, now=6, hold_down=60)
    assert step.action is Action.RESTART


def test_changes_within_the_hold_down_are_coalesced_into_one_restart_when_it_ends() -> None:
    m = RestartMemory(made="h0", made_at=100.0)
    s1 = restart_step(m, "h1", configmap_written=True, now=110, hold_down=60)
    assert (s1.action, s1.reason, s1.due, s1.coalesced) == (Action.WAIT, HOLD_DOWN, 160.0, False)
    s2 = restart_step(s1.memory, "h2", configmap_written=True, now=120, hold_down=60)
    assert s2.action is Action.WAIT
    assert s2.coalesced
    assert s2.newly_waiting
    s3 = restart_step(s2.memory, "h2", configmap_written=True, now=159.9, hold_down=60)
    assert s3.action is Action.WAIT
    assert not s3.newly_waiting
    assert not s3.coalesced
    s4 = restart_step(s3.memory, "h2", configmap_written=True, now=160, hold_down=60)
    assert s4.action is Action.RESTART
    # Back to the hash the workloads carry before the hold-down ends: nothing to roll.
    back = restart_step(s2.memory, "h0", configmap_written=True, now=130, hold_down=60)
    assert back.action is Action.NOTHING
    assert back.memory.pending is None


events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=30, allow_nan=False),  # time since the last event
        st.sampled_from(["a", "b", "c", "d"]),  # the peers hash wanted now
        st.booleans(),  # whether its ConfigMap is written
        st.booleans(),  # whether the roll fails
    ),
    max_size=60,
)


@given(events, st.floats(min_value=0, max_value=100, allow_nan=False))
@settings(max_examples=300, deadline=None)
def test_never_two_rolls_within_a_hold_down_and_never_before_the_configmap(
    steps: list[tuple[float, str, bool, bool]], hold_down: float
) -> None:
    memory, now, rolls = RestartMemory(), 0.0, []
    for gap, wanted, written, fails in steps:
        now += gap
        step = restart_step(memory, wanted, configmap_written=written, now=now, hold_down=hold_down)
        memory = step.memory
        if step.action is Action.RESTART:
            assert written
            report = FAILED if fails else ROLLED
            if not fails:
                rolls.append(now)
            memory = after_restart(memory, wanted, report, now)
            if not fails:
                assert memory.made == wanted
        elif step.action is Action.WAIT and step.reason == HOLD_DOWN:
            assert step.due is not None
            assert step.due > now
    assert all(b >= a + hold_down for a, b in itertools.pairwise(rolls))


class FakeNotifier:
    """The notifier's interface; fails while `failing`, records what it rolled."""

    def __init__(self) -> None:
        self.failing = False
        self.carried: str | None = None
        self.calls: list[str] = []

    async def notify(self, chain_id: str, peers_hash: str, **_: Any) -> NotifyReport:
        self.calls.append(peers_hash)
        if self.failing:
            raise KubernetesWriteError("list StatefulSets", "unavailable", transient=True)
        if self.carried == peers_hash:
            return CARRIES
        self.carried = peers_hash
        return ROLLED


def applier(hold_down: float = 60) -> tuple[RestartApplier, FakeNotifier]:
    fake = FakeNotifier()
    return RestartApplier(fake, hold_down), fake  # type: ignore[arg-type]


def test_applier_retries_until_made_and_the_hold_down_rolls_the_latest_peers() -> None:
    a, fake = applier()

    async def run() -> None:
        r = await a.apply("c-1", "ns", "h1", configmap_written=False, now=0)
        assert not r.clean
        assert fake.calls == []
        fake.failing = True
        r = await a.apply("c-1", "ns", "h1", configmap_written=True, now=1)
        assert r.error is not None
        assert not r.clean
        fake.failing = False
        r = await a.apply("c-1", "ns", "h1", configmap_written=True, now=2)
        assert r.clean
        assert fake.carried == "h1"
        for t, h in ((3, "h2"), (4, "h3"), (5, "h4")):
            r = await a.apply("c-1", "ns", h, configmap_written=True, now=t)
            assert r.step.action is Action.WAIT
            assert r.step.due == 62  # the hold-down after the roll at t=2
            assert r.clean
        r = await a.apply("c-1", "ns", "h4", configmap_written=True, now=62)
        assert fake.carried == "h4"
        assert fake.calls == ["h1", "h1", "h4"]

    asyncio.run(run())


def test_applier_memory_is_reset_on_leadership_change_and_bounded_to_wanted_keys() -> None:
    a, fake = applier()

    async def run() -> None:
        await a.apply("c-1", "ns", "h1", configmap_written=True, now=0)
        # Another leader rolls the workload to other peers; we lead again, peers are h1.
        fake.carried = "h-other"
        a.reset()
        await a.apply("c-1", "ns", "h1", configmap_written=True, now=1)
        assert fake.carried == "h1"  # not skipped as "already made"
        for i in range(50):
            await a.apply(f"c-{i}", "ns", "h", configmap_written=False, now=2)
        a.retain([("ns", "c-3")])
        assert set(a.memory) == {("ns", "c-3")}

    asyncio.run(run())
