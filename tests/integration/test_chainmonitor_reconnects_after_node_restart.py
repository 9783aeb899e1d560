"""The monitor's node is stopped and restarted: nothing is seen meanwhile, nothing is lost after.

A four-validator chain keeps producing blocks with one node down (3 of 4 is
more than two thirds of the power), so a validator can edit its details while
the monitor's node, and with it the event stream, is gone. After the restart
the client must reconnect, subscribe again and resync, so the edit made during
the outage is in the snapshot; a later edit then arrives as an event.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainmonitor.backoff import JitteredBackoff
from chainmonitor.queries import GrpcQueries
from tests.support.chain import ProviderChain
from tests.support.chain_fixtures import running_provider_chain
from tests.support.chainmonitor_support import details_of, running_monitor, snapshot_where
from tests.support.polling import any_error, eventually

pytestmark = pytest.mark.chain


@pytest.fixture(scope="module")
def provider_chain4(testbed_dir: Path) -> Iterator[ProviderChain]:
    with running_provider_chain("provider4", testbed_dir / "provider4", size=4) as chain:
        yield chain


async def blocks_past(chain: ProviderChain, node: int, height: int) -> None:
    """Wait until `node` has committed `height` (its RPC, polled from a worker thread)."""
    await eventually(
        f"height {height} on node {node}",
        lambda: chain.height(node) >= height,
        timeout=60,
        not_yet=any_error,
    )


async def test_stream_recovers_and_nothing_is_lost_across_a_node_restart(
    provider_chain4: ProviderChain,
) -> None:
    chain = provider_chain4
    v0, v1 = chain.validators[0], chain.validators[1]
    watched = 3
    during = f"Validator {v0.moniker} {secrets.token_hex(4)} - p2p=192.168.97.130"
    after = f"Validator {v1.moniker} {secrets.token_hex(4)} - p2p=192.168.97.131"
    # Reconnect attempts every <= 1 s, so the test does not wait out a long backoff.
    backoff = JitteredBackoff(initial=0.2, maximum=1.0)

    async with running_monitor(chain, node=watched, backoff=backoff) as monitor:
        start = monitor.counters
        assert start.stream.connected
        await asyncio.to_thread(chain.stop_node, watched)
        await eventually(
            "stream to drop",
            lambda: not monitor.counters.stream.connected,
            timeout=30,
            interval=0.02,
            in_thread=False,
        )

        # Committed by the three other validators while the stream is down.
        tx = await asyncio.to_thread(chain.edit_validator, v0, details=during)
        await blocks_past(chain, 0, tx.height + 3)
        snap = monitor.snapshot
        assert snap is not None
        assert details_of(snap, v0) != during, "nothing can be seen while the node is down"
        assert not monitor.counters.stream.connected

        await asyncio.to_thread(chain.start_node, watched)
        snap = await snapshot_where(monitor, lambda s: details_of(s, v0) == during, within=90)
        await eventually(
            "stream live again",
            lambda: monitor.counters.stream.connected,
            timeout=30,
            interval=0.02,
            in_thread=False,
        )
        middle = monitor.counters
        assert middle.stream.reconnects >= start.stream.reconnects + 1
        assert middle.stream.connects >= start.stream.connects + 1
        assert middle.resyncs_done >= start.resyncs_done + 1
        assert middle.stream.resyncs >= start.stream.resyncs + 1

        # Resubscribed: a new edit now arrives as an event, without another resync.
        edit = await asyncio.to_thread(chain.edit_validator, v1, details=after)
        snap = await snapshot_where(monitor, lambda s: details_of(s, v1) == after, within=60)
        assert snap.height >= edit.height
        end = monitor.counters
        assert end.resyncs_done == middle.resyncs_done
        assert end.stream.last_event_height >= edit.height

    # The snapshot is right: it equals a fresh read of the whole registry from another node.
    fresh = GrpcQueries(chain.nodes[0].grpc_address)
    try:
        truth = await fresh.validators(snap.height)
    finally:
        await fresh.close()
    assert snap.validators == truth.value
