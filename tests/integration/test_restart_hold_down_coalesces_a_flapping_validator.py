"""A validator flipping its address does not keep restarting our consumer node.

Against the real apiserver and the real provider chain: alice runs in restart
mode with a hold-down. Once her consumer Deployment carries the first peers,
bob flips his published address several times within the hold-down. Each new
peer list reaches alice's peers ConfigMap at once, but the Deployment's pod
template is left alone until the hold-down ends; then it is rolled exactly once,
with bob's last address. Rollouts are counted by the Deployment's generation
(every pod-template change bumps it).
"""

from __future__ import annotations

import asyncio
import secrets
from functools import partial

import pytest

from discovery.apply.effects import Wake
from discovery.metrics import sample_value
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service
from tests.support.workloads import create_deployment, rollout

pytestmark = [pytest.mark.kube, pytest.mark.chain]

# Long enough for the flips below on a loaded machine (each waits for a block).
HOLD_DOWN = 60.0
FLIPS = ("203.0.113.101", "203.0.113.102", "203.0.113.103")


async def test_flips_within_the_hold_down_cost_exactly_one_restart_after_it(
    clusters: list[Cluster],
) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    chain_id = f"flap-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    await asyncio.to_thread(alice.add_consumer_pod, chain_id, "10.246.0.7")
    await asyncio.to_thread(create_deployment, alice, chain_id)
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        async with running_service(
            alice, notify_default="restart", restart_hold_down=HOLD_DOWN
        ) as a:
            view = await eventually(
                "the chain exposed",
                lambda: (v := a.service.store.current.chain(chain_id)) and v.exposed and v,
                in_thread=False,
            )
            assert view.ports is not None
            assert view.peers is not None
            port = view.ports.ports["p2p"]
            first_hash = view.peers.peers_hash()
            await eventually(
                "the first restart (no hold-down yet)", lambda: rollout(alice)[0] == first_hash
            )
            _, generation = await asyncio.to_thread(rollout, alice)
            started = asyncio.get_running_loop().time()

            for host in FLIPS:
                await asyncio.to_thread(chain.edit_validator, bob.index, details=bob.details(host))
                want = ",".join(sorted([bob.entry(port, host), charlie.entry(port)]))
                await eventually(f"bob at {host}", partial(alice.has_peers, chain_id, want))
                # The ConfigMap follows at once; the workload is not rolled meanwhile.
                peers_hash, now_generation = await asyncio.to_thread(rollout, alice)
                assert (peers_hash, now_generation) == (first_hash, generation)
            flipped = asyncio.get_running_loop().time() - started
            assert flipped < HOLD_DOWN, f"the flips took {flipped:.0f}s: raise HOLD_DOWN"

            last = a.service.store.current.chain(chain_id)
            assert last is not None
            assert last.peers is not None
            last_hash = last.peers.peers_hash()
            await eventually(
                "the one restart when the hold-down ends",
                lambda: rollout(alice)[0] == last_hash,
                timeout=HOLD_DOWN + 120,
            )
            # And nothing more: a full resync later, still exactly one rollout.
            done = a.service.stats.full_reconciles
            a.service.wake(Wake.TIMER)
            await eventually(
                "a resync", lambda: a.service.stats.full_reconciles > done, in_thread=False
            )
            assert await asyncio.to_thread(rollout, alice) == (last_hash, generation + 1)

            text = a.service.metrics.render()[0].decode()
            labels = {"chain_id": chain_id, "reason": "hold_down"}
            assert sample_value(text, "ics_discovery_restarts_suppressed_total", labels) == len(
                FLIPS
            )
            coalesced = sample_value(
                text, "ics_discovery_restarts_coalesced_total", {"chain_id": chain_id}
            )
            assert coalesced == len(FLIPS) - 1
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
        await publish_endpoints(clusters)
