"""The state store hands every watcher the current state, then only the latest change."""

from __future__ import annotations

import asyncio

from discovery.state import DiscoveryState, StateStore


async def _next(it: object) -> DiscoveryState:
    return await asyncio.wait_for(anext(it), 2)  # type: ignore[call-overload]


async def test_watcher_gets_current_state_then_changes() -> None:
    store = StateStore(DiscoveryState(height=1))
    changes = store.changes()
    assert (await _next(changes)).height == 1
    waiting = asyncio.ensure_future(_next(changes))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert store.update(DiscoveryState(height=2))
    assert (await waiting).height == 2


async def test_slow_watcher_skips_to_the_latest_state() -> None:
    store = StateStore(DiscoveryState(height=1))
    changes = store.changes()
    await _next(changes)
    for h in range(2, 50):
        store.update(DiscoveryState(height=h))
    assert (await _next(changes)).height == 49


async def test_equal_state_is_not_a_change() -> None:
    store = StateStore(DiscoveryState(height=5))
    assert not store.update(DiscoveryState(height=5))
    assert store.version == 0


async def test_stop_and_close_end_iterations() -> None:
    store = StateStore()
    stopped = asyncio.Event()
    watched = store.changes(stopped)
    await _next(watched)
    pending = asyncio.ensure_future(_next(watched))
    await asyncio.sleep(0.01)
    stopped.set()
    store.wake()
    try:
        await pending
        raise AssertionError("the iteration should have ended")
    except StopAsyncIteration:
        pass
    other = store.changes()
    await _next(other)
    store.close()
    try:
        await _next(other)
        raise AssertionError("the iteration should have ended")
    except StopAsyncIteration:
        pass
