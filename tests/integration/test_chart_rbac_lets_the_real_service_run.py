"""The real service, with the chart's settings and the chart's ServiceAccount, is never refused.

The chart is installed into the test control plane pointing at the real
three-validator provider chain; the Deployment's environment (as a kubelet
would resolve it: pod name, the signing key from its Secret) is loaded by the
service's own settings loader, and `DiscoveryService` runs in-process with a
real token of the chart's ServiceAccount. It leads (Lease), exposes a launched
consumer chain on the chart's LoadBalancer, routes it to the consumer pod,
writes the peers ConfigMap, rolls the consumer Deployment, and publishes the
LoadBalancer's new address on chain (with consumer pods anywhere: the node ID
derived from the chart's generated node key secret too). Every request it made is recorded: none
was refused and each is covered by a rule the chart rendered.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from typing import Any

import pytest
from kubernetes import client

from discovery.nodekey import derive_node_key
from discovery.peers_configmap import PEERS_HASH_ANNOTATION, peers_configmap_name
from discovery.service import DiscoveryService
from discovery.settings import ENV_PREFIX, check_files, load_settings
from lbmanager.consumer_pods import pod_annotations_for_key, pod_labels_for_key
from lbmanager.naming import service_port_name
from tests.support.chain import ProviderChain, export_key_hex
from tests.support.helm import (
    RecordingApiClient,
    container_environment,
    covers,
    granted_permissions,
    values,
)
from tests.support.helm_fixtures import ChartReleases
from tests.support.kube import ControlPlane
from tests.support.lb import create_consumer_pod, model
from tests.support.polling import eventually
from tests.support.service_fixtures import (
    FAST_MONITOR,
    FAST_STREAM,
    NAMES,
    Cluster,
    publish_endpoints,
)

pytestmark = [pytest.mark.kube, pytest.mark.helm, pytest.mark.chain]

SA = "ics-ics-validator"
LB = "p2p-loadbalancer"
NEW_ADDRESS = "203.0.113.77"


def _consumer_deployment(api: client.ApiClient, namespace: str, chain_id: str) -> None:
    labels = pod_labels_for_key(chain_id)
    client.AppsV1Api(api).create_namespaced_deployment(
        namespace,
        model(
            client.V1Deployment,
            {
                "metadata": {"name": "consumer-node"},
                "spec": {
                    "selector": {"matchLabels": labels},
                    # One copy of a validator's node at a time: the notifier refuses others.
                    "strategy": {"type": "Recreate"},
                    "template": {
                        "metadata": {
                            "labels": labels,
                            "annotations": pod_annotations_for_key(chain_id),
                        },
                        "spec": {"containers": [{"name": "node", "image": "registry.invalid/c:1"}]},
                    },
                },
            },
        ),
    )


@pytest.mark.parametrize("scope", ["one-namespace", "anywhere"])
async def test_the_service_runs_as_the_charts_service_account(  # noqa: PLR0915 (one scenario)
    scope: str,
    control_plane: ControlPlane,
    chart_releases: ChartReleases,
    kube: client.ApiClient,
    namespace: str,
    provider_chain3: ProviderChain,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain = provider_chain3
    clusters = [Cluster(name, i, control_plane, namespace, chain) for i, name in enumerate(NAMES)]
    me = clusters[0]
    consumers = chart_releases.new_namespace("consumers")
    core = client.CoreV1Api(kube)
    key = await asyncio.to_thread(export_key_hex, chain, me.validator)
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="validator-key"), string_data={"signing-key": key}
        ),
    )
    chart_values: dict[str, Any] = {
        "provider.rpcUrls": [me.node.rpc_url],
        "provider.grpcUrls": [me.node.grpc_address],
        "provider.operatorAddress": me.validator.operator,
        "loadBalancer.keepOnUninstall": False,
        "consumers.notify": "restart",
        "consumers.restartWorkloads": [
            {"kind": "Deployment", "name": "consumer-node", "namespace": consumers}
        ],
        "publishing.enabled": True,
        "publishing.key.existingSecret": "validator-key",
        "leaderElection.leaseDuration": 4,
        "leaderElection.renewDeadline": 3,
        "leaderElection.retryPeriod": 0.5,
        "log.format": "text",
        # The test's LoadBalancer address is a documentation address.
        "endpointPolicy.profile": "testnet",
    }
    if scope == "one-namespace":
        chart_values["consumers.namespace"] = consumers
    else:
        # Consumer pods in any namespace, peers written only where allowed; the
        # chart generates the node key secret and the service publishes its node ID.
        chart_values["consumers.namespace"] = ""
        chart_values["consumers.peersNamespaces"] = [consumers]
        chart_values["nodeKey.generate"] = True
    await asyncio.to_thread(chart_releases.install, values(**chart_values))
    manifest = await asyncio.to_thread(chart_releases.manifest)
    granted = granted_permissions(manifest, namespace, SA)
    await asyncio.to_thread(chart_releases.wait_for_rbac, namespace, SA, granted)
    # The LoadBalancer and its EndpointSlices live in the chart's own namespace,
    # pointing at the consumer pod in another.
    lb_ns = chart_releases.lb_namespace()

    # The settings the pod would load, only the listen addresses moved to free loopback ports.
    pod_secrets = {("validator-key", "signing-key"): key}
    node_id = ""
    if scope == "anywhere":
        generated = core.read_namespaced_secret("ics-ics-validator-node-key-secret", namespace)
        node_secret = base64.b64decode(generated.data["secret"]).decode()
        pod_secrets[("ics-ics-validator-node-key-secret", "secret")] = node_secret
        node_id = derive_node_key(node_secret.encode()).node_id
    env = container_environment(
        manifest, pod_name="ics-ics-validator-7d4b9-x2x7q", secrets=pod_secrets
    )
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(None, grpc_listen="127.0.0.1:0", metrics_listen="127.0.0.1:0")
    check_files(settings)
    assert settings.leader_election
    assert settings.publish_endpoint

    sa = await asyncio.to_thread(control_plane.service_account_client, namespace, SA)
    rec = RecordingApiClient(sa.configuration)
    chain_id = f"chart-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        await asyncio.to_thread(
            create_consumer_pod, kube, consumers, "consumer-node-0", chain_id, ips=["10.244.3.9"]
        )
        await asyncio.to_thread(_consumer_deployment, kube, consumers, chain_id)
        service = DiscoveryService(
            settings,
            api_client=rec,
            monitor_settings=FAST_MONITOR,
            stream_settings=FAST_STREAM,
        )
        task = asyncio.create_task(service.run(), name="service-as-chart-sa")
        try:
            port_name = service_port_name(chain_id, "p2p")

            def exposed() -> bool:
                svc = core.read_namespaced_service(LB, lb_ns)
                return any(p.name == port_name for p in svc.spec.ports)

            await eventually("the chain's port on the chart's LoadBalancer", exposed)

            def peers_written() -> bool:
                found = core.list_namespaced_config_map(
                    consumers, field_selector=f"metadata.name={peers_configmap_name(chain_id)}"
                )
                return bool(found.items)

            await eventually("the peers ConfigMap beside the consumer pod", peers_written)

            def rolled() -> bool:
                d = client.AppsV1Api(kube).read_namespaced_deployment("consumer-node", consumers)
                return PEERS_HASH_ANNOTATION in (d.spec.template.metadata.annotations or {})

            await eventually("the consumer Deployment rolled for its peers", rolled)

            # The load balancer assigns the address (as MetalLB would): it goes on chain.
            await asyncio.to_thread(
                core.patch_namespaced_service_status,
                LB,
                lb_ns,
                {"status": {"loadBalancer": {"ingress": [{"ip": NEW_ADDRESS}]}}},
            )

            def published() -> bool:
                details = chain.staking_validator(me.validator.operator)["description"]["details"]
                return NEW_ADDRESS in str(details)

            await eventually("our new address published on chain", published)
            details = chain.staking_validator(me.validator.operator)["description"]["details"]
            if node_id:
                assert details.endswith(f"node={node_id} p2p={NEW_ADDRESS}"), details
            assert not task.done()
        finally:
            service.stop()
            async with asyncio.timeout(60):
                await task
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)

    assert rec.refused() == [], "requests the chart's RBAC refused"
    used = rec.permissions()
    uncovered = sorted(u for u in used if not any(covers(g, u) for g in granted))
    assert uncovered == []
    # The paths that matter all ran, each under a rule of the chart.
    for ns, group, resource, verb, name in [
        (lb_ns, "", "services", "update", LB),
        (lb_ns, "", "services", "watch", LB),
        (lb_ns, "discovery.k8s.io", "endpointslices", "create", ""),
        (namespace, "coordination.k8s.io", "leases", "create", ""),
        (namespace, "coordination.k8s.io", "leases", "update", "ics-discovery-leader"),
        ("*" if scope == "anywhere" else consumers, "", "pods", "watch", ""),
        (consumers, "", "configmaps", "list", ""),
        (consumers, "", "configmaps", "create", ""),
        (consumers, "apps", "deployments", "update", "consumer-node"),
    ]:
        assert (ns, group, resource, verb, name) in used, (resource, verb)
