"""A consumer created, launched, opted out of and removed on the real provider is in the snapshot.

Each step is a real provider tx (or, for the launch, a block event); the
monitor must reflect the phase and the opted-in set after each, through the
event path (no resync is allowed to paper over a missed step).
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from chainmonitor.types import ChainSnapshot, ConsumerPhase
from tests.support.chain import ProviderChain
from tests.support.chainmonitor_support import running_monitor, snapshot_where

pytestmark = pytest.mark.chain


def phase(snapshot: ChainSnapshot, consumer_id: str) -> ConsumerPhase | None:
    chain = snapshot.consumer(consumer_id)
    return chain.phase if chain else None


def opted_in(snapshot: ChainSnapshot, consumer_id: str) -> tuple[str, ...] | None:
    chain = snapshot.consumer(consumer_id)
    return chain.opted_in if chain else None


async def test_consumer_lifecycle_phases_and_opted_in_sets(
    provider_chain3: ProviderChain,
) -> None:
    chain = provider_chain3
    v0, v1, v2 = chain.validators
    chain_id = f"cm-{secrets.token_hex(3)}-1"

    async with running_monitor(chain, node=0) as monitor:
        resyncs = monitor.counters.resyncs_done
        history: list[tuple[ConsumerPhase | None, tuple[str, ...] | None]] = []
        consumer_id: list[str] = []

        async def record() -> None:
            async for snap in monitor.subscribe():
                if consumer_id:
                    history.append((phase(snap, consumer_id[0]), opted_in(snap, consumer_id[0])))

        recorder = asyncio.create_task(record())

        # Created with a spawn time a few seconds ahead, opted into by v0 and v1, launched.
        launched_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [v0, v1], 0)
        consumer_id.append(launched_id)
        both = tuple(sorted((v0.consensus, v1.consensus)))
        snap = await snapshot_where(
            monitor,
            lambda s: (
                phase(s, launched_id) is ConsumerPhase.LAUNCHED and opted_in(s, launched_id) == both
            ),
        )
        record_ = snap.consumer(launched_id)
        assert record_ is not None
        assert record_.chain_id == chain_id
        assert record_.client_id.startswith("07-tendermint-")
        assert snap.opted_in_operators(launched_id) == tuple(sorted((v0.operator, v1.operator)))
        assert v2.operator not in snap.opted_in_operators(launched_id)

        await asyncio.to_thread(chain.opt_out, v1, launched_id)
        snap = await snapshot_where(monitor, lambda s: opted_in(s, launched_id) == (v0.consensus,))
        assert phase(snap, launched_id) is ConsumerPhase.LAUNCHED
        assert snap.opted_in_operators(launched_id) == (v0.operator,)

        await asyncio.to_thread(chain.remove_consumer, v0, launched_id)
        snap = await snapshot_where(
            monitor, lambda s: phase(s, launched_id) is ConsumerPhase.STOPPED
        )
        # The provider no longer answers the opted-in query for a stopped chain.
        assert opted_in(snap, launched_id) == ()
        assert snap.opted_in_operators(launched_id) == ()
        assert not snap.rejected_consumers

        await asyncio.sleep(0.1)
        recorder.cancel()
        assert monitor.counters.resyncs_done == resyncs, "each step must come from its event"

    # The steps were seen in order. Before the launch the chain may go back from
    # INITIALIZED to REGISTERED (the test bed re-sets a missed spawn time).
    phases = [p for p, _ in history if p is not None]
    launch = phases.index(ConsumerPhase.LAUNCHED)
    stop = phases.index(ConsumerPhase.STOPPED)
    assert set(phases[:launch]) <= {ConsumerPhase.REGISTERED, ConsumerPhase.INITIALIZED}
    assert set(phases[launch:stop]) == {ConsumerPhase.LAUNCHED}
    assert set(phases[stop:]) == {ConsumerPhase.STOPPED}


async def test_registered_consumer_without_spawn_time_lists_its_opted_in_validator(
    provider_chain: ProviderChain,
) -> None:
    chain = provider_chain
    (v0,) = chain.validators
    async with running_monitor(chain, node=0) as monitor:
        consumer_id, _ = await asyncio.to_thread(
            chain.create_consumer, v0, f"cm-reg-{secrets.token_hex(3)}-1", None
        )
        snap = await snapshot_where(
            monitor, lambda s: phase(s, consumer_id) is ConsumerPhase.REGISTERED
        )
        assert opted_in(snap, consumer_id) == ()
        await asyncio.to_thread(chain.opt_in, v0, consumer_id)
        snap = await snapshot_where(monitor, lambda s: opted_in(s, consumer_id) == (v0.consensus,))
        assert phase(snap, consumer_id) is ConsumerPhase.REGISTERED
