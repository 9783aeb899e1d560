"""What only a real API server with its controllers does: validation, GC, status subresource."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.polling import any_error, wait_until

pytestmark = pytest.mark.kube


def _lb_service(name: str, ports: list[client.V1ServicePort]) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(
            type="LoadBalancer",
            selector={"this-will-not-match": "anything"},
            allocate_load_balancer_node_ports=False,
            ports=ports,
        ),
    )


def test_loadbalancer_service_with_placeholder_port_is_created(
    kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    svc = _lb_service(
        "p2p-loadbalancer",
        [client.V1ServicePort(name="placeholder", port=1, target_port=1, protocol="TCP")],
    )
    core.create_namespaced_service(namespace, svc)
    got = core.read_namespaced_service("p2p-loadbalancer", namespace)
    assert got.spec.type == "LoadBalancer"
    assert got.spec.allocate_load_balancer_node_ports is False
    assert got.spec.selector == {"this-will-not-match": "anything"}
    assert [(p.name, p.port) for p in got.spec.ports] == [("placeholder", 1)]
    # The server allocated a cluster IP from the configured range: it is a real API server.
    assert got.spec.cluster_ip.startswith("10.0.")
    # No node port was allocated because allocateLoadBalancerNodePorts is false.
    assert got.spec.ports[0].node_port is None


def test_service_port_with_invalid_name_is_rejected(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    svc = _lb_service(
        "bad-port-name",
        [client.V1ServicePort(name="Consumer_Chain.1", port=30301, protocol="TCP")],
    )
    with pytest.raises(ApiException) as err:
        core.create_namespaced_service(namespace, svc)
    assert err.value.status == 422
    assert "spec.ports[0].name" in err.value.body


def test_endpointslice_with_own_manager_reads_back(kube: client.ApiClient, namespace: str) -> None:
    disc = client.DiscoveryV1Api(kube)
    slice_ = client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(
            name="consumer-testchain-0",
            labels={
                "kubernetes.io/service-name": "p2p-loadbalancer",
                "endpointslice.kubernetes.io/managed-by": "ics-discovery.test",
            },
        ),
        address_type="IPv4",
        ports=[
            client.DiscoveryV1EndpointPort(name="consumer-testchain-0", port=26656, protocol="TCP")
        ],
        endpoints=[
            client.V1Endpoint(
                addresses=["10.244.1.7"],
                conditions=client.V1EndpointConditions(ready=True, serving=True, terminating=False),
            )
        ],
    )
    disc.create_namespaced_endpoint_slice(namespace, slice_)
    got = disc.read_namespaced_endpoint_slice("consumer-testchain-0", namespace)
    assert got.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "ics-discovery.test"
    assert got.metadata.labels["kubernetes.io/service-name"] == "p2p-loadbalancer"
    assert got.endpoints[0].addresses == ["10.244.1.7"]
    assert got.ports[0].port == 26656
    listed = disc.list_namespaced_endpoint_slice(
        namespace, label_selector="endpointslice.kubernetes.io/managed-by=ics-discovery.test"
    )
    assert [s.metadata.name for s in listed.items] == ["consumer-testchain-0"]


def test_endpointslice_owned_by_service_is_garbage_collected(
    kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    disc = client.DiscoveryV1Api(kube)
    svc = core.create_namespaced_service(
        namespace,
        _lb_service("owner", [client.V1ServicePort(name="placeholder", port=1, protocol="TCP")]),
    )
    slice_ = client.V1EndpointSlice(
        metadata=client.V1ObjectMeta(
            name="owned",
            labels={"endpointslice.kubernetes.io/managed-by": "ics-discovery.test"},
            owner_references=[
                client.V1OwnerReference(
                    api_version="v1", kind="Service", name="owner", uid=str(svc.metadata.uid)
                )
            ],
        ),
        address_type="IPv4",
        endpoints=[],
    )
    disc.create_namespaced_endpoint_slice(namespace, slice_)
    core.delete_namespaced_service("owner", namespace)

    def gone() -> bool:
        try:
            disc.read_namespaced_endpoint_slice("owned", namespace)
        except ApiException as e:
            return bool(e.status == 404)
        return False

    wait_until("garbage collection of the owned EndpointSlice", gone, timeout=30, not_yet=any_error)


def test_loadbalancer_ingress_is_set_through_status_subresource(
    kube: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service(
        namespace,
        _lb_service("lb", [client.V1ServicePort(name="placeholder", port=1, protocol="TCP")]),
    )
    # A write of status through the main resource is ignored by the server...
    core.patch_namespaced_service(
        "lb", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": "192.168.97.110"}]}}}
    )
    assert core.read_namespaced_service("lb", namespace).status.load_balancer.ingress is None
    # ...and accepted through the status subresource, as MetalLB writes it.
    core.patch_namespaced_service_status(
        "lb", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": "192.168.97.110"}]}}}
    )
    ingress = core.read_namespaced_service("lb", namespace).status.load_balancer.ingress
    assert [i.ip for i in ingress] == ["192.168.97.110"]
