"""Three validator clusters for the discovery service's end-to-end tests.

`clusters` gives, for alice, bob and charlie, a real control plane (shared by
the session), a fresh namespace in it (holding the shared LoadBalancer
Service, the consumer pods and the peers ConfigMaps of this test), and one
validator of the shared three-validator provider chain, whose node that
cluster's service talks to. `running_service` starts an in-process
`DiscoveryService` for a cluster with a write-counting Kubernetes client.
Chain transactions block for a block or two, so tests call them through
`asyncio.to_thread`: the services keep running meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chainmonitor.monitor import MonitorSettings
from chainmonitor.stream import StreamSettings
from discovery.peers_configmap import peers_configmap_name
from discovery.service import DiscoveryService
from discovery.settings import Settings, load_settings
from lbmanager.naming import service_port_name, slice_name
from tests.conftest import ControlPlaneFactory, create_namespace, namespace_name
from tests.support.chain import ProviderChain, ProviderNode, ProviderValidator
from tests.support.kube import ControlPlane
from tests.support.lb import CountingApiClient, counting_client, create_consumer_pod
from tests.support.polling import eventually

NAMES = ("alice", "bob", "charlie")
SERVICE_NAME = "p2p-loadbalancer"
# Small timings: a test must not wait for production-sized resync periods.
FAST_MONITOR = MonitorSettings(settle=0.01, resync_interval=600.0)
FAST_STREAM = StreamSettings(ping_interval=5.0, silence_timeout=20.0, healthy_after=5.0)


@dataclass(frozen=True)
class Cluster:
    """One validator's cluster in a test."""

    name: str
    index: int
    plane: ControlPlane
    namespace: str
    chain: ProviderChain

    @property
    def validator(self) -> ProviderValidator:
        return self.chain.validators[self.index]

    @property
    def node(self) -> ProviderNode:
        return self.chain.nodes[self.index]

    @property
    def host(self) -> str:
        """The LoadBalancer address this validator publishes (TEST-NET-3, never dialled)."""
        return f"203.0.113.{11 + self.index}"

    @property
    def node_id(self) -> str:
        return hashlib.sha256(f"consumer-node-{self.name}".encode()).hexdigest()[:40]

    def details(self, host: str | None = None) -> str:
        return f"Validator {self.name} node={self.node_id} p2p={host or self.host}"

    def entry(self, port: int, host: str | None = None) -> str:
        return f"{self.node_id}@{host or self.host}:{port}"

    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.plane.admin_client())

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "provider_rpc_urls": [self.node.rpc_url],
            "provider_grpc_urls": [self.node.grpc_address],
            "operator_address": self.validator.operator,
            "service_name": SERVICE_NAME,
            "service_namespace": self.namespace,
            "consumer_namespace": self.namespace,
            "grpc_listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "leader_election": False,
            "lease_duration": 4.0,
            "renew_deadline": 3.0,
            "retry_period": 0.5,
            # No restart hold-down or publishing limits unless a test is about them.
            "restart_hold_down": 0.0,
            "publish_hold_down": 0.0,
            "publish_min_interval": 0.0,
            "log_format": "text",
            # Test endpoints are documentation and loopback-network addresses.
            "endpoint_profile": "testnet",
        }
        values.update(overrides)
        return load_settings(None, **values)

    # --- reading what the service wrote (blocking; call through asyncio.to_thread) --

    def configmap(self, chain_id: str) -> client.V1ConfigMap | None:
        try:
            return self.core().read_namespaced_config_map(
                peers_configmap_name(chain_id), self.namespace
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def persistent_peers(self, chain_id: str) -> str | None:
        cm = self.configmap(chain_id)
        return None if cm is None else str(cm.data["persistent_peers"])

    def has_peers(self, chain_id: str, want: str) -> bool:
        return self.persistent_peers(chain_id) == want

    def withdrawn(self, chain_id: str) -> bool:
        """No peers ConfigMap, LoadBalancer port or EndpointSlice of the chain is left."""
        return (
            self.configmap(chain_id) is None
            and self.lb_port(chain_id) is None
            and self.slice_addresses(chain_id) is None
        )

    def lb_port(self, chain_id: str) -> int | None:
        """The chain's P2P port on the shared LoadBalancer Service (None when absent)."""
        return self.lb_ports().get(service_port_name(chain_id, "p2p"))

    def lb_ports(self) -> dict[str, int]:
        """Ports of the shared LoadBalancer Service by name ({} when it does not exist)."""
        try:
            svc = self.core().read_namespaced_service(SERVICE_NAME, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return {}
            raise
        return {str(p.name): int(p.port) for p in svc.spec.ports or []}

    def slice_addresses(self, chain_id: str) -> list[str] | None:
        """Endpoint addresses of the chain's IPv4 EndpointSlice (None when it does not exist)."""
        api = client.DiscoveryV1Api(self.plane.admin_client())
        name = slice_name(SERVICE_NAME, chain_id, "IPv4")
        try:
            found = api.read_namespaced_endpoint_slice(name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return sorted(a for e in found.endpoints or [] for a in e.addresses)

    def add_consumer_pod(self, chain_id: str, ip: str) -> None:
        create_consumer_pod(
            self.plane.admin_client(), self.namespace, "consumer-node", chain_id, ips=[ip]
        )


@pytest.fixture
def clusters(
    request: pytest.FixtureRequest,
    control_planes: ControlPlaneFactory,
    provider_chain3: ProviderChain,
) -> Iterator[list[Cluster]]:
    """alice, bob and charlie: each a control plane, a fresh namespace, a validator."""
    name = namespace_name(request.node.nodeid)
    out = []
    for index, cluster in enumerate(NAMES):
        plane = control_planes(cluster)
        create_namespace(plane.admin_client(), name)
        out.append(Cluster(cluster, index, plane, name, provider_chain3))
    yield out
    for c in out:
        with contextlib.suppress(ApiException):
            c.core().delete_namespace(name)


@dataclass
class RunningService:
    cluster: Cluster
    service: DiscoveryService
    api: CountingApiClient
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Graceful stop (as on SIGTERM); waiting again for a stopped service returns at once."""
        self.service.stop()
        async with asyncio.timeout(60):
            await self.task

    def writes(self, *, leases: bool = False) -> list[tuple[str, str]]:
        """Write requests sent so far (Lease requests only when `leases`)."""
        return [w for w in self.api.writes if leases or "/leases" not in w[1]]


@contextlib.asynccontextmanager
async def running_service(
    cluster: Cluster,
    *,
    identity: str | None = None,
    wait_ready: bool = True,
    api: CountingApiClient | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningService]:
    """An in-process service for `cluster`, stopped (gracefully) at the end of the block.

    `api`: the Kubernetes client to give it (default: the cluster's admin credentials).
    """
    api = api or counting_client(cluster.plane.admin_client())
    service = DiscoveryService(
        cluster.settings(**overrides),
        api_client=api,
        identity=identity,
        monitor_settings=FAST_MONITOR,
        stream_settings=FAST_STREAM,
    )
    task = asyncio.create_task(service.run(), name=f"service-{cluster.name}")
    running = RunningService(cluster, service, api, task)
    try:
        if wait_ready:

            def ready() -> bool:
                if task.done():
                    task.result()
                    raise AssertionError(f"{cluster.name}'s service stopped on its own")
                return service.stats.ready_at is not None and (
                    service.monitor.counters.stream.connected
                )

            await eventually(f"{cluster.name}'s service ready", ready, in_thread=False)
        yield running
    finally:
        await running.stop()


async def publish_endpoints(clusters: list[Cluster], hosts: dict[str, str] | None = None) -> None:
    """Every validator publishes its endpoint (in parallel: one key each)."""
    hosts = hosts or {}

    async def one(c: Cluster) -> None:
        await asyncio.to_thread(
            c.chain.edit_validator, c.index, details=c.details(hosts.get(c.name))
        )

    await asyncio.gather(*(one(c) for c in clusters))
