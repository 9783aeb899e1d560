"""Without a configured consumer namespace, the peers ConfigMap follows the consumer pods.

The ConfigMap must live beside the consumer node that mounts it. Before any
consumer pod exists the service cannot know where that is: it writes nothing
and says why in its API. When a pod appears, the pod watch wakes the loop (the
resync timer is far away) and the ConfigMap is written in the pod's namespace.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import partial

import pytest

from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]


async def test_configmap_is_written_where_the_pod_appears(clusters: list[Cluster]) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    chain_id = f"follow-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        async with running_service(alice, consumer_namespace=None, resync_interval=3600.0) as a:
            view = await eventually(
                "the chain exposed",
                lambda: (v := a.service.store.current.chain(chain_id)) and v.exposed and v,
                in_thread=False,
            )
            assert "no consumer pod found" in view.problem
            assert await asyncio.to_thread(alice.configmap, chain_id) is None

            port = view.ports.ports["p2p"]
            await asyncio.to_thread(alice.add_consumer_pod, chain_id, "10.248.0.2")
            want = ",".join(sorted([bob.entry(port), charlie.entry(port)]))
            await eventually("the ConfigMap by the pod", partial(alice.has_peers, chain_id, want))
            await eventually(
                "the problem cleared",
                lambda: (
                    (v := a.service.store.current.chain(chain_id)) is not None and v.problem == ""
                ),
                in_thread=False,
            )
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
