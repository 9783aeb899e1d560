"""The chain monitor: events as hints, queries as truth, one immutable snapshot for subscribers.

The event stream only says what may have changed: an edit refreshes that one
validator, a provider tx or a launch reloads the consumer chains, and a
(re)connect, a cancelled subscription or a timer reloads everything. Hints that
arrive together (a block's burst of txs) are merged, so each validator costs
one query however often it was edited. Answers older than the event that asked
for them (a lagging node) are retried. Subscribers get the newest snapshot
whenever its content changes; a missed intermediate state costs nothing,
because the snapshot is the whole state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, NoReturn, TypeVar

from chainmonitor.addresses import OperatorAddress
from chainmonitor.backoff import Backoff, JitteredBackoff
from chainmonitor.errors import ChainMonitorError, InvalidChainData
from chainmonitor.events import BlockCommitted, TxCommitted
from chainmonitor.faults import TRANSPORT_ERRORS, classify
from chainmonitor.queries import AtHeight, ChainQueries
from chainmonitor.snapshot import (
    SnapshotChanges,
    diff_snapshots,
    with_all_validators,
    with_consumers,
    with_validators,
)
from chainmonitor.stream import EventStream, Resync, StreamCounters, StreamSignal
from chainmonitor.types import ChainSnapshot, ConsumerChain, ConsumerId, ConsumerPhase, Validator

log = logging.getLogger(__name__)

T = TypeVar("T")

# Enough recent block times to cover a snapshot still being applied.
_BLOCK_TIMES_KEPT: Final = 256


@dataclass(frozen=True)
class MonitorSettings:
    """Timings of the monitor (seconds)."""

    # Wait this long after the first hint so the rest of the block's frames merge in.
    settle: float = 0.02
    # Reload everything this often even without events: jailing, bonding and
    # Top-N opt-ins at epoch ends change state without any subscribed event.
    resync_interval: float = 60.0
    # A node answering below the event's height is retried this often, this many times.
    lag_retry: float = 0.1
    lag_retries: int = 50
    # Opted-in queries in flight at once during a consumer reload.
    concurrency: int = 8


@dataclass
class MonitorCounters:
    """Counters for export, beside the stream's."""

    resyncs_done: int = 0
    refreshes: int = 0
    validator_queries: int = 0
    query_failures: int = 0
    # Of those, the ones no retry can cure (a node refusing the question), the
    # last failure's reason, and whether the latest attempt failed that way.
    permanent_query_failures: int = 0
    last_query_failure: str = ""
    failing_permanently: bool = False
    snapshots_published: int = 0
    last_resync_seconds: float = 0.0
    last_resync_reason: str = ""
    last_resync_changes: str = ""
    stream: StreamCounters = field(default_factory=StreamCounters)


@dataclass
class _Work:
    """Hints gathered since the last round of queries."""

    resync: list[str] = field(default_factory=list)
    operators: set[OperatorAddress] = field(default_factory=set)
    all_validators: bool = False
    consumers: bool = False
    min_height: int = 0

    @property
    def empty(self) -> bool:
        return not (self.resync or self.operators or self.all_validators or self.consumers)

    def absorb(self, other: _Work) -> None:
        self.resync += other.resync
        self.operators |= other.operators
        self.all_validators |= other.all_validators
        self.consumers |= other.consumers
        self.min_height = max(self.min_height, other.min_height)


def _set_pending(chain: ConsumerChain) -> bool:
    """Whether opt-ins or opt-outs of a launched chain await the epoch end."""
    if chain.phase is not ConsumerPhase.LAUNCHED or chain.validators is None:
        return False
    powered = {v.provider_address for v in chain.validators if v.power > 0}
    return powered != set(chain.opted_in)


class _LaggingNode(ChainMonitorError):
    transient = True


class ChainMonitor:
    """Keeps a `ChainSnapshot` of the provider current from `queries`, steered by `stream` hints.

    Use `run()` as a task; read `snapshot`, or iterate `subscribe()` for each
    changed snapshot. Without a stream (`rpc_urls` empty) it still loads on
    start and resyncs on its timer.
    """

    def __init__(
        self,
        queries: ChainQueries,
        rpc_urls: Sequence[str] = (),
        *,
        settings: MonitorSettings | None = None,
        stream_factory: Callable[[Callable[[StreamSignal], None]], EventStream] | None = None,
        retry_backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queries = queries
        self.settings = settings or MonitorSettings()
        self._clock = clock
        self._retry = retry_backoff or JitteredBackoff(initial=0.2, maximum=10.0)
        if stream_factory is not None:
            self.stream: EventStream | None = stream_factory(self.hint)
        elif rpc_urls:
            self.stream = EventStream(rpc_urls, self.hint)
        else:
            self.stream = None
        self._snapshot: ChainSnapshot | None = None
        self._version = 0
        self._changed = asyncio.Condition()
        self._work = _Work(resync=["start"])
        self._wake = asyncio.Event()
        self._wake.set()
        self._seen_txs: OrderedDict[str, None] = OrderedDict()
        # Times of recent blocks (from the stream's block headers), for latency metrics.
        self._block_times: OrderedDict[int, float] = OrderedDict()
        # For finding edits no event reported (see `_check_unreported`): the
        # height of each validator's last edit event, the edits whose events
        # arrived during the running reload, and the edits a periodic resync
        # found without an event (operator -> height found at).
        self._last_edit_event: dict[OperatorAddress, int] = {}
        self._edits_during_reload: set[OperatorAddress] | None = None
        self._unreported: dict[OperatorAddress, int] = {}
        # Spawn times of launched and stopped chains: frozen at launch, so read once.
        self._spawn_times: dict[tuple[ConsumerId, str], str] = {}
        # The provider applies opt-ins and opt-outs to consumer validator sets at
        # epoch ends, with no event: while a launched chain's opted-in set and
        # its validator set differ, consumers are reloaded at each epoch end.
        self._blocks_per_epoch: int | None = None
        self._epoch_pending = False
        self._counters = MonitorCounters()

    # ---- reading ---------------------------------------------------------------

    @property
    def snapshot(self) -> ChainSnapshot | None:
        return self._snapshot

    def block_time(self, height: int) -> float | None:
        """The time (seconds since the epoch) of block `height`, if the stream showed it lately."""
        return self._block_times.get(height)

    @property
    def counters(self) -> MonitorCounters:
        stream = self.stream.counters if self.stream else StreamCounters()
        return replace(self._counters, stream=stream)

    async def subscribe(self) -> AsyncIterator[ChainSnapshot]:
        """Each snapshot whose content differs from the last one yielded (the newest of several)."""
        seen = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda last=seen: self._version > last)  # type: ignore[misc]
                seen = self._version
                snapshot = self._snapshot
            assert snapshot is not None
            yield snapshot

    async def wait_for(self, predicate: Callable[[ChainSnapshot], bool]) -> ChainSnapshot:
        """The first snapshot, current or future, that satisfies `predicate`.

        Bound it with `asyncio.timeout()`.
        """

        def ready() -> bool:
            return self._snapshot is not None and predicate(self._snapshot)

        async with self._changed:
            await self._changed.wait_for(ready)
        assert self._snapshot is not None
        return self._snapshot

    # ---- hints -----------------------------------------------------------------

    def hint(self, signal: StreamSignal) -> None:
        """Take a stream signal (never blocks: it only records what to query)."""
        work = _Work()
        if isinstance(signal, Resync):
            work.resync.append(signal.reason)
        elif isinstance(signal, TxCommitted):
            if not signal.ok or self._already_seen(signal.tx_hash):
                return
            for operator in signal.edited:
                last = self._last_edit_event.get(operator, 0)
                self._last_edit_event[operator] = max(last, signal.height)
                self._unreported.pop(operator, None)
                if self._edits_during_reload is not None:
                    self._edits_during_reload.add(operator)
            if signal.edits_unresolved:
                self._unreported.clear()
            work.operators |= set(signal.edited)
            work.all_validators = signal.edits_unresolved
            work.consumers = signal.touches_consumers
            work.min_height = signal.height
        elif isinstance(signal, BlockCommitted):
            if signal.time is not None:
                self._block_times[signal.height] = signal.time
                while len(self._block_times) > _BLOCK_TIMES_KEPT:
                    self._block_times.popitem(last=False)
            self._check_unreported(signal.height)
            epoch_end = (
                self._epoch_pending
                and self._blocks_per_epoch is not None
                and signal.height % self._blocks_per_epoch == 0
            )
            if not (signal.launched or epoch_end):
                return
            work.consumers = True
            work.min_height = signal.height
        else:
            return
        if work.empty:
            return
        self._work.absorb(work)
        self._wake.set()

    def _check_unreported(self, height: int) -> None:
        """Reconnect the stream if an edit found by the timer got no event within two blocks.

        Descriptions change only through MsgEditValidator, which the stream
        subscribes to; its event for height H arrives well before the header of
        H + 2. If it does not, the node dropped the subscription without a
        notice (CometBFT does when a slow client's buffer is full), and only a
        new connection is sure to be clean.
        """
        overdue = sorted(op for op, at in self._unreported.items() if height >= at + 2)
        if overdue and self.stream is not None:
            self._unreported.clear()
            self.stream.reconnect(f"no event for the edit of {overdue[0]} a resync found")

    def _already_seen(self, tx_hash: str) -> bool:
        # An authz-wrapped edit matches two subscriptions: one refresh is enough.
        if not tx_hash:
            return False
        if tx_hash in self._seen_txs:
            return True
        self._seen_txs[tx_hash] = None
        while len(self._seen_txs) > 4096:
            self._seen_txs.popitem(last=False)
        return False

    # ---- the loop --------------------------------------------------------------

    async def run(self) -> NoReturn:
        """Stream, query and publish until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            if self.stream is not None:
                tasks.create_task(self.stream.run(), name="chainmonitor-stream")
            tasks.create_task(self._timer(), name="chainmonitor-timer")
            await self._worker()
        raise AssertionError("unreachable")  # pragma: no cover - _worker never returns

    async def _timer(self) -> NoReturn:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            self._work.resync.append("periodic")
            self._wake.set()

    async def _worker(self) -> NoReturn:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.settings.settle > 0:
                await asyncio.sleep(self.settings.settle)
            work, self._work = self._work, _Work()
            if work.empty:
                continue
            try:
                await self._process(work)
            except (ChainMonitorError, *TRANSPORT_ERRORS) as e:
                # A query layer translates its transport's errors; any that slips
                # through is classified here rather than ending the monitor.
                fault = classify(e)
                permanent = fault is not None and not fault.transient
                reason = fault.reason if fault is not None else str(e)
                self._counters.query_failures += 1
                self._counters.permanent_query_failures += int(permanent)
                self._counters.failing_permanently = permanent
                new_reason = reason != self._counters.last_query_failure
                self._counters.last_query_failure = reason
                # Nothing is lost: the work goes back and is retried after a pause
                # (a permanent refusal too: the node may be fixed or replaced).
                work.absorb(self._work)
                self._work = work
                delay = self._retry.next_delay()
                if permanent and new_reason:
                    log.error("chain query refused (%s); retrying in %.1fs", reason, delay)
                elif not permanent:
                    log.warning("chain query failed (%s); retrying in %.1fs", reason, delay)
                await asyncio.sleep(delay)
                self._wake.set()
            else:
                self._retry.reset()
                self._counters.failing_permanently = False

    async def _process(self, work: _Work) -> None:
        if work.resync or self._snapshot is None:
            reason = ", ".join(dict.fromkeys(work.resync)) or "start"
            await self._resync(reason, work.min_height)
            return
        snapshot = self._snapshot
        if work.all_validators:
            loaded = await self._fresh(lambda: self.queries.validators(), work.min_height)
            snapshot = with_all_validators(snapshot, loaded.value, loaded.height, loaded.rejected)
            self._counters.validator_queries += 1
        elif work.operators:
            updates = await self._refresh_validators(sorted(work.operators), work.min_height)
            snapshot = with_validators(snapshot, updates[1], updates[0])
        if work.consumers:
            height, consumers, rejected = await self._load_consumers(work.min_height)
            snapshot = with_consumers(snapshot, consumers, height, rejected)
        self._counters.refreshes += 1
        await self._publish(snapshot)

    async def _fresh(
        self, ask: Callable[[], Awaitable[AtHeight[T]]], min_height: int
    ) -> AtHeight[T]:
        """Ask until the answer is at least at `min_height` (the node we query may lag)."""
        for _ in range(self.settings.lag_retries + 1):
            answer = await ask()
            if not min_height or not answer.height or answer.height >= min_height:
                return answer
            await asyncio.sleep(self.settings.lag_retry)
        raise _LaggingNode(f"{self.queries.name} stays below height {min_height}")

    async def _refresh_validators(
        self, operators: Sequence[OperatorAddress], min_height: int
    ) -> tuple[int, dict[OperatorAddress, Validator | None]]:
        async def one(operator: OperatorAddress) -> AtHeight[Validator | None]:
            answer = await self._fresh(lambda: self.queries.validator(operator), min_height)
            for reason in answer.rejected:
                log.warning("left out: %s", reason)
            return answer

        answers = await asyncio.gather(*(one(op) for op in operators))
        self._counters.validator_queries += len(operators)
        height = max((a.height for a in answers), default=0)
        return height, {op: a.value for op, a in zip(operators, answers, strict=True)}

    async def _load_consumers(
        self, min_height: int, height: int | None = None
    ) -> tuple[int, list[ConsumerChain], list[str]]:
        if height:
            chains = await self.queries.consumer_chains(height)
        else:
            chains = await self._fresh(lambda: self.queries.consumer_chains(), min_height)
        at = chains.height or height or 0
        limit = asyncio.Semaphore(self.settings.concurrency)
        rejected = list(chains.rejected)

        async def with_opted_in(chain: ConsumerChain) -> ConsumerChain:
            if chain.phase.has_opted_in_set:
                async with limit:
                    answer = await self.queries.opted_in(chain.consumer_id, at or None)
                chain = replace(chain, opted_in=answer.value)
            if chain.phase in (ConsumerPhase.LAUNCHED, ConsumerPhase.STOPPED):
                chain = await with_launch_data(chain)
            return chain

        async def with_launch_data(chain: ConsumerChain) -> ConsumerChain:
            # Ports follow spawn times (frozen at launch, so read once) and peers
            # follow the consumer chain's validator set.
            key = (chain.consumer_id, chain.chain_id)
            spawn = self._spawn_times.get(key)
            try:
                if spawn is None:
                    async with limit:
                        spawn = (await self.queries.spawn_time(chain.consumer_id, at or None)).value
                    self._spawn_times[key] = spawn
                chain = replace(chain, spawn_time=spawn)
                if chain.phase is ConsumerPhase.LAUNCHED:
                    async with limit:
                        answer = await self.queries.consumer_validators(
                            chain.consumer_id, at or None
                        )
                    chain = replace(chain, validators=answer.value)
            except InvalidChainData as e:
                rejected.append(f"{e} (the opted-in set stands in for its validator set)")
            return chain

        consumers = await asyncio.gather(*(with_opted_in(c) for c in chains.value))
        self._epoch_pending = any(_set_pending(c) for c in consumers)
        if self._epoch_pending and self._blocks_per_epoch is None:
            self._blocks_per_epoch = (await self.queries.blocks_per_epoch(at or None)).value
        return at, list(consumers), rejected

    async def _resync(self, reason: str, min_height: int) -> SnapshotChanges:
        known_at = self._snapshot.height if self._snapshot is not None else 0
        self._edits_during_reload = set()
        try:
            changes = await self._reload(reason, min_height)
            during = self._edits_during_reload
        finally:
            self._edits_during_reload = None
        if reason == "periodic" and self._snapshot is not None:
            # An edit is explained by an event for a block after what the old
            # snapshot knew, or by one that arrived while reloading.
            for operator in changes.descriptions_changed:
                if self._last_edit_event.get(operator, 0) > known_at or operator in during:
                    continue
                self._unreported.setdefault(operator, self._snapshot.height)
        return changes

    async def _reload(self, reason: str, min_height: int) -> SnapshotChanges:
        started = self._clock()
        self._blocks_per_epoch = None  # governance may change it: read again when needed
        validators = await self._fresh(lambda: self.queries.validators(), min_height)
        # Pin the rest of the reload to the validators' height: one consistent state.
        height, consumers, rejected = await self._load_consumers(0, validators.height or None)
        snapshot = with_consumers(
            with_all_validators(None, validators.value, validators.height, validators.rejected),
            consumers,
            height,
            rejected,
        )
        if self._snapshot is not None and snapshot.height < self._snapshot.height:
            # Never step back (a fallback node behind the one we read before).
            raise _LaggingNode(f"resync read height {snapshot.height} < {self._snapshot.height}")
        changes = diff_snapshots(self._snapshot, snapshot)
        elapsed = self._clock() - started
        self._counters.resyncs_done += 1
        self._counters.validator_queries += 1
        self._counters.last_resync_seconds = elapsed
        self._counters.last_resync_reason = reason
        self._counters.last_resync_changes = changes.summary()
        for line in (*snapshot.rejected_validators, *snapshot.rejected_consumers):
            log.warning("left out: %s", line)
        log.info(
            "resync (%s) at height %d in %.3fs: %d validators, %d consumers; %s",
            reason,
            snapshot.height,
            elapsed,
            len(snapshot.validators),
            len(snapshot.consumers),
            changes.summary(),
        )
        for detail in changes.details:
            log.info("  %s", detail)
        await self._publish(snapshot)
        return changes

    async def _publish(self, snapshot: ChainSnapshot) -> None:
        async with self._changed:
            if not snapshot.same_content(self._snapshot):
                self._version += 1
                self._counters.snapshots_published += 1
            self._snapshot = snapshot
            # Waiters on a height wake too; `subscribe` only yields new content.
            self._changed.notify_all()
