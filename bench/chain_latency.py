"""Measure the chain monitor against a real 3-validator provider chain on 127.0.0.1.

What is measured (issue 5), printed as numbers:
- event-to-snapshot latency over N edits (median, worst): from the moment the
  edit's Tx event reaches the monitor to the moment a snapshot with the new
  details is published; also commit-to-snapshot (block time of the edit's block
  to that publication, wall clock) and broadcast-to-snapshot;
- a burst of edits by every validator in the same blocks: validator queries
  spent (target: one per validator per refresh);
- registry load for the 3 validators: all pages over gRPC and REST (median of
  20), and a full resync (validators, consumer chains, opted-in sets);
- reconnect-to-resynced: the monitor's node is stopped for 2 s and restarted R
  times in a row; from the node's process start to the stream being live, and
  from live to the resync done, with a 1 s backoff cap and with the default
  backoff (whose window keeps growing over restarts closer together than its
  30 s healthy period: the first restart shows the isolated case).

Run from the repository root after `make tools`:

    .venv/bin/python -m bench.chain_latency [--edits 25] [--restarts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from chainmonitor.backoff import Backoff, JitteredBackoff  # noqa: E402
from chainmonitor.events import TxCommitted  # noqa: E402
from chainmonitor.monitor import ChainMonitor, MonitorSettings  # noqa: E402
from chainmonitor.queries import GrpcQueries, RestQueries  # noqa: E402
from chainmonitor.stream import EventStream, Resync, StreamSettings, StreamSignal  # noqa: E402
from chainmonitor.types import ChainSnapshot  # noqa: E402
from tests.support.chain import (  # noqa: E402
    ProviderChain,
    export_key_hex,
    start_provider_chain,
)
from tests.support.chainmonitor_support import EditBurst  # noqa: E402
from tests.support.polling import any_error, eventually  # noqa: E402


@dataclass
class Probe:
    """Wall-clock and monotonic times of what the monitor saw."""

    event_at: dict[str, float] = field(default_factory=dict)  # tx hash -> monotonic
    published_at: dict[str, float] = field(default_factory=dict)  # details -> monotonic
    published_wall: dict[str, float] = field(default_factory=dict)  # details -> wall
    resync_signals: list[tuple[str, float]] = field(default_factory=list)
    signalled: asyncio.Event = field(default_factory=asyncio.Event)


def stats(label: str, values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    if not values:
        return f"{label}: no samples"
    ordered = sorted(values)
    return (
        f"{label}: n={len(values)} median={statistics.median(ordered) * scale:.1f}{unit} "
        f"worst={ordered[-1] * scale:.1f}{unit} best={ordered[0] * scale:.1f}{unit}"
    )


@contextlib.asynccontextmanager
async def monitor_on(
    chain: ProviderChain, probe: Probe, node: int = 0, backoff: Backoff | None = None
) -> AsyncIterator[ChainMonitor]:
    n = chain.nodes[node]
    queries = GrpcQueries(n.grpc_address)
    holder: list[ChainMonitor] = []

    def factory(deliver: Callable[[StreamSignal], None]) -> EventStream:
        def timed(signal: StreamSignal) -> None:
            if isinstance(signal, TxCommitted):
                probe.event_at.setdefault(signal.tx_hash, time.monotonic())
            elif isinstance(signal, Resync):
                probe.resync_signals.append((signal.reason, time.monotonic()))
                probe.signalled.set()
            deliver(signal)

        return EventStream(
            [n.rpc_url], timed, settings=StreamSettings(ping_interval=5.0), backoff=backoff
        )

    monitor = ChainMonitor(
        queries, settings=MonitorSettings(resync_interval=3600.0), stream_factory=factory
    )
    holder.append(monitor)
    task = asyncio.create_task(monitor.run())

    async def record() -> None:
        async for snap in monitor.subscribe():
            now, wall = time.monotonic(), time.time()
            for v in snap.validators:
                probe.published_at.setdefault(v.description.details, now)
                probe.published_wall.setdefault(v.description.details, wall)

    recorder = asyncio.create_task(record())
    try:
        async with asyncio.timeout(30):
            await probe.signalled.wait()  # the stream is live
            await monitor.wait_for(lambda s: monitor.counters.resyncs_done >= 1)
        yield monitor
    finally:
        recorder.cancel()
        task.cancel()
        for t in (recorder, task):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await queries.close()


def details_of(snapshot: ChainSnapshot, operator: str) -> str:
    v = snapshot.validator(operator)
    return v.description.details if v else ""


def shows(operator: str, details: str, snapshot: ChainSnapshot) -> bool:
    return details_of(snapshot, operator) == details


def resynced_after(monitor: ChainMonitor, done: int) -> Callable[[ChainSnapshot], bool]:
    return lambda _: monitor.counters.resyncs_done > done


async def edits(chain: ProviderChain, count: int) -> None:
    probe = Probe()
    keys = {v.operator: export_key_hex(chain, v) for v in chain.validators[1:]}
    event_lat: list[float] = []
    commit_lat: list[float] = []
    send_lat: list[float] = []
    async with monitor_on(chain, probe) as monitor:
        for i in range(count):
            v = chain.validators[1 + i % (len(chain.validators) - 1)]
            text = f"bench {i} {time.time_ns()} - p2p=10.20.{i // 250}.{i % 250 + 1}"
            burst = EditBurst(chain, v, keys[v.operator])
            sent_at = time.monotonic()
            [tx_hash] = await asyncio.to_thread(burst.run, [text])
            async with asyncio.timeout(30):
                await monitor.wait_for(functools.partial(shows, v.operator, text))
            tx = await asyncio.to_thread(chain.wait_for_tx, tx_hash)
            block_wall = (await asyncio.to_thread(chain.block_time, tx.height)).timestamp()
            published = probe.published_at[text]
            event_lat.append(published - probe.event_at[tx_hash.upper()])
            commit_lat.append(probe.published_wall[text] - block_wall)
            send_lat.append(published - sent_at)
    print(stats("event-to-snapshot", event_lat))
    print(stats("commit(block time)-to-snapshot", commit_lat))
    print(stats("broadcast-to-snapshot", send_lat))


async def burst_in_one_block(chain: ProviderChain, per_validator: int) -> None:
    probe = Probe()
    async with monitor_on(chain, probe) as monitor:
        before = monitor.counters
        texts: dict[str, str] = {}
        threads = []
        for v in chain.validators:
            key = export_key_hex(chain, v)
            batch = [f"burst {v.moniker} {n} - p2p=10.30.0.{n + 1}" for n in range(per_validator)]
            texts[v.operator] = batch[-1]
            threads.append(threading.Thread(target=EditBurst(chain, v, key).run, args=(batch,)))
        for t in threads:
            t.start()
        for t in threads:
            await asyncio.to_thread(t.join)
        async with asyncio.timeout(60):
            await monitor.wait_for(lambda s: all(details_of(s, op) == t for op, t in texts.items()))
        await asyncio.sleep(1.0)  # let late frames of the burst arrive
        after = monitor.counters
        edits_sent = per_validator * len(chain.validators)
        print(
            f"burst: {edits_sent} edits by {len(chain.validators)} validators -> "
            f"{after.validator_queries - before.validator_queries} validator queries in "
            f"{after.refreshes - before.refreshes} refreshes "
            f"({after.stream.events - before.stream.events} events incl. block headers)"
        )


async def registry(chain: ProviderChain, rounds: int = 20) -> None:
    node = chain.nodes[0]
    cold = GrpcQueries(node.grpc_address, page_limit=1)
    t = time.monotonic()
    first = await cold.validators()
    cold_s = time.monotonic() - t
    grpc_times, rest_times = [], []
    rest = RestQueries(node.rest_url, page_limit=1)
    for _ in range(rounds):
        t = time.monotonic()
        await cold.validators()
        grpc_times.append(time.monotonic() - t)
        t = time.monotonic()
        await rest.validators()
        rest_times.append(time.monotonic() - t)
    await cold.close()
    print(f"registry: {len(first.value)} validators, page size 1 ({len(first.value)} pages)")
    print(f"registry load over gRPC, first call (new channel): {cold_s * 1000:.1f}ms")
    print(stats("registry load over gRPC", grpc_times))
    print(stats("registry load over REST", rest_times))
    probe = Probe()
    async with monitor_on(chain, probe) as monitor:
        consumers = len(monitor.snapshot.consumers) if monitor.snapshot else 0
        resync_times = []
        for i in range(rounds):
            done = monitor.counters.resyncs_done
            monitor.hint(Resync(f"bench {i}"))
            async with asyncio.timeout(30):
                await monitor.wait_for(resynced_after(monitor, done))
            resync_times.append(monitor.counters.last_resync_seconds)
    print(stats(f"full resync ({consumers} consumer chains with opted-in sets)", resync_times))


async def restarts(chain: ProviderChain, count: int, label: str, backoff: Backoff | None) -> None:
    probe = Probe()
    rpc_up: list[float] = []
    to_live: list[float] = []
    to_resynced: list[float] = []
    start_to_resynced: list[float] = []
    async with monitor_on(chain, probe, node=0, backoff=backoff) as monitor:
        for _ in range(count):
            resyncs = monitor.counters.resyncs_done
            await asyncio.to_thread(chain.stop_node, 0)
            await asyncio.sleep(2.0)  # the node stays down a while, as in an upgrade
            probe.signalled.clear()
            started = time.monotonic()
            await asyncio.to_thread(chain.start_node, 0)
            rpc_up.append(time.monotonic() - started)  # polled every 0.1 s
            async with asyncio.timeout(120):
                await probe.signalled.wait()
                live = probe.resync_signals[-1][1]
                await monitor.wait_for(resynced_after(monitor, resyncs))
            done = time.monotonic()
            to_live.append(live - started)
            to_resynced.append(done - live)
            start_to_resynced.append(done - started)
            await eventually(
                "chain to produce again", lambda: chain.height(0) > 0, timeout=60, not_yet=any_error
            )
    print(stats(f"reconnect [{label}]: node process start -> its RPC answers", rpc_up))
    print(stats(f"reconnect [{label}]: node process start -> stream live", to_live))
    print(stats(f"reconnect [{label}]: stream live -> resynced", to_resynced))
    print(stats(f"reconnect [{label}]: node process start -> resynced", start_to_resynced))
    each = ", ".join(f"{v * 1000:.0f}" for v in start_to_resynced)
    print(f"reconnect [{label}]: start -> resynced per restart, in order (ms): {each}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ics-bench-chain-") as tmp:
        t = time.monotonic()
        chain = start_provider_chain("bench", Path(tmp) / "chain", size=3)
        try:
            print(f"3-validator provider chain up in {time.monotonic() - t:.1f}s")
            first = chain.height()
            await asyncio.to_thread(chain.wait_for_height, first + 10)
            block = chain.average_block_seconds(first, first + 10)
            print(f"average block time: {block * 1000:.0f}ms")
            if args.consumers:
                for i in range(args.consumers):
                    await asyncio.to_thread(chain.create_consumer, 0, f"bench-{i}-1", None)
            await registry(chain)
            await edits(chain, args.edits)
            await burst_in_one_block(chain, args.burst)
            await restarts(chain, args.restarts, "backoff 1s cap", JitteredBackoff(maximum=1.0))
            await restarts(chain, args.restarts, "default backoff", None)
        finally:
            chain.stop()


if __name__ == "__main__":
    # The stream's reconnect warnings during the restarts are expected; keep the numbers readable.
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=25)
    parser.add_argument("--burst", type=int, default=20, help="edits per validator in the burst")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--consumers", type=int, default=2, help="REGISTERED consumer chains")
    asyncio.run(main(parser.parse_args()))
