"""The consumer validator set and spawn time, read over gRPC and REST from the real chain.

Peers come from the consumer chain's validator set (validators with power on
that chain), and ports follow spawn times, so both queries must read the same
over both transports and match what the chain itself reports.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from chainmonitor.queries import GrpcQueries, RestQueries
from chainmonitor.types import ChainSnapshot, ConsumerId, ConsumerPhase
from tests.support.chain import BLOCKS_PER_EPOCH, ProviderChain, parse_rfc3339
from tests.support.chainmonitor_support import running_monitor, snapshot_where

pytestmark = pytest.mark.chain


def validating(snapshot: ChainSnapshot, consumer_id: str) -> set[str]:
    chain = snapshot.consumer(consumer_id)
    return {v.provider_address for v in (chain.validators or ())} if chain else set()


async def test_launched_consumer_has_its_validator_set_and_spawn_time(
    provider_chain3: ProviderChain,
) -> None:
    chain = provider_chain3
    v0, v1, v2 = chain.validators
    chain_id = f"cv-{secrets.token_hex(3)}-1"
    consumer_id = ConsumerId(await asyncio.to_thread(chain.launch_consumer, chain_id, [v0, v1], 0))
    registered = ConsumerId(
        (await asyncio.to_thread(chain.create_consumer, 0, f"cvr-{secrets.token_hex(3)}-1", None))[
            0
        ]
    )

    node = chain.nodes[1]
    grpc = GrpcQueries(node.grpc_address)
    rest = RestQueries(node.rest_url)
    try:
        by_grpc = await grpc.consumer_validators(consumer_id)
        by_rest = await rest.consumer_validators(consumer_id, by_grpc.height)
        spawn_grpc = await grpc.spawn_time(consumer_id, by_grpc.height)
        spawn_rest = await rest.spawn_time(consumer_id, by_grpc.height)
        none_grpc = await grpc.consumer_validators(registered)
        no_spawn = await rest.spawn_time(registered)
        epoch = (await grpc.blocks_per_epoch()).value, (await rest.blocks_per_epoch()).value
    finally:
        await grpc.close()

    assert by_grpc.value == by_rest.value
    # The opted-in validators, and only they, have power on the consumer chain.
    assert {v.provider_address for v in by_grpc.value} == {v0.consensus, v1.consensus}
    assert all(v.power > 0 for v in by_grpc.value)
    assert v2.consensus not in {v.provider_address for v in by_grpc.value}
    raw = chain.rest_get(f"/interchain_security/ccv/provider/consumer_validators/{consumer_id}")
    assert sorted((v["provider_address"], int(v["consumer_power"])) for v in raw["validators"]) == [
        (v.provider_address, v.power) for v in by_grpc.value
    ]

    assert spawn_grpc.value == spawn_rest.value != ""
    on_chain = chain.consumer_chain(consumer_id)["init_params"]["spawn_time"]
    assert parse_rfc3339(spawn_grpc.value) == parse_rfc3339(on_chain)
    # A chain that never launched has no validators and no spawn time.
    assert none_grpc.value == ()
    assert no_spawn.value == ""
    # Validator sets change at epoch ends; the test chain's epochs are short.
    assert epoch == (BLOCKS_PER_EPOCH, BLOCKS_PER_EPOCH)

    # The monitor puts both into the snapshot; a later opt-in reaches the
    # validator set at the epoch end, which no event reports: the monitor
    # reloads consumers there (the resync timer is an hour away).
    async with running_monitor(chain, node=0) as monitor:
        snap = await snapshot_where(
            monitor,
            lambda s: (
                (c := s.consumer(consumer_id)) is not None
                and c.phase is ConsumerPhase.LAUNCHED
                and c.validators is not None
            ),
        )
        launched = snap.consumer(consumer_id)
        assert launched is not None
        assert launched.validators == by_grpc.value
        assert launched.spawn_time == spawn_grpc.value
        assert not snap.rejected_consumers

        resyncs = monitor.counters.resyncs_done
        await asyncio.to_thread(chain.opt_in, v2, consumer_id)
        await snapshot_where(monitor, lambda s: v2.consensus in validating(s, consumer_id))
        assert monitor.counters.resyncs_done == resyncs
