"""Two reconcilers (different owner ids) writing the same Service at once converge to the union."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from kubernetes import client

from lbmanager import DesiredState, LbSettings, ReconcileReport
from lbmanager.errors import KeyExposedByOtherOwner
from lbmanager.naming import MANAGED_BY_LABEL, MANAGED_BY_VALUE, service_port_name
from lbmanager.reconciler import LoadBalancerReconciler
from tests.support.lb import chain, counting_client, list_slices

pytestmark = pytest.mark.kube

SERVICE = "p2p-loadbalancer"


def _in_parallel(*jobs: Callable[[], ReconcileReport]) -> list[ReconcileReport]:
    start = threading.Barrier(len(jobs))
    results: list[ReconcileReport | BaseException | None] = [None] * len(jobs)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    out: list[ReconcileReport] = []
    for r in results:
        if not isinstance(r, ReconcileReport):
            raise AssertionError(f"reconcile failed: {r!r}")
        out.append(r)
    return out


def test_two_reconcilers_with_50_chains_each_lose_nothing(
    kube: client.ApiClient, namespace: str
) -> None:
    alpha_api, beta_api = counting_client(kube), counting_client(kube)
    alpha = LoadBalancerReconciler(alpha_api, LbSettings(namespace=namespace, owner="alpha"))
    beta = LoadBalancerReconciler(beta_api, LbSettings(namespace=namespace, owner="beta"))
    a_chains = [chain(f"alpha-{i:02d}", 30000 + i) for i in range(50)]
    b_chains = [chain(f"beta-{i:02d}", 31000 + i) for i in range(50)]

    # Grow both sets concurrently in steps, so the writers keep racing on the Service.
    conflicts = 0
    for step in (10, 30, 50):
        ra, rb = _in_parallel(
            lambda s=step: alpha.reconcile(DesiredState.of(a_chains[:s])),  # type: ignore[misc]
            lambda s=step: beta.reconcile(DesiredState.of(b_chains[:s])),  # type: ignore[misc]
        )
        assert ra.ok
        assert rb.ok
        conflicts += ra.conflicts + rb.conflicts

    svc = client.CoreV1Api(kube).read_namespaced_service(SERVICE, namespace)
    got = {p.name: p.port for p in svc.spec.ports}
    want = {service_port_name(c.key, "p2p"): c.ports[0].port for c in a_chains + b_chains}
    assert got == want
    slices = list_slices(kube, namespace, f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
    assert len(slices) == 100
    owners = {s.metadata.labels["lbmanager.ics-discovery.io/owner"] for s in slices}
    assert owners == {"alpha", "beta"}

    # Both at rest: nothing to write for either.
    alpha_api.reset()
    beta_api.reset()
    ra, rb = _in_parallel(
        lambda: alpha.reconcile(DesiredState.of(a_chains)),
        lambda: beta.reconcile(DesiredState.of(b_chains)),
    )
    assert ra.writes == rb.writes == 0
    assert alpha_api.writes == beta_api.writes == []

    # Alpha drops 20 chains while beta re-adds its own: beta's ports are untouched.
    ra, rb = _in_parallel(
        lambda: alpha.reconcile(DesiredState.of(a_chains[20:])),
        lambda: beta.reconcile(DesiredState.of(b_chains)),
    )
    assert len(ra.removed) == 20
    assert rb.writes == 0
    svc = client.CoreV1Api(kube).read_namespaced_service(SERVICE, namespace)
    got = {p.name: p.port for p in svc.spec.ports}
    want = {service_port_name(c.key, "p2p"): c.ports[0].port for c in a_chains[20:] + b_chains}
    assert got == want
    print(f"409 conflicts retried while converging: {conflicts}")


def test_a_key_owned_by_another_reconciler_is_refused_not_stolen(
    kube: client.ApiClient, namespace: str
) -> None:
    alpha = LoadBalancerReconciler(kube, LbSettings(namespace=namespace, owner="alpha"))
    beta = LoadBalancerReconciler(kube, LbSettings(namespace=namespace, owner="beta"))
    assert alpha.reconcile(DesiredState.of([chain("shared", 30001)])).ok
    report = beta.reconcile(DesiredState.of([chain("shared", 30001), chain("own", 30002)]))
    assert isinstance(report.outcome("shared").error, KeyExposedByOtherOwner)
    assert report.outcome("own").status == "exposed"
    # Beta giving up its chains never removes alpha's.
    beta.reconcile(DesiredState())
    ports = {
        p.name
        for p in client.CoreV1Api(kube).read_namespaced_service(SERVICE, namespace).spec.ports
    }
    assert ports == {service_port_name("shared", "p2p")}
