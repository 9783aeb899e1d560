"""A service restarted over an unchanged world converges without a single Kubernetes write.

The first run creates the LoadBalancer port, the EndpointSlice, the peers
ConfigMap and the peers-hash annotation on the consumer's Deployment (restart
mode). A second run, a fresh process's worth of state, reads all of it, finds
it equal to the desired state and writes nothing, neither on its first full
reconcile nor on a periodic resync after it.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import partial
from typing import Any

import pytest
from kubernetes import client

from discovery.apply.effects import Wake
from discovery.peers_configmap import PEERS_HASH_ANNOTATION
from lbmanager import pod_annotations_for_key, pod_labels_for_key
from tests.support.lb import model
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]


def create_deployment(cluster: Cluster, chain_id: str) -> None:
    """The consumer's Deployment (no replicas: no kubelet runs here), safe to roll (Recreate)."""
    labels = pod_labels_for_key(chain_id)
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "consumer", "namespace": cluster.namespace},
        "spec": {
            "replicas": 0,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": pod_annotations_for_key(chain_id)},
                "spec": {"containers": [{"name": "node", "image": "registry.invalid/c:1"}]},
            },
        },
    }
    client.AppsV1Api(cluster.plane.admin_client()).create_namespaced_deployment(
        cluster.namespace, model(client.V1Deployment, body)
    )


def template_peers_hash(cluster: Cluster) -> str | None:
    d = client.AppsV1Api(cluster.plane.admin_client()).read_namespaced_deployment(
        "consumer", cluster.namespace
    )
    annotations = d.spec.template.metadata.annotations or {}
    return annotations.get(PEERS_HASH_ANNOTATION)


async def test_restart_over_an_unchanged_world_writes_nothing(clusters: list[Cluster]) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    chain_id = f"restart-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    await asyncio.to_thread(alice.add_consumer_pod, chain_id, "10.246.0.3")
    await asyncio.to_thread(create_deployment, alice, chain_id)
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        async with running_service(alice, notify_default="restart") as first:
            view = await eventually(
                "the chain exposed",
                lambda: (v := first.service.store.current.chain(chain_id)) and v.exposed and v,
                in_thread=False,
            )
            assert view.ports is not None
            assert view.peers is not None
            port = view.ports.ports["p2p"]
            want = ",".join(sorted([bob.entry(port), charlie.entry(port)]))
            await eventually("the peers ConfigMap", partial(alice.has_peers, chain_id, want))
            await eventually(
                "the Deployment's peers hash",
                lambda: template_peers_hash(alice) == view.peers.peers_hash(),
            )
            assert await asyncio.to_thread(alice.slice_addresses, chain_id) == ["10.246.0.3"]
            written = {segment for _, path in first.writes() for segment in path.split("/")}
            assert {"services", "endpointslices", "configmaps", "deployments"} <= written

        async with running_service(alice, notify_default="restart") as second:
            await eventually(
                "the restarted service converged",
                lambda: (
                    second.service.stats.full_reconciles >= 1
                    and bool((v := second.service.store.current.chain(chain_id)) and v.exposed)
                ),
                in_thread=False,
            )
            # And a periodic resync of the same world writes nothing either.
            done = second.service.stats.full_reconciles
            second.service.wake(Wake.TIMER)
            await eventually(
                "a resync",
                lambda: second.service.stats.full_reconciles > done,
                in_thread=False,
            )
            assert second.writes() == []
            assert second.service.stats.failures == 0
            assert await asyncio.to_thread(alice.persistent_peers, chain_id) == want
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
