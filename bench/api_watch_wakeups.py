"""Wake-ups per state change with many WatchPeers streams over many chains.

Before issue 14 every stream waited on the whole state (`StateStore.changes`)
and compared its chain's peers itself, so every change woke every stream. Now a
stream waits on its own chain (`StateStore.peer_changes`). Both are measured
on the same store with S watchers spread over C chains, changing one chain's
peers at a time, then the same through a real gRPC server on 127.0.0.1 (S
WatchPeers streams): wake-ups per change (counted by the store), and the time
from `update` to the changed chain's streams having their message.

    .venv/bin/python -m bench.api_watch_wakeups [--streams 100] [--chains 10] [--changes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb  # noqa: E402
from discovery._proto.ics.discovery.v1.discovery_pb2_grpc import DiscoveryStub  # noqa: E402
from discovery.api import ApiServer  # noqa: E402
from discovery.state import (  # noqa: E402
    ChainPeers,
    DiscoveryState,
    StateStore,
    watched_peers,
)
from tests.support.discovery_states import build_state  # noqa: E402


def toggled(state: DiscoveryState, base: DiscoveryState, chain_id: str) -> DiscoveryState:
    """`state` one block later with `chain_id`'s peers flipped between empty and `base`'s."""
    original = watched_peers(base, chain_id)
    chains = tuple(
        replace(
            c,
            peers=ChainPeers(c.chain_id, c.consumer_id) if c.peers == original else original,
        )
        if c.chain_id == chain_id
        else c
        for c in state.chains
    )
    return replace(state, height=state.height + 1, chains=chains)


async def whole_state_watcher(store: StateStore, chain_id: str, seen: list[int]) -> None:
    """The pre-issue-14 stream: woken by every change, keeps only its chain's."""
    last: ChainPeers | None = None
    first = True
    async for state in store.changes():
        content = watched_peers(state, chain_id)
        if first or content != last:
            first, last = False, content
            seen.append(state.height)


async def chain_watcher(store: StateStore, chain_id: str, seen: list[int]) -> None:
    async for state in store.peer_changes(chain_id):
        seen.append(state.height)


async def in_store(streams: int, chains: int, changes: int, per_chain: bool) -> float:
    base = build_state(chains={str(i): f"chain-{i}" for i in range(1, chains + 1)})
    store = StateStore(base)
    seen: list[list[int]] = [[] for _ in range(streams)]
    watch = chain_watcher if per_chain else whole_state_watcher
    tasks = [
        asyncio.create_task(watch(store, f"chain-{i % chains + 1}", seen[i]))
        for i in range(streams)
    ]
    for _ in range(20):
        await asyncio.sleep(0)
    before = store.wakeups
    for n in range(1, changes + 1):
        store.update(toggled(store.current, base, f"chain-{n % chains + 1}"))
        for _ in range(5):
            await asyncio.sleep(0)
    per_change = (store.wakeups - before) / changes
    store.close()
    await asyncio.gather(*tasks)
    return per_change


async def over_grpc(streams: int, chains: int, changes: int) -> tuple[float, list[float]]:
    base = build_state(chains={str(i): f"chain-{i}" for i in range(1, chains + 1)})
    store = StateStore(base)
    server = ApiServer(store, "127.0.0.1:0", max_streams=streams, max_concurrent_rpcs=streams + 16)
    port = await server.start()
    delays: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = DiscoveryStub(channel)
        calls: list[Any] = [
            stub.WatchPeers(pb.WatchPeersRequest(chain_id=f"chain-{i % chains + 1}"))
            for i in range(streams)
        ]
        for call in calls:
            await call.read()
        while store.waiting < streams:  # noqa: ASYNC110 - polling the store's count
            await asyncio.sleep(0.01)
        before = store.wakeups
        for n in range(1, changes + 1):
            target = n % chains + 1
            mine = [c for i, c in enumerate(calls) if i % chains + 1 == target]
            updated = time.perf_counter()
            store.update(toggled(store.current, base, f"chain-{target}"))
            await asyncio.gather(*(c.read() for c in mine))
            delays.append(time.perf_counter() - updated)
        per_change = (store.wakeups - before) / changes
        for call in calls:
            call.cancel()
    await server.stop(1)
    return per_change, delays


async def main_async(streams: int, chains: int, changes: int) -> None:
    print(
        f"{streams} WatchPeers watchers over {chains} chains, {changes} changes of one chain each"
    )
    old = await in_store(streams, chains, changes, per_chain=False)
    new = await in_store(streams, chains, changes, per_chain=True)
    print(f"  store, whole-state watchers (before): {old:.1f} wake-ups per change")
    print(f"  store, per-chain watchers (after):    {new:.1f} wake-ups per change")
    per_change, delays = await over_grpc(streams, chains, changes)
    print(
        f"  real gRPC server, {streams} streams (after): {per_change:.1f} wake-ups per change; "
        f"update to the chain's streams: median {statistics.median(delays) * 1000:.2f} ms, "
        f"worst {max(delays) * 1000:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main_async(args.streams, args.chains, args.changes))


if __name__ == "__main__":
    main()
