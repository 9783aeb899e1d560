"""`restart` mode: the peers hash on a consumer's pod template makes Kubernetes roll it."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from discovery.notify import RestartNotifier
from discovery.peers_configmap import PEERS_HASH_ANNOTATION
from discovery.workloads import WorkloadRef
from lbmanager.consumer_pods import pod_annotations_for_key, pod_labels_for_key
from lbmanager.kube import KubeRest
from tests.support.kube import ControlPlane
from tests.support.polling import any_error, wait_until

pytestmark = pytest.mark.kube

CHAIN = "consumer-a"


def pod_template(app: str, chain: str) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {"app": app, **pod_labels_for_key(chain)},
            "annotations": pod_annotations_for_key(chain),
        },
        "spec": {"containers": [{"name": "node", "image": "registry.invalid/consumer:1"}]},
    }


# The kubernetes client sends a dict body as it is; its stubs only name the model classes.
def deployment(name: str, chain: str, strategy: dict[str, Any] | None) -> Any:
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": name}},
        "template": pod_template(name, chain),
    }
    if strategy is not None:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def statefulset(name: str, chain: str) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, chain),
        },
    }


def replica_sets(apps: client.AppsV1Api, namespace: str, owner: str) -> list[client.V1ReplicaSet]:
    items = apps.list_namespaced_replica_set(namespace).items
    return [
        rs for rs in items if any(ref.name == owner for ref in (rs.metadata.owner_references or []))
    ]


def revisions(apps: client.AppsV1Api, namespace: str, owner: str) -> int:
    items = apps.list_namespaced_controller_revision(namespace).items
    owned = [r for r in items if any(o.name == owner for o in (r.metadata.owner_references or []))]
    return len(owned)


async def test_recreate_deployment_rolls_once_per_peer_change(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment(namespace, deployment("node-a", CHAIN, {"type": "Recreate"}))
    apps.create_namespaced_deployment(namespace, deployment("node-other", "consumer-b", None))
    wait_until(
        "the first ReplicaSet",
        lambda: len(replica_sets(apps, namespace, "node-a")) == 1,
        timeout=60,
        not_yet=any_error,
    )
    notifier = RestartNotifier(KubeRest(control_plane.admin_client()))

    report = await notifier.notify(CHAIN, "hash-1", namespace=namespace)
    assert report.restarted == (WorkloadRef("Deployment", namespace, "node-a"),)
    assert report.refused == report.failed == ()
    wait_until(
        "a new ReplicaSet",
        lambda: len(replica_sets(apps, namespace, "node-a")) == 2,
        timeout=60,
        not_yet=any_error,
    )
    hashes = {
        (rs.spec.template.metadata.annotations or {}).get(PEERS_HASH_ANNOTATION)
        for rs in replica_sets(apps, namespace, "node-a")
    }
    assert hashes == {None, "hash-1"}

    # The generation counts spec changes only (the controller keeps writing status).
    generation = apps.read_namespaced_deployment("node-a", namespace).metadata.generation
    again = await notifier.notify(CHAIN, "hash-1", namespace=namespace)
    assert again.unchanged == (WorkloadRef("Deployment", namespace, "node-a"),)
    assert again.restarted == ()
    assert apps.read_namespaced_deployment("node-a", namespace).metadata.generation == generation
    assert dict(notifier.writes) == {"Deployment": 1}

    other = apps.read_namespaced_deployment("node-other", namespace)
    assert PEERS_HASH_ANNOTATION not in (other.spec.template.metadata.annotations or {})


async def test_surging_deployment_is_refused_and_left_alone(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment(namespace, deployment("node-a", CHAIN, None))
    before = apps.read_namespaced_deployment("node-a", namespace).metadata.generation
    notifier = RestartNotifier(KubeRest(control_plane.admin_client()))
    report = await notifier.notify(CHAIN, "hash-1", namespace=namespace)
    [(ref, reason)] = report.refused
    assert ref == WorkloadRef("Deployment", namespace, "node-a")
    assert "double-sign" in reason
    assert report.restarted == ()
    after = apps.read_namespaced_deployment("node-a", namespace)
    assert after.metadata.generation == before
    assert PEERS_HASH_ANNOTATION not in (after.spec.template.metadata.annotations or {})
    assert sum(notifier.writes.values()) == 0


async def test_statefulset_gets_a_new_revision(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_stateful_set(namespace, statefulset("node-a", CHAIN))
    wait_until(
        "the first revision",
        lambda: revisions(apps, namespace, "node-a") == 1,
        timeout=60,
        not_yet=any_error,
    )
    notifier = RestartNotifier(KubeRest(control_plane.admin_client()))
    report = await notifier.notify(CHAIN, "hash-2", namespace=namespace)
    assert report.restarted == (WorkloadRef("StatefulSet", namespace, "node-a"),)
    wait_until(
        "a second revision",
        lambda: revisions(apps, namespace, "node-a") == 2,
        timeout=60,
        not_yet=any_error,
    )
    sts = apps.read_namespaced_stateful_set("node-a", namespace)
    assert sts.spec.template.metadata.annotations[PEERS_HASH_ANNOTATION] == "hash-2"
