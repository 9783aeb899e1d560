"""A consumer chain's Deployment for restart-mode tests, and how to count its rollouts.

No kubelet runs these (no replicas): what a restart is, for the service, is a
change of the peers-hash annotation on the pod template, and every template
change bumps the Deployment's `metadata.generation` (the API server does it),
so generations count rollouts exactly.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from discovery.peers_configmap import PEERS_HASH_ANNOTATION
from lbmanager import pod_annotations_for_key, pod_labels_for_key
from tests.support.lb import model
from tests.support.service_fixtures import Cluster

DEPLOYMENT = "consumer"


def create_deployment(cluster: Cluster, chain_id: str) -> None:
    """The consumer's Deployment (no replicas), safe to roll (Recreate)."""
    labels = pod_labels_for_key(chain_id)
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": cluster.namespace},
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


def rollout(cluster: Cluster) -> tuple[str | None, int]:
    """The pod template's peers hash and the Deployment's generation."""
    d = client.AppsV1Api(cluster.plane.admin_client()).read_namespaced_deployment(
        DEPLOYMENT, cluster.namespace
    )
    annotations = d.spec.template.metadata.annotations or {}
    return annotations.get(PEERS_HASH_ANNOTATION), int(d.metadata.generation or 0)


def set_template_hash(cluster: Cluster, peers_hash: str) -> None:
    """Put a peers hash on the template, as another leader's restart would."""
    client.AppsV1Api(cluster.plane.admin_client()).patch_namespaced_deployment(
        DEPLOYMENT,
        cluster.namespace,
        {"spec": {"template": {"metadata": {"annotations": {PEERS_HASH_ANNOTATION: peers_hash}}}}},
    )
