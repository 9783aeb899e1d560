"""Two replicas in one cluster: only the Lease holder writes; the standby takes over when it stops.

Both replicas follow the chain and serve the same state, but every write to
Kubernetes (LoadBalancer, EndpointSlices, ConfigMaps) comes from the leader.
When the leader shuts down it releases the Lease, the standby becomes leader
and applies the next on-chain change itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from functools import partial

import pytest

from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]


async def test_only_the_leader_writes_and_the_standby_takes_over(clusters: list[Cluster]) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    chain_id = f"replicas-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    await asyncio.to_thread(alice.add_consumer_pod, chain_id, "10.247.0.4")

    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            running_service(alice, identity="alice-1", leader_election=True)
        )
        await eventually(
            "the first replica leading", lambda: first.service.leading, in_thread=False
        )
        second = await stack.enter_async_context(
            running_service(alice, identity="alice-2", leader_election=True)
        )
        consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
        try:
            view = await eventually(
                "the leader exposing the chain",
                lambda: (v := first.service.store.current.chain(chain_id)) and v.exposed and v,
                in_thread=False,
            )
            assert view.ports is not None
            port = view.ports.ports["p2p"]
            want = ",".join(sorted([bob.entry(port), charlie.entry(port)]))
            await eventually("the peers ConfigMap", partial(alice.has_peers, chain_id, want))
            # The standby knows the same peers (it serves them) but wrote nothing.
            await eventually(
                "the standby's state",
                lambda: (
                    (v := second.service.store.current.chain(chain_id)) is not None
                    and v.peers == view.peers
                ),
                in_thread=False,
            )
            assert not second.service.leading
            assert second.writes() == []
            assert first.writes() != []

            # The leader stops (releasing the Lease); the standby takes over and writes.
            await first.stop()
            await eventually("the standby leading", lambda: second.service.leading, in_thread=False)
            moved = "203.0.113.77"
            await asyncio.to_thread(chain.edit_validator, bob.index, details=bob.details(moved))
            want = ",".join(sorted([bob.entry(port, moved), charlie.entry(port)]))
            await eventually("the new leader's update", partial(alice.has_peers, chain_id, want))
            assert any("/configmaps/" in path for _, path in second.writes())
        finally:
            await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
        await eventually("the new leader cleaning up", partial(alice.withdrawn, chain_id))
