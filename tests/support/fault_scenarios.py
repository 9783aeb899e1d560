"""The common plot of the fault-injection tests: a chain change made while a connection is broken.

Alice's cluster runs the service; bob and charlie are the other validators of
the shared three-validator provider chain (their clusters are not needed, only
what they publish). A consumer chain is launched with all three opted in, with
a consumer pod and a consumer StatefulSet (for `restart` mode) in alice's
namespace. In each round a test breaks one connection of the service with the
fault proxy, makes bob publish a new address, waits until the service has met
the fault, heals the proxy, and waits for the peers ConfigMap to carry the new
address. The StatefulSet's generation then counts the restarts: at most one
per peer list (none extra), and the last list's restart is made (none lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from discovery.peers_configmap import PEERS_HASH_ANNOTATION
from lbmanager.consumer_pods import pod_annotations_for_key, pod_labels_for_key
from tests.support.chain import ProviderChain
from tests.support.kube import ControlPlane
from tests.support.polling import eventually
from tests.support.service_fixtures import NAMES, Cluster, RunningService, publish_endpoints

WORKLOAD = "consumer-node"


def validator_cast(plane: ControlPlane, namespace: str, chain: ProviderChain) -> list[Cluster]:
    """alice (whose cluster is real) and bob and charlie (only what they publish is used)."""
    return [Cluster(name, index, plane, namespace, chain) for index, name in enumerate(NAMES)]


def delete_namespace(plane: ControlPlane, name: str) -> None:
    with contextlib.suppress(ApiException):
        client.CoreV1Api(plane.admin_client()).delete_namespace(name)


def peers_of(cast: list[Cluster], port: int, moved: dict[str, str] | None = None) -> str:
    """alice's expected persistent_peers: bob and charlie, sorted."""
    moved = moved or {}
    return ",".join(sorted(c.entry(port, moved.get(c.name)) for c in cast if c.name != "alice"))


# The kubernetes client sends a dict body as it is; its stubs only name the model classes.
def consumer_statefulset(chain_id: str) -> Any:
    """The consumer node's StatefulSet, found by the pod convention (restart mode rolls it)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": WORKLOAD},
        "spec": {
            "replicas": 1,
            "serviceName": WORKLOAD,
            "selector": {"matchLabels": {"app": WORKLOAD}},
            "template": {
                "metadata": {
                    "labels": {"app": WORKLOAD, **pod_labels_for_key(chain_id)},
                    "annotations": pod_annotations_for_key(chain_id),
                },
                "spec": {"containers": [{"name": "node", "image": "registry.invalid/consumer:1"}]},
            },
        },
    }


@dataclass(frozen=True)
class Restarts:
    """What the StatefulSet shows: spec generation and the peers hash on its pod template."""

    generation: int
    peers_hash: str | None


def restarts(alice: Cluster) -> Restarts:
    apps = client.AppsV1Api(alice.plane.admin_client())
    found = apps.read_namespaced_stateful_set(WORKLOAD, alice.namespace)
    annotations = found.spec.template.metadata.annotations or {}
    return Restarts(int(found.metadata.generation or 0), annotations.get(PEERS_HASH_ANNOTATION))


def configmap_peers_hash(alice: Cluster, chain_id: str) -> str | None:
    cm = alice.configmap(chain_id)
    return None if cm is None else str((cm.metadata.annotations or {}).get(PEERS_HASH_ANNOTATION))


@contextlib.asynccontextmanager
async def launched_chain(
    cast: list[Cluster], *, pod_ip: str = "10.244.0.7", workload: bool = True
) -> AsyncIterator[str]:
    """A consumer chain launched with all three opted in; alice has its pod (and workload)."""
    alice = cast[0]
    chain = alice.chain
    chain_id = f"fault-{secrets.token_hex(3)}-1"
    await publish_endpoints(cast)
    await asyncio.to_thread(alice.add_consumer_pod, chain_id, pod_ip)
    if workload:
        apps = client.AppsV1Api(alice.plane.admin_client())
        await asyncio.to_thread(
            apps.create_namespaced_stateful_set, alice.namespace, consumer_statefulset(chain_id)
        )
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        yield chain_id
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
        # Leave the shared chain as other tests expect it.
        await publish_endpoints(cast)


def still_running(running: RunningService) -> None:
    """Raise at once (with the service's own error) when the service ended."""
    if running.task.done():
        running.task.result()
        raise AssertionError("the service stopped on its own")


async def move(cast: list[Cluster], name: str, host: str) -> None:
    """`name` publishes `host` as its new address (a real MsgEditValidator)."""
    c = next(c for c in cast if c.name == name)
    await asyncio.to_thread(c.chain.edit_validator, c.index, details=c.details(host))


async def converged(alice: Cluster, chain_id: str, want: str, what: str) -> None:
    """The peers ConfigMap carries `want` (no ConfigMap yet counts as "not yet")."""
    await eventually(what, lambda: alice.has_peers(chain_id, want))
