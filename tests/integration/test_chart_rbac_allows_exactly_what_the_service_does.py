"""The chart's RBAC grants exactly the requests the service's code makes, checked for real.

The chart is installed with `helm` into the test control plane; then the real
lbmanager reconciler and pod watch, the Lease leader election and the peers
publication (ConfigMaps, workload restarts) run with a real token of the
chart's ServiceAccount. Every request is recorded (the client only observes;
each request goes to the real API server). Then:

- no request was refused (401/403) and every one is covered by a rendered rule;
- every rendered rule was used by some request (nothing granted "just in case");
- a SelfSubjectAccessReview as the ServiceAccount confirms each rule.

Two shapes: consumer pods in one namespace (all namespaced Roles, the
LoadBalancer in the chart's own `<release namespace>-lb`, the two named
workloads restarted, the endpoint published), and consumer pods anywhere (the
one ClusterRole reads pods and finds peers ConfigMaps; the LoadBalancer in a
namespace the values name; no leader election).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client

from discovery.configmap_control import Outcome, PeersConfigMapControl
from discovery.notify import RestartNotifier
from discovery.own_endpoint import IngressWatch
from discovery.peers_configmap import build_peers_configmap
from discovery.workloads import WorkloadRef
from lbmanager import DesiredState, LbSettings
from lbmanager.consumer_pods import POD_KEY_HASH_LABEL, PodScope, pod_labels_for_key
from lbmanager.errors import SliceNameTaken
from lbmanager.kube import KubeRest
from lbmanager.leader import LeaderElector, LeaseConfig
from lbmanager.naming import SERVICE_NAME_LABEL
from lbmanager.paths import workload_path
from lbmanager.pods import PodWatcher
from lbmanager.reconciler import LoadBalancerReconciler
from tests.support.helm import (
    HelmFailed,
    Permission,
    RecordingApiClient,
    covers,
    granted_permissions,
    values,
)
from tests.support.helm_fixtures import ChartReleases
from tests.support.kube import ControlPlane
from tests.support.lb import chain, create_consumer_pod, model, set_pod_status
from tests.support.polling import any_error, eventually, wait_until

pytestmark = [pytest.mark.kube, pytest.mark.helm]

OPERATOR = "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2"
BASE: dict[str, Any] = {
    "provider.operatorAddress": OPERATOR,
    "provider.rpcUrls": ["http://provider:26657"],
    "loadBalancer.keepOnUninstall": False,
}
SA = "ics-ics-validator"
LB = "p2p-loadbalancer"
KEY = "consumer-0-1751686503-0"


def _workloads(api: client.ApiClient, namespace: str) -> None:
    """A consumer Deployment (Recreate: safe to roll) and StatefulSet running KEY."""
    labels = pod_labels_for_key(KEY)
    template: dict[str, Any] = {
        "metadata": {"labels": labels, "annotations": {"ics-discovery.io/chain-id": KEY}},
        "spec": {"containers": [{"name": "node", "image": "registry.invalid/consumer:1"}]},
    }
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        namespace,
        model(
            client.V1Deployment,
            {
                "metadata": {"name": "consumer"},
                "spec": {
                    "selector": {"matchLabels": labels},
                    "strategy": {"type": "Recreate"},
                    "template": template,
                },
            },
        ),
    )
    apps.create_namespaced_stateful_set(
        namespace,
        model(
            client.V1StatefulSet,
            {
                "metadata": {"name": "consumer"},
                "spec": {
                    "serviceName": "consumer",
                    "selector": {"matchLabels": labels},
                    "template": template,
                },
            },
        ),
    )


def _exercise_lbmanager(
    rec: RecordingApiClient,
    admin: client.ApiClient,
    svc_ns: str,
    pods_ns: str | None,
    pod_home: str,
) -> None:
    """Everything lbmanager does to the Service, EndpointSlices and pods, as the chart's SA."""
    reconciler = LoadBalancerReconciler(
        rec, LbSettings(namespace=svc_ns, service_name=LB, owner="ics-discovery")
    )
    desired = DesiredState.of([chain(KEY, 30301, namespace=pods_ns)])
    report = reconciler.reconcile(desired)  # Service update (the chart's), slice create
    assert report.ok, report
    (slice_name,) = report.outcome(KEY).slices

    # The consumer pod moved: its slice is rewritten (update).
    set_pod_status(admin, pod_home, "consumer-0", ips=["10.244.2.9"], ready=True)
    assert reconciler.refresh_endpoints([KEY]).ok

    # The pod watch: list, then watch, across the scope the service would watch.
    watcher = PodWatcher(reconciler.rest, PodScope(pods_ns, POD_KEY_HASH_LABEL), lambda _: None)
    watcher.start()
    try:
        assert watcher.wait_synced(15), watcher.last_error
        wait_until(
            "the pod watch request",
            lambda: any("watch=true" in url for _, url, _s in rec.requests),
            timeout=15,
            not_yet=any_error,
        )
    finally:
        watcher.stop()

    # A slice name taken by someone else: create conflicts, the slice is read (get).
    disc = client.DiscoveryV1Api(admin)
    disc.delete_namespaced_endpoint_slice(slice_name, svc_ns)
    disc.create_namespaced_endpoint_slice(
        svc_ns,
        model(
            client.V1EndpointSlice,
            {
                "metadata": {"name": slice_name, "labels": {SERVICE_NAME_LABEL: LB}},
                "addressType": "IPv4",
                "endpoints": [],
            },
        ),
    )
    taken = reconciler.refresh_endpoints([KEY]).outcome(KEY)
    assert isinstance(taken.error, SliceNameTaken), taken
    disc.delete_namespaced_endpoint_slice(slice_name, svc_ns)
    assert reconciler.refresh_endpoints([KEY]).ok

    # The chain goes: its port leaves the Service (update) and its slice is deleted.
    assert reconciler.reconcile(DesiredState.of([])).ok
    # The Service is gone (deleted by hand): the service creates it again.
    client.CoreV1Api(admin).delete_namespaced_service(LB, svc_ns)
    assert reconciler.reconcile(desired).ok


async def _exercise_leader(rec: RecordingApiClient, namespace: str) -> None:
    elector = LeaderElector(
        KubeRest(rec), LeaseConfig(namespace=namespace, name="ics-discovery-leader", identity="a")
    )
    assert await elector.try_acquire_or_renew()  # create
    assert await elector.try_acquire_or_renew()  # get, update


async def _exercise_own_endpoint(rec: RecordingApiClient, namespace: str) -> None:
    """The service watches its LoadBalancer's address (list, then watch), publishing or not."""
    watch = IngressWatch(KubeRest(rec), namespace, LB, lambda _ingress: None)
    watch.start()
    try:
        await eventually(
            "a watch of the Service",
            lambda: any(
                "watch=true" in url and "fieldSelector=metadata.name" in url
                for _, url, _s in rec.requests
            ),
            timeout=15,
            interval=0.05,
            in_thread=False,
        )
    finally:
        await watch.stop()


async def _exercise_peers(
    rec: RecordingApiClient,
    admin: client.ApiClient,
    namespace: str,
    restart: bool,
    list_scope: str | None,
) -> None:
    """What the service does with peers ConfigMaps; stale ones are looked for in `list_scope`
    (the consumer namespace, or each of consumers.peersNamespaces)."""
    control = PeersConfigMapControl(KubeRest(rec))

    def peers(port: int) -> Any:
        return build_peers_configmap(
            chain_id=KEY,
            consumer_id="0",
            namespace=namespace,
            peers=[],
            left_out=[],
            ports={"p2p": port},
        )

    assert await control.apply(peers(30301)) is Outcome.CREATED
    assert await control.apply(peers(30302)) is Outcome.UPDATED
    managed = [m for m in await control.list_managed(list_scope) if m.namespace == namespace]
    assert [m.chain_id for m in managed] == [KEY]
    assert await control.delete(namespace, managed[0].name) is Outcome.DELETED
    if not restart:
        return

    _workloads(admin, namespace)
    notifier = RestartNotifier(KubeRest(rec))
    report = await notifier.notify(KEY, "a" * 64, namespace=namespace)
    assert {str(r) for r in report.restarted} == {
        f"Deployment {namespace}/consumer",
        f"StatefulSet {namespace}/consumer",
    }, report
    # Someone changes the workload between our read and our write: the notifier
    # re-reads it (get) and writes again.
    apps = client.AppsV1Api(admin)
    touch = {"metadata": {"annotations": {"touched": "yes"}}}
    for kind, patch in (
        ("Deployment", apps.patch_namespaced_deployment),
        ("StatefulSet", apps.patch_namespaced_stateful_set),
    ):
        stale = KubeRest(admin).get(workload_path(kind, namespace, "consumer"))
        assert stale is not None
        patch("consumer", namespace, touch)
        ref = WorkloadRef(kind, namespace, "consumer")
        assert await asyncio.to_thread(notifier._roll, ref, stale, "b" * 64)


def _check_exact(
    plane: ControlPlane, rec: RecordingApiClient, granted: set[Permission], namespace: str
) -> None:
    assert not rec.refused(), rec.refused()
    used = rec.permissions()
    not_granted = sorted(u for u in used if not any(covers(g, u) for g in granted))
    assert not_granted == [], f"requests no rule covers: {not_granted}"
    unused = sorted(g for g in granted if not any(covers(g, u) for u in used))
    assert unused == [], f"granted but never used: {unused}"

    authz = client.AuthorizationV1Api(plane.service_account_client(namespace, SA))
    for ns, group, resource, verb, name in sorted(granted):
        review = authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        namespace=None if ns == "*" else ns,
                        group=group,
                        resource=resource,
                        verb=verb,
                        name=name or None,
                    )
                )
            )
        )
        assert review.status.allowed, (ns, group, resource, verb, name)


def test_consumers_in_one_namespace_get_only_namespaced_roles(
    control_plane: ControlPlane,
    chart_releases: ChartReleases,
    kube: client.ApiClient,
    namespace: str,
) -> None:
    consumers = chart_releases.new_namespace("consumers")
    chart_releases.install(
        values(
            **BASE,
            **{
                "consumers.namespace": consumers,
                "consumers.notify": "restart",
                "consumers.restartWorkloads": [
                    {"kind": "Deployment", "name": "consumer"},
                    {"kind": "StatefulSet", "name": "consumer"},
                ],
                "publishing.enabled": True,
                "publishing.key.existingSecret": "validator-key",
                "provider.grpcUrls": ["provider:9090"],
            },
        )
    )
    lb_ns = chart_releases.lb_namespace()
    manifest = chart_releases.manifest()
    granted = granted_permissions(manifest, namespace, SA)
    assert {g[0] for g in granted} == {namespace, lb_ns, consumers}, "no cluster-wide grant"
    # The release namespace (where the provider node may run): the Lease only.
    assert {g[2] for g in granted if g[0] == namespace} == {"leases"}
    # Workloads: listed to find the chain's, written only by name.
    assert {(g[2], g[3], g[4]) for g in granted if g[1] == "apps"} == {
        ("deployments", "list", ""),
        ("statefulsets", "list", ""),
        ("deployments", "get", "consumer"),
        ("deployments", "update", "consumer"),
        ("statefulsets", "get", "consumer"),
        ("statefulsets", "update", "consumer"),
    }
    chart_releases.wait_for_rbac(namespace, SA, granted)

    create_consumer_pod(kube, consumers, "consumer-0", KEY, ips=["10.244.1.7"])
    sa = control_plane.service_account_client(namespace, SA)
    rec = RecordingApiClient(sa.configuration)
    _exercise_lbmanager(rec, kube, lb_ns, consumers, consumers)

    async def rest_of_service() -> None:
        await _exercise_own_endpoint(rec, lb_ns)
        await _exercise_leader(rec, namespace)
        await _exercise_peers(rec, kube, consumers, restart=True, list_scope=consumers)

    asyncio.run(rest_of_service())
    _check_exact(control_plane, rec, granted, namespace)


def test_consumers_anywhere_read_pods_cluster_wide_and_nothing_else(
    control_plane: ControlPlane,
    chart_releases: ChartReleases,
    kube: client.ApiClient,
    namespace: str,
) -> None:
    edge = chart_releases.new_namespace("edge")
    consumers = chart_releases.new_namespace("consumers")
    peers = chart_releases.new_namespace("peers")
    # A LoadBalancer namespace that exists already is used, not taken over.
    with pytest.raises(HelmFailed) as taken:
        chart_releases.install(values(**BASE, **{"loadBalancer.namespace": edge}))
    assert "set loadBalancer.createNamespace=false" in taken.value.stderr
    chart_releases.install(
        values(
            **BASE,
            **{
                "loadBalancer.namespace": edge,
                "loadBalancer.createNamespace": False,
                "consumers.namespace": "",
                "consumers.peersNamespaces": [peers],
                "consumers.notify": "dial",
                "leaderElection.enabled": False,
            },
        )
    )
    granted = granted_permissions(chart_releases.manifest(), namespace, SA)
    cluster_wide = {g for g in granted if g[0] == "*"}
    assert cluster_wide == {
        ("*", "", "pods", "list", ""),
        ("*", "", "pods", "watch", ""),
    }
    assert {g[0] for g in granted} == {"*", edge, peers}
    chart_releases.wait_for_rbac(namespace, SA, granted)

    create_consumer_pod(kube, consumers, "consumer-0", KEY, ips=["10.244.1.8"])
    sa = control_plane.service_account_client(namespace, SA)
    rec = RecordingApiClient(sa.configuration)
    _exercise_lbmanager(rec, kube, edge, None, consumers)

    async def rest_of_service() -> None:
        await _exercise_own_endpoint(rec, edge)
        await _exercise_peers(rec, kube, peers, restart=False, list_scope=peers)

    asyncio.run(rest_of_service())
    _check_exact(control_plane, rec, granted, namespace)
