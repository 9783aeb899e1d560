"""Pod changes reach the event loop as a set of chain keys, never an unbounded queue.

A former leader's pod watch once filled a queue nothing read. Now a burst of
any number of pod events, read or not, leaves at most one entry per exposed
chain; closing (leadership lost) stops the watch and forgets what was pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from kubernetes import client

from lbmanager.consumer_pods import PodInfo
from lbmanager.pods import PodChange
from lbmanager.reconciler import LoadBalancerController
from lbmanager.types import ChainKey
from tests.support.polling import eventually


def pod(i: int) -> PodInfo:
    return PodInfo("ns", f"p{i}", f"uid-{i}", (f"10.0.{i // 250}.{i % 250}",), True, False, "Run")


def test_a_burst_of_pod_events_nobody_reads_stays_one_entry_per_chain() -> None:
    async def run() -> None:
        lb = LoadBalancerController(
            client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))
        )

        def affected(changes: Iterable[PodChange]) -> set[ChainKey]:
            return {ChainKey(f"chain-{int(c.new.uid.split('-')[1]) % 3}") for c in changes if c.new}

        lb.reconciler.affected_keys = affected  # type: ignore[method-assign]
        lb._ensure_loop()
        for i in range(20_000):  # from the watch thread's side, as the watcher calls it
            lb._on_pods_changed([PodChange(None, pod(i))])
        await asyncio.sleep(0.05)
        assert lb.pending == {ChainKey("chain-0"), ChainKey("chain-1"), ChainKey("chain-2")}
        await lb.close()
        assert lb.pending == set()
        assert lb.watcher is None

    asyncio.run(run())


def test_the_refresh_loop_takes_everything_pending_at_once() -> None:
    async def run() -> None:
        lb = LoadBalancerController(
            client.ApiClient(client.Configuration(host="http://127.0.0.1:9")), debounce_seconds=0
        )
        seen: list[set[ChainKey]] = []

        def refresh(keys: Iterable[ChainKey]) -> object:
            seen.append(set(keys))

            class Report:
                chains: tuple[object, ...] = ()

            return Report()

        lb.reconciler.refresh_endpoints = refresh  # type: ignore[assignment]
        task = asyncio.create_task(lb.run())
        await asyncio.sleep(0)
        for i in range(1000):
            lb._mark({ChainKey(f"c{i % 4}")})
        try:
            await eventually("a refresh", lambda: seen, timeout=1, interval=0.01, in_thread=False)
        finally:
            task.cancel()
        assert seen[0] == {ChainKey(f"c{i}") for i in range(4)}
        assert lb.pending == set()

    asyncio.run(run())
