"""Adding, changing, removing chains touches exactly their ports and slices, never foreign ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from lbmanager import DesiredState, LbSettings
from lbmanager.errors import InvalidChainSpec, PortNameTaken, PortNumberTaken
from lbmanager.naming import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PORTS_ANNOTATION,
    SERVICE_NAME_LABEL,
    service_port_name,
)
from lbmanager.reconciler import LoadBalancerReconciler
from tests.support.lb import as_json, chain, counting_client, list_slices, model

pytestmark = pytest.mark.kube

SERVICE = "p2p-loadbalancer"


def _foreign_service(api: client.ApiClient, namespace: str) -> None:
    """The Service as the Helm chart creates it, plus a port someone else added."""
    client.CoreV1Api(api).create_namespaced_service(
        namespace,
        model(
            client.V1Service,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"this-will-not-match": "anything"},
                    "allocateLoadBalancerNodePorts": False,
                    "ports": [
                        {"name": "placeholder", "port": 1, "targetPort": 1, "protocol": "TCP"},
                        {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"},
                    ],
                },
            },
        ),
    )


def _foreign_slice(api: client.ApiClient, namespace: str) -> str:
    created = client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(
        namespace,
        model(
            client.V1EndpointSlice,
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "metrics-by-hand",
                    "labels": {
                        SERVICE_NAME_LABEL: SERVICE,
                        MANAGED_BY_LABEL: "someone-else.example.com",
                    },
                },
                "addressType": "IPv4",
                "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.9.9.9"], "conditions": {"ready": True}}],
            },
        ),
    )
    return str(created.metadata.resource_version)


def _ports(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    svc = client.CoreV1Api(api).read_namespaced_service(SERVICE, namespace)
    return [as_json(api, p) for p in svc.spec.ports]


def _our_slices(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    return {
        s.metadata.annotations["lbmanager.ics-discovery.io/key"]: s
        for s in list_slices(api, namespace, f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
    }


def test_empty_desired_state_creates_service_with_only_a_placeholder(
    kube: client.ApiClient, namespace: str
) -> None:
    rec = LoadBalancerReconciler(kube, LbSettings(namespace=namespace))
    report = rec.reconcile(DesiredState())
    assert report.ok
    svc = client.CoreV1Api(kube).read_namespaced_service(SERVICE, namespace)
    assert svc.spec.type == "LoadBalancer"
    assert svc.spec.selector == {"this-will-not-match": "anything"}
    assert [(p.name, p.port) for p in svc.spec.ports] == [("placeholder", 1)]
    assert PORTS_ANNOTATION not in (svc.metadata.annotations or {})

    rec.reconcile(DesiredState.of([chain("testchain-0", 30159)]))
    assert [p["name"] for p in _ports(kube, namespace)] == [service_port_name("testchain-0", "p2p")]

    rec.reconcile(DesiredState())
    assert [(p["name"], p["port"]) for p in _ports(kube, namespace)] == [("placeholder", 1)]
    assert _our_slices(kube, namespace) == {}


def test_changes_touch_exactly_their_chains_and_never_foreign_objects(
    kube: client.ApiClient, namespace: str
) -> None:
    _foreign_service(kube, namespace)
    foreign_slice_rv = _foreign_slice(kube, namespace)
    foreign_port = next(p for p in _ports(kube, namespace) if p["name"] == "metrics")
    rec = LoadBalancerReconciler(kube, LbSettings(namespace=namespace))

    def check_foreign() -> None:
        ports = _ports(kube, namespace)
        assert ports[0] == foreign_port  # unchanged, still first
        s = client.DiscoveryV1Api(kube).read_namespaced_endpoint_slice("metrics-by-hand", namespace)
        assert s.metadata.resource_version == foreign_slice_rv  # never written

    a, b, c = chain("chain-a", 30101), chain("chain-b", 30102), chain("chain-c", 30103)
    report = rec.reconcile(DesiredState.of([a, b, c]))
    assert report.ok
    assert [o.status for o in report.chains] == ["exposed"] * 3
    check_foreign()
    ports = {p["name"]: p for p in _ports(kube, namespace)}
    assert "placeholder" not in ports
    assert {n: p["port"] for n, p in ports.items()} == {
        "metrics": 9100,
        service_port_name("chain-a", "p2p"): 30101,
        service_port_name("chain-b", "p2p"): 30102,
        service_port_name("chain-c", "p2p"): 30103,
    }
    assert all(p["targetPort"] == 26656 for n, p in ports.items() if n != "metrics")
    slices = _our_slices(kube, namespace)
    assert sorted(slices) == ["chain-a", "chain-b", "chain-c"]
    before = {k: s.metadata.resource_version for k, s in slices.items()}
    record = json.loads(
        client.CoreV1Api(kube)
        .read_namespaced_service(SERVICE, namespace)
        .metadata.annotations[PORTS_ANNOTATION]
    )
    assert record["owners"]["ics-discovery"] == {
        k: [service_port_name(k, "p2p")] for k in ("chain-a", "chain-b", "chain-c")
    }

    # Change chain-b's port: only its port and its slice change.
    b2 = chain("chain-b", 30202, target=26666)
    report = rec.reconcile(DesiredState.of([a, b2, c]))
    assert report.ok
    check_foreign()
    ports = {p["name"]: p for p in _ports(kube, namespace)}
    assert ports[service_port_name("chain-b", "p2p")]["port"] == 30202
    assert ports[service_port_name("chain-b", "p2p")]["targetPort"] == 26666
    assert ports[service_port_name("chain-a", "p2p")]["port"] == 30101
    slices = _our_slices(kube, namespace)
    assert slices["chain-a"].metadata.resource_version == before["chain-a"]
    assert slices["chain-c"].metadata.resource_version == before["chain-c"]
    assert slices["chain-b"].ports[0].port == 26666

    # Remove chain-a: exactly its port and slice go.
    report = rec.reconcile(DesiredState.of([b2, c]))
    assert report.removed == ("chain-a",)
    check_foreign()
    names = [p["name"] for p in _ports(kube, namespace)]
    assert names[0] == "metrics"
    assert names[1:] == sorted(names[1:])
    assert set(names) == {
        "metrics",
        service_port_name("chain-b", "p2p"),
        service_port_name("chain-c", "p2p"),
    }
    assert sorted(_our_slices(kube, namespace)) == ["chain-b", "chain-c"]

    # Remove everything: the foreign port remains, so no placeholder comes back.
    rec.reconcile(DesiredState())
    check_foreign()
    assert [p["name"] for p in _ports(kube, namespace)] == ["metrics"]
    assert _our_slices(kube, namespace) == {}
    svc = client.CoreV1Api(kube).read_namespaced_service(SERVICE, namespace)
    assert PORTS_ANNOTATION not in (svc.metadata.annotations or {})


def test_conflicting_or_invalid_chains_are_refused_alone(
    kube: client.ApiClient, namespace: str
) -> None:
    _foreign_service(kube, namespace)
    rec = LoadBalancerReconciler(kube, LbSettings(namespace=namespace))
    desired = DesiredState.of(
        [
            chain("good", 30001),
            chain("wants-foreign-port", 9100),
            chain("first-of-two", 30500),
            chain("second-of-two", 30500),
            chain("bad-port", 70000),
        ]
    )
    report = rec.reconcile(desired)
    status = {o.key: o.status for o in report.chains}
    assert status == {
        "bad-port": "refused",
        "first-of-two": "exposed",
        "good": "exposed",
        "second-of-two": "refused",
        "wants-foreign-port": "refused",
    }
    foreign = report.outcome("wants-foreign-port").error
    assert isinstance(foreign, PortNumberTaken)
    assert "9100/TCP" in str(foreign)
    assert "foreign port 'metrics'" in str(foreign)
    clash = report.outcome("second-of-two").error
    assert isinstance(clash, PortNumberTaken)
    assert "first-of-two" in str(clash)
    assert isinstance(report.outcome("bad-port").error, InvalidChainSpec)
    assert not report.outcome("bad-port").error.transient
    assert sorted(_our_slices(kube, namespace)) == ["first-of-two", "good"]
    assert {p["port"] for p in _ports(kube, namespace)} == {9100, 30001, 30500}

    # Once the holder goes, the refused chain gets the port on the next reconcile.
    report = rec.reconcile(DesiredState.of([chain("good", 30001), chain("second-of-two", 30500)]))
    assert report.ok
    assert sorted(_our_slices(kube, namespace)) == ["good", "second-of-two"]


def test_a_foreign_port_with_our_derived_name_is_never_adopted(
    kube: client.ApiClient, namespace: str
) -> None:
    _foreign_service(kube, namespace)
    name = service_port_name("squatted", "p2p")
    svc = client.CoreV1Api(kube).read_namespaced_service(SERVICE, namespace)
    ports = [as_json(kube, p) for p in svc.spec.ports]
    ports.append({"name": name, "port": 31000, "targetPort": 1, "protocol": "TCP"})
    client.CoreV1Api(kube).patch_namespaced_service(
        SERVICE, namespace, {"spec": {"ports": ports}}, _content_type="application/merge-patch+json"
    )
    rec = LoadBalancerReconciler(kube, LbSettings(namespace=namespace))
    report = rec.reconcile(DesiredState.of([chain("squatted", 31001)]))
    assert isinstance(report.outcome("squatted").error, PortNameTaken)
    after = {p["name"]: p["port"] for p in _ports(kube, namespace)}
    assert after[name] == 31000


def test_unchanged_world_costs_zero_writes(kube: client.ApiClient, namespace: str) -> None:
    api = counting_client(kube)
    rec = LoadBalancerReconciler(api, LbSettings(namespace=namespace))
    desired = DesiredState.of([chain(f"chain-{i}", 30000 + i) for i in range(20)])
    first = rec.reconcile(desired)
    assert first.ok
    # One Service create for all ports, one slice create per chain.
    assert len(api.writes) == 1 + 20 == first.writes
    api.reset()
    again = rec.reconcile(desired)
    assert again.writes == 0
    assert api.writes == []
    # A fresh reconciler (a restarted service) reads the world and writes nothing either.
    fresh = LoadBalancerReconciler(api, LbSettings(namespace=namespace))
    assert fresh.reconcile(desired).writes == 0
    assert api.writes == []
    # Adding one chain costs one Service update and one slice create.
    more = DesiredState.of([*desired.chains, chain("one-more", 31999)])
    assert rec.reconcile(more).ok
    assert sorted(m for m, _ in api.writes) == ["POST", "PUT"]
