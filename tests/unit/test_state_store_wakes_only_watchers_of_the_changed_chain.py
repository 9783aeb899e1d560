"""A watcher of one chain's peers wakes only when that chain's peers change.

Wake-ups are counted by the store itself (`StateStore.wakeups`): a change to
chain X must not wake a watcher of chain Y, a new height alone wakes no peer
watcher, and watchers that go away leave nothing behind in the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from discovery.state import (
    ChainPeers,
    DiscoveryState,
    StateStore,
    changed_chains,
    watched_peers,
)
from tests.support.discovery_states import build_state

CHAINS = {str(i): f"chain-{i}" for i in range(1, 6)}
BASE = build_state(chains=CHAINS)


def _without_peers(state: DiscoveryState, chain_ids: set[str], height: int) -> DiscoveryState:
    """`state` at `height`, the chains in `chain_ids` with an empty peer list."""
    chains = tuple(
        replace(c, peers=ChainPeers(c.chain_id, c.consumer_id)) if c.chain_id in chain_ids else c
        for c in state.chains
    )
    return replace(state, height=height, chains=chains)


async def _next(it: AsyncIterator[DiscoveryState]) -> DiscoveryState:
    return await asyncio.wait_for(anext(it), 2)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_change_to_one_chain_wakes_only_its_watchers() -> None:
    store = StateStore(BASE)
    on_1 = [store.peer_changes("chain-1") for _ in range(3)]
    on_2 = [store.peer_changes("chain-2") for _ in range(3)]
    for it in on_1 + on_2:
        assert (await _next(it)).height == BASE.height
    pending_1 = [asyncio.ensure_future(_next(it)) for it in on_1]
    pending_2 = [asyncio.ensure_future(_next(it)) for it in on_2]
    await _settle()
    assert store.watched_chains == 2
    assert store.waiting == 6
    assert store.wakeups == 0

    # Only chain-1's peers change: its three watchers wake, chain-2's do not.
    assert store.update(_without_peers(BASE, {"chain-1"}, BASE.height + 1))
    got = await asyncio.gather(*pending_1)
    assert [s.height for s in got] == [BASE.height + 1] * 3
    await _settle()
    assert store.wakeups == 3
    assert not any(p.done() for p in pending_2)

    # A new height with the same peers everywhere is no change for any peer watcher.
    pending_1 = [asyncio.ensure_future(_next(it)) for it in on_1]
    assert store.update(_without_peers(BASE, {"chain-1"}, BASE.height + 2))
    await _settle()
    assert store.wakeups == 3
    assert not any(p.done() for p in pending_1 + pending_2)

    # Now chain-2 changes: its watchers see the latest state, chain-1's stay asleep.
    assert store.update(_without_peers(BASE, {"chain-1", "chain-2"}, BASE.height + 3))
    got = await asyncio.gather(*pending_2)
    assert [s.height for s in got] == [BASE.height + 3] * 3
    await _settle()
    assert store.wakeups == 6
    assert not any(p.done() for p in pending_1)

    for p in pending_1:
        p.cancel()
    await asyncio.gather(*pending_1, return_exceptions=True)
    for it in on_1 + on_2:
        await it.aclose()  # type: ignore[attr-defined]
    assert store.watched_chains == 0
    assert store.waiting == 0


async def test_whole_state_watchers_still_wake_on_every_change() -> None:
    store = StateStore(BASE)
    everything = store.changes()
    await _next(everything)
    waiting = asyncio.ensure_future(_next(everything))
    await _settle()
    assert store.update(replace(BASE, height=BASE.height + 1))
    assert (await waiting).height == BASE.height + 1
    assert store.wakeups == 1


async def test_a_chain_that_appears_or_goes_wakes_its_watchers() -> None:
    store = StateStore(build_state(chains={"1": "chain-1"}))
    later = store.peer_changes("chain-2")
    first = await _next(later)
    assert watched_peers(first, "chain-2") is None
    waiting = asyncio.ensure_future(_next(later))
    await _settle()
    store.update(build_state(chains={"1": "chain-1", "2": "chain-2"}))
    assert watched_peers(await waiting, "chain-2") is not None
    waiting = asyncio.ensure_future(_next(later))
    await _settle()
    store.update(build_state(chains={"1": "chain-1"}, height=101))
    assert watched_peers(await waiting, "chain-2") is None


async def test_stop_and_close_end_peer_watchers() -> None:
    store = StateStore(BASE)
    stopped = asyncio.Event()
    watched = store.peer_changes("chain-1", stopped)
    await _next(watched)
    pending = asyncio.ensure_future(_next(watched))
    await _settle()
    stopped.set()
    store.wake()
    try:
        await pending
        raise AssertionError("the iteration should have ended")
    except StopAsyncIteration:
        pass
    other = store.peer_changes("chain-3")
    await _next(other)
    pending = asyncio.ensure_future(_next(other))
    await _settle()
    store.close()
    try:
        await pending
        raise AssertionError("the iteration should have ended")
    except StopAsyncIteration:
        pass
    assert store.watched_chains == 0


@given(
    changed=st.sets(st.sampled_from(sorted(CHAINS.values()))),
    watched=st.sets(st.sampled_from([*sorted(CHAINS.values()), "chain-absent"])),
)
def test_changed_chains_names_exactly_the_watched_chains_that_changed(
    changed: set[str], watched: set[str]
) -> None:
    after = _without_peers(BASE, changed, BASE.height + 1)
    assert set(changed_chains(BASE, after, sorted(watched))) == changed & watched
    assert changed_chains(after, after, sorted(watched)) == []
