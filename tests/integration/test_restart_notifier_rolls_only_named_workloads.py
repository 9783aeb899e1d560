"""`restart` mode with `restart_workloads`: only the named consumer workloads are rolled.

The chart grants `update` on the workloads `consumers.restartWorkloads` names and
nothing else; the service takes the same list, so a workload it may not update is
reported as refused (with what to set), never written, and never a 403 to retry.
Checked against a real API server with admin rights, so the notifier's own scope
is what leaves the other workload alone.
"""

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

pytestmark = pytest.mark.kube

CHAIN = "consumer-a"


def _statefulset(name: str) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name, **pod_labels_for_key(CHAIN)},
                    "annotations": pod_annotations_for_key(CHAIN),
                },
                "spec": {"containers": [{"name": "node", "image": "registry.invalid/c:1"}]},
            },
        },
    }


async def test_a_workload_outside_the_scope_is_refused_and_left_alone(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_stateful_set(namespace, _statefulset("named"))
    apps.create_namespaced_stateful_set(namespace, _statefulset("other"))
    scope = frozenset({("StatefulSet", namespace, "named")})
    notifier = RestartNotifier(KubeRest(control_plane.admin_client()), scope)

    report = await notifier.notify(CHAIN, "hash-1", namespace=namespace)
    assert report.restarted == (WorkloadRef("StatefulSet", namespace, "named"),)
    [(ref, reason)] = report.refused
    assert ref == WorkloadRef("StatefulSet", namespace, "other")
    assert "consumers.restartWorkloads" in reason
    assert report.failed == ()
    other = apps.read_namespaced_stateful_set("other", namespace)
    assert PEERS_HASH_ANNOTATION not in (other.spec.template.metadata.annotations or {})
    named = apps.read_namespaced_stateful_set("named", namespace)
    assert named.spec.template.metadata.annotations[PEERS_HASH_ANNOTATION] == "hash-1"
    assert sum(notifier.writes.values()) == 1
