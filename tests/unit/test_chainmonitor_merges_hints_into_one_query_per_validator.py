"""The monitor's decisions: hints merge into one query per validator, lag and failures lose nothing.

The query source here is an in-memory table (the monitor's logic is what is
tested; the real chain answers in tests/integration/test_chainmonitor_*.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from chainmonitor.addresses import ConsensusAddress, OperatorAddress
from chainmonitor.errors import ChainUnavailable
from chainmonitor.events import (
    BlockCommitted,
    ConsumerAction,
    ConsumerActionKind,
    ConsumerLaunch,
    TxCommitted,
)
from chainmonitor.monitor import ChainMonitor, MonitorSettings
from chainmonitor.queries import AtHeight
from chainmonitor.stream import Resync, StreamCounters
from chainmonitor.types import (
    ChainId,
    ChainSnapshot,
    ConsumerChain,
    ConsumerId,
    ConsumerPhase,
    ConsumerValidator,
    Validator,
)
from tests.support.snapshots import cons, consumer, op, validator


@dataclass
class TableQueries:
    """ChainQueries over dicts; `height` is the chain's; `lag` makes answers older."""

    name: str = "table"
    height: int = 10
    lag: int = 0
    vals: dict[OperatorAddress, Validator] = field(default_factory=dict)
    chains: dict[ConsumerId, ConsumerChain] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    fail_next: int = 0

    def _answer_height(self) -> int:
        if self.fail_next:
            self.fail_next -= 1
            raise ChainUnavailable("node down")
        at = self.height - self.lag
        self.lag = max(0, self.lag - 1)
        return at

    async def validators(self, height: int | None = None) -> AtHeight[tuple[Validator, ...]]:
        self.calls["validators"] += 1
        at = self._answer_height()
        return AtHeight(at, tuple(sorted(self.vals.values(), key=lambda v: v.operator)))

    async def validator(
        self, operator: OperatorAddress, height: int | None = None
    ) -> AtHeight[Validator | None]:
        self.calls[f"validator {operator}"] += 1
        return AtHeight(self._answer_height(), self.vals.get(operator))

    async def consumer_chains(
        self, height: int | None = None
    ) -> AtHeight[tuple[ConsumerChain, ...]]:
        self.calls["consumer_chains"] += 1
        at = self._answer_height()
        chains = sorted(self.chains.values(), key=lambda c: int(c.consumer_id))
        return AtHeight(
            at,
            tuple(replace(c, opted_in=(), spawn_time="", validators=None) for c in chains),
        )

    async def opted_in(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsensusAddress, ...]]:
        self.calls["opted_in"] += 1
        return AtHeight(height or self.height, self.chains[consumer_id].opted_in)

    async def consumer_validators(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsumerValidator, ...]]:
        self.calls["consumer_validators"] += 1
        return AtHeight(height or self.height, self.chains[consumer_id].validators or ())

    async def spawn_time(self, consumer_id: ConsumerId, height: int | None = None) -> AtHeight[str]:
        self.calls["spawn_time"] += 1
        return AtHeight(height or self.height, self.chains[consumer_id].spawn_time)

    async def blocks_per_epoch(self, height: int | None = None) -> AtHeight[int]:
        self.calls["blocks_per_epoch"] += 1
        return AtHeight(height or self.height, 5)

    async def close(self) -> None:
        return None


def table() -> TableQueries:
    q = TableQueries()
    q.vals = {op(n): validator(n) for n in (1, 2, 3)}
    q.chains = {
        ConsumerId("0"): consumer(0, "c0", [1, 2]),
        ConsumerId("1"): consumer(1, "c1", phase=ConsumerPhase.STOPPED),
    }
    return q


def launched(snapshot: ChainSnapshot, consumer_id: str) -> bool:
    chain = snapshot.consumer(consumer_id)
    return chain is not None and chain.phase is ConsumerPhase.LAUNCHED


FAST = MonitorSettings(settle=0.01, resync_interval=3600, lag_retry=0.001, lag_retries=20)


@contextlib.asynccontextmanager
async def running(q: TableQueries, settings: MonitorSettings = FAST) -> AsyncIterator[ChainMonitor]:
    monitor = ChainMonitor(q, settings=settings)
    task = asyncio.create_task(monitor.run())
    try:
        async with asyncio.timeout(5):
            await monitor.wait_for(lambda s: True)
        yield monitor
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def edit_tx(height: int, h: str, *ops: OperatorAddress) -> TxCommitted:
    return TxCommitted(height=height, tx_hash=h, edited=ops)


async def settle(
    monitor: ChainMonitor, predicate: Callable[[ChainSnapshot], bool]
) -> ChainSnapshot:
    async with asyncio.timeout(5):
        return await monitor.wait_for(predicate)


async def test_start_loads_everything_with_opted_in_sets_at_one_height() -> None:
    q = table()
    async with running(q) as monitor:
        snap = monitor.snapshot
        assert snap is not None
        assert snap.height == 10
        assert [v.operator for v in snap.validators] == sorted(op(n) for n in (1, 2, 3))
        assert snap.consumer("0") is not None
        assert snap.opted_in_operators("0") == tuple(sorted((op(1), op(2))))
        # STOPPED chains have no opted-in set to ask for.
        assert q.calls["opted_in"] == 1
        assert monitor.counters.resyncs_done == 1


async def test_a_burst_of_edits_costs_one_query_per_validator() -> None:
    q = table()
    async with running(q) as monitor:
        q.height = 11
        q.vals[op(1)] = validator(1, "p2p=10.0.0.1")
        q.vals[op(2)] = validator(2, "p2p=10.0.0.2")
        for i in range(10):
            monitor.hint(edit_tx(11, f"H{i}", op(1 + i % 2)))
        snap = await settle(monitor, lambda s: s.height >= 11)
        assert snap.validator(op(1)) == validator(1, "p2p=10.0.0.1")
        assert snap.validator(op(2)) == validator(2, "p2p=10.0.0.2")
        assert q.calls[f"validator {op(1)}"] == 1
        assert q.calls[f"validator {op(2)}"] == 1
        assert q.calls["validators"] == 1  # only the start


async def test_lagging_node_is_asked_again_until_it_reaches_the_event_height() -> None:
    q = table()
    async with running(q) as monitor:
        q.height = 15
        q.lag = 3
        q.vals[op(3)] = validator(3, "p2p=10.0.0.3")
        monitor.hint(edit_tx(15, "L", op(3)))
        snap = await settle(monitor, lambda s: s.height >= 15)
        assert snap.validator(op(3)) == validator(3, "p2p=10.0.0.3")
        assert q.calls[f"validator {op(3)}"] == 4


async def test_failed_queries_are_retried_and_the_hint_is_not_lost() -> None:
    q = table()
    settings = replace(FAST)
    async with running(q, settings) as monitor:
        q.height = 12
        q.fail_next = 2
        q.vals[op(2)] = validator(2, "new")
        monitor.hint(edit_tx(12, "F", op(2)))
        snap = await settle(monitor, lambda s: s.height >= 12)
        assert snap.validator(op(2)) == validator(2, "new")
        assert monitor.counters.query_failures == 2


async def test_failed_and_repeated_txs_are_ignored() -> None:
    q = table()
    async with running(q) as monitor:
        monitor.hint(TxCommitted(height=11, tx_hash="X", code=5, edited=(op(1),)))
        monitor.hint(edit_tx(11, "D", op(1)))
        monitor.hint(edit_tx(11, "D", op(1)))
        q.height = 11
        await settle(monitor, lambda s: s.height >= 11)
        await asyncio.sleep(0.05)
        assert q.calls[f"validator {op(1)}"] == 1


async def test_unresolved_edit_reloads_all_validators() -> None:
    q = table()
    async with running(q) as monitor:
        q.height = 11
        q.vals[op(4)] = validator(4)
        monitor.hint(TxCommitted(height=11, tx_hash="U", edits_unresolved=True))
        snap = await settle(monitor, lambda s: s.validator(op(4)) is not None)
        assert len(snap.validators) == 4
        assert q.calls["validators"] == 2
        assert q.calls["consumer_chains"] == 1


async def test_consumer_actions_and_launches_reload_consumers() -> None:
    q = table()
    async with running(q) as monitor:
        q.height = 11
        q.chains[ConsumerId("2")] = consumer(2, "c2", [3], ConsumerPhase.INITIALIZED)
        monitor.hint(
            TxCommitted(
                height=11,
                tx_hash="C",
                consumer_actions=(
                    ConsumerAction(ConsumerActionKind.CREATE, ConsumerId("2"), ChainId("c2")),
                ),
            )
        )
        snap = await settle(monitor, lambda s: s.consumer("2") is not None)
        assert snap.opted_in_operators("2") == (op(3),)
        q.height = 12
        q.chains[ConsumerId("2")] = replace(q.chains[ConsumerId("2")], phase=ConsumerPhase.LAUNCHED)
        monitor.hint(BlockCommitted(12))  # no launch: nothing to do
        monitor.hint(BlockCommitted(12, launched=()))
        await asyncio.sleep(0.05)
        assert q.calls["consumer_chains"] == 2
        monitor.hint(BlockCommitted(12, (ConsumerLaunch(ConsumerId("2"), ChainId("c2")),)))
        snap = await settle(monitor, lambda s: launched(s, "2"))
        assert q.calls["consumer_chains"] == 3


async def test_resync_reports_changes_and_subscribers_see_only_new_content() -> None:
    q = table()
    async with running(q) as monitor:
        seen: list[ChainSnapshot] = []

        async def collect() -> None:
            async for snap in monitor.subscribe():
                seen.append(snap)

        collector = asyncio.create_task(collect())
        await asyncio.sleep(0.02)
        monitor.hint(Resync("reconnected"))  # nothing changed
        await settle(monitor, lambda s: monitor.counters.resyncs_done == 2)
        q.height = 20
        del q.vals[op(3)]
        q.chains[ConsumerId("0")] = replace(q.chains[ConsumerId("0")], opted_in=(cons(1),))
        monitor.hint(Resync("subscription renewed"))
        await settle(monitor, lambda s: s.validator(op(3)) is None)
        await asyncio.sleep(0.02)
        collector.cancel()
        counters = monitor.counters
        assert counters.resyncs_done == 3
        assert f"validators removed: {op(3)}" in counters.last_resync_changes
        assert "consumers changed: 0" in counters.last_resync_changes
        # The start snapshot and the changed one; the no-change resync yields nothing.
        assert [s.height for s in seen] == [10, 20]


class RecordingStream:
    """Stands in for the event stream: never delivers, records forced reconnects."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.counters = StreamCounters()

    def reconnect(self, reason: str) -> None:
        self.reasons.append(reason)

    async def run(self) -> None:
        await asyncio.Event().wait()


async def test_an_edit_only_the_timer_found_reconnects_the_stream_two_blocks_later() -> None:
    q = table()
    stream = RecordingStream()
    settings = replace(FAST, resync_interval=0.05)
    # The monitor only calls run(), counters and reconnect() on its stream.
    factory: Any = lambda _: stream  # noqa: E731
    monitor = ChainMonitor(q, settings=settings, stream_factory=factory)
    task = asyncio.create_task(monitor.run())
    try:
        await settle(monitor, lambda s: True)
        q.height = 11
        q.vals[op(2)] = validator(2, "edited while the edit subscription was dead")
        await settle(monitor, lambda s: s.validator(op(2)) == q.vals[op(2)])
        # The event may still be on its way: it gets until two blocks later.
        monitor.hint(BlockCommitted(12))
        assert stream.reasons == []
        monitor.hint(BlockCommitted(13))
        assert stream.reasons == [f"no event for the edit of {op(2)} a resync found"]

        # A change the stream cannot report (jailing) is no reason to reconnect.
        q.height = 14
        q.vals[op(3)] = replace(validator(3), jailed=True)
        await settle(monitor, lambda s: s.validator(op(3)) == q.vals[op(3)])
        monitor.hint(BlockCommitted(20))
        assert len(stream.reasons) == 1

        # Nor is an edit whose event comes late, after the timer's resync found it.
        q.height = 21
        q.vals[op(1)] = validator(1, "reported late")
        await settle(monitor, lambda s: s.validator(op(1)) == q.vals[op(1)])
        await asyncio.sleep(0.1)  # a few more periodic resyncs
        monitor.hint(edit_tx(21, "LATE", op(1)))
        monitor.hint(BlockCommitted(30))
        assert len(stream.reasons) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_block_times_from_the_stream_are_kept_for_recent_heights() -> None:
    async with running(table()) as monitor:
        assert monitor.block_time(12) is None
        monitor.hint(BlockCommitted(12, time=1_700_000_000.25))
        monitor.hint(BlockCommitted(13))  # a frame without a header: no time
        assert monitor.block_time(12) == 1_700_000_000.25
        assert monitor.block_time(13) is None
        for h in range(100, 400):
            monitor.hint(BlockCommitted(h, time=float(h)))
        assert monitor.block_time(12) is None  # only recent blocks are remembered
        assert monitor.block_time(399) == 399.0
        assert monitor.block_time(144) == 144.0
        assert monitor.block_time(143) is None


async def test_launched_chains_carry_their_validator_set_and_spawn_time_read_once() -> None:
    q = table()
    q.chains[ConsumerId("0")] = replace(
        q.chains[ConsumerId("0")],
        spawn_time="2026-01-01T00:00:00Z",
        validators=(ConsumerValidator(cons(1), 7), ConsumerValidator(cons(2), 3)),
    )
    q.chains[ConsumerId("2")] = consumer(2, "spam", [3], ConsumerPhase.REGISTERED)
    async with running(q) as monitor:
        snap = monitor.snapshot
        assert snap is not None
        launched_chain = snap.consumer("0")
        assert launched_chain is not None
        assert launched_chain.spawn_time == "2026-01-01T00:00:00Z"
        assert launched_chain.validators == (
            ConsumerValidator(cons(1), 7),
            ConsumerValidator(cons(2), 3),
        )
        spam = snap.consumer("2")
        assert spam is not None
        assert spam.validators is None
        # Stopped chains keep a spawn time (they hold ports); only launched ones a set.
        assert q.calls["consumer_validators"] == 1
        assert q.calls["spawn_time"] == 2
        q.height += 1
        monitor.hint(Resync("test"))
        await monitor.wait_for(lambda s: s.height >= q.height)
        # Spawn times are frozen at launch: not asked again.
        assert q.calls["spawn_time"] == 2
        assert q.calls["consumer_validators"] == 2


async def test_pending_opt_ins_reload_consumers_at_the_epoch_end_only() -> None:
    q = table()
    # 1 and 2 opted in; only 1 has power yet: 2's opt-in awaits the epoch end.
    q.chains[ConsumerId("0")] = replace(
        q.chains[ConsumerId("0")], validators=(ConsumerValidator(cons(1), 7),)
    )
    async with running(q) as monitor:
        loads = q.calls["consumer_chains"]
        monitor.hint(BlockCommitted(12))  # not an epoch end (epochs of 5 blocks)
        await asyncio.sleep(0.1)
        assert q.calls["consumer_chains"] == loads
        q.chains[ConsumerId("0")] = replace(
            q.chains[ConsumerId("0")],
            validators=(ConsumerValidator(cons(1), 7), ConsumerValidator(cons(2), 3)),
        )
        q.height = 15
        monitor.hint(BlockCommitted(15))
        snap = await monitor.wait_for(
            lambda s: (c := s.consumer("0")) is not None and len(c.validators or ()) == 2
        )
        assert q.calls["consumer_chains"] == loads + 1
        assert snap.height >= 15
        # Nothing pending any more: later epoch ends cost no query.
        monitor.hint(BlockCommitted(20))
        await asyncio.sleep(0.1)
        assert q.calls["consumer_chains"] == loads + 1
        assert q.calls["blocks_per_epoch"] == 1
