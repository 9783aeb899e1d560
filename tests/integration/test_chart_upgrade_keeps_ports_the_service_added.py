"""`helm upgrade` of a running release never takes away the consumer ports ics-discovery added.

The chart creates the shared LoadBalancer with only `placeholder`; lbmanager
then owns its port list (ports plus the ownership annotation). Helm's
three-way merge on upgrade must keep what lbmanager wrote and still apply the
chart's own changes (here: source ranges); if it puts `placeholder` back, the
next reconcile removes it again without disturbing the consumer port.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from lbmanager import DesiredState, LbSettings
from lbmanager.naming import PORTS_ANNOTATION, service_port_name
from lbmanager.reconciler import LoadBalancerReconciler
from tests.support.helm import values
from tests.support.helm_fixtures import ChartReleases
from tests.support.kube import ControlPlane
from tests.support.lb import chain, create_consumer_pod

pytestmark = [pytest.mark.kube, pytest.mark.helm]

KEY = "consumer-0-1751686503-0"
BASE = {
    "provider.operatorAddress": "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2",
    "provider.rpcUrls": ["http://provider:26657"],
    "loadBalancer.keepOnUninstall": False,
}


def _ports(api: client.ApiClient, namespace: str) -> dict[str, int]:
    svc = client.CoreV1Api(api).read_namespaced_service("p2p-loadbalancer", namespace)
    return {str(p.name): int(p.port) for p in svc.spec.ports}


def test_upgrade_keeps_consumer_ports_and_applies_chart_changes(
    control_plane: ControlPlane,
    chart_releases: ChartReleases,
    kube: client.ApiClient,
    namespace: str,
) -> None:
    consumers = chart_releases.new_namespace("consumers")
    chart_releases.install(values(**BASE, **{"consumers.namespace": consumers}))
    create_consumer_pod(kube, consumers, "consumer-0", KEY, ips=["10.244.1.7"])
    sa = control_plane.service_account_client(namespace, "ics-ics-validator")
    lb_ns = chart_releases.lb_namespace()
    reconciler = LoadBalancerReconciler(sa, LbSettings(namespace=lb_ns))
    desired = DesiredState.of([chain(KEY, 30301, namespace=consumers)])
    assert reconciler.reconcile(desired).ok
    port_name = service_port_name(KEY, "p2p")
    assert _ports(kube, lb_ns) == {port_name: 30301}

    chart_releases.install(
        values(
            **BASE,
            **{
                "consumers.namespace": consumers,
                "loadBalancer.sourceRanges": ["10.0.0.0/8"],
                "log.level": "debug",
            },
        )
    )
    svc = client.CoreV1Api(kube).read_namespaced_service("p2p-loadbalancer", lb_ns)
    assert svc.spec.load_balancer_source_ranges == ["10.0.0.0/8"]
    after_upgrade = _ports(kube, lb_ns)
    assert after_upgrade[port_name] == 30301
    assert set(after_upgrade) <= {port_name, "placeholder"}
    assert PORTS_ANNOTATION in (svc.metadata.annotations or {})

    report = reconciler.reconcile(desired)
    assert report.ok
    assert _ports(kube, lb_ns) == {port_name: 30301}
    # And an unchanged world writes nothing afterwards.
    assert reconciler.reconcile(desired).writes == 0
