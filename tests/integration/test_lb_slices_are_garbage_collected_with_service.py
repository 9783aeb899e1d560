"""Deleting the Service garbage-collects our slices (ownerReference); a reconcile restores all."""

from __future__ import annotations

import pytest
from kubernetes import client

from lbmanager import DesiredState, LbSettings
from lbmanager.naming import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from lbmanager.reconciler import LoadBalancerReconciler
from tests.support.lb import chain, list_slices
from tests.support.polling import any_error, wait_until

pytestmark = pytest.mark.kube

SERVICE = "p2p-loadbalancer"


def test_service_deletion_collects_slices_and_reconcile_restores_them(
    kube: client.ApiClient, namespace: str
) -> None:
    rec = LoadBalancerReconciler(kube, LbSettings(namespace=namespace))
    desired = DesiredState.of([chain("gc-a", 30001), chain("gc-b", 30002)])
    assert rec.reconcile(desired).ok
    ours = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
    assert len(list_slices(kube, namespace, ours)) == 2
    old_uid = client.CoreV1Api(kube).read_namespaced_service(SERVICE, namespace).metadata.uid

    client.CoreV1Api(kube).delete_namespaced_service(SERVICE, namespace)
    # kube-controller-manager's garbage collector follows the ownerReferences.
    wait_until(
        "slices collected",
        lambda: list_slices(kube, namespace, ours) == [],
        timeout=60,
        not_yet=any_error,
    )

    report = rec.reconcile(desired)
    assert report.ok
    svc = client.CoreV1Api(kube).read_namespaced_service(SERVICE, namespace)
    assert svc.metadata.uid != old_uid
    slices = list_slices(kube, namespace, ours)
    assert len(slices) == 2
    assert {s.metadata.owner_references[0].uid for s in slices} == {svc.metadata.uid}
