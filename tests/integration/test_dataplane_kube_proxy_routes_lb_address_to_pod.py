"""A real kube-proxy routes a cluster's LoadBalancer address:port, as lbmanager wrote it, to the
consumer pod: from another cluster's node and pod, after the pod's IP changes, and not for an
address planned outside the shared subnet. Teardown leaves nothing, the host untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from discovery.ports import derive_ports
from lbmanager import DesiredState, LbSettings
from lbmanager.reconciler import LoadBalancerController
from tests.conftest import ControlPlaneFactory, create_namespace, namespace_name
from tests.support import dataplane, netlab
from tests.support.lb import chain, create_consumer_pod, set_pod_status
from tests.support.polling import eventually
from tests.support.procs import pids_alive

pytestmark = [pytest.mark.kube, pytest.mark.netns]

CLUSTERS = ["alice", "bob", "charlie"]
CHAIN_ID = "consumer-dp-1"
KEY = "1-consumer-dp-1"
P2P = derive_ports(CHAIN_ID).p2p


@dataclass
class Bed:
    net: netlab.Network
    dp: dataplane.DataPlane
    api: client.ApiClient
    namespace: str
    wrong_namespace: str
    pools: dict[str, tuple[str, str]]

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        """kube-proxy's, MetalLB's and the relays' logs, shown when a test fails."""
        return self.dp.log_tails(lines)


@pytest.fixture
def bed(
    request: pytest.FixtureRequest, control_planes: ControlPlaneFactory, tmp_path: Path
) -> Iterator[Bed]:
    before = netlab.root_network_state()
    plane = control_planes("alice")
    api = plane.admin_client()
    ns = create_namespace(api, namespace_name(request.node.nodeid))
    wrong_ns = create_namespace(api, ns[:50] + "-wrong")
    net = netlab.build_network(CLUSTERS, workdir=tmp_path)
    dp = dataplane.DataPlane(net)
    pids: list[int] = []
    try:
        pools = dataplane.planned_pools(net, CLUSTERS)
        dp.add_cluster("alice", plane, lb_namespaces=[ns, wrong_ns])
        dataplane.apply_pool(api, "dp-alice", [f"{pools['alice'][0]}-{pools['alice'][1]}"])
        # The original design's plan: the subnet's first two octets, another third one.
        dataplane.apply_pool(
            api, "dp-alice-wrong", ["172.30.1.100-172.30.1.103"], auto_assign=False
        )
        yield Bed(net, dp, api, ns, wrong_ns, pools)
    finally:
        pids = dp.pids()
        tables = dp.clusters["alice"].nft_tables() if "alice" in dp.clusters else ""
        dp.close()
        for name in ("dp-alice", "dp-alice-wrong"):
            dataplane.delete_pool(api, name)
        for n in (ns, wrong_ns):
            client.CoreV1Api(api).delete_namespace(n)
    assert "table ip kube-proxy" in tables, tables
    assert netlab.our_namespaces() == [], "a namespace survived teardown"
    assert pids_alive(pids) == [], "a process survived teardown"
    assert netlab.root_network_state() == before, "the root network namespace changed"


@contextlib.asynccontextmanager
async def controller(
    api: client.ApiClient, settings: LbSettings
) -> AsyncIterator[LoadBalancerController]:
    ctl = LoadBalancerController(api, settings)
    task = asyncio.create_task(ctl.run())
    try:
        yield ctl
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await ctl.close()


async def wait_address(api: client.ApiClient, namespace: str) -> str:
    address = await eventually(
        f"a LoadBalancer address in {namespace}",
        lambda: dataplane.lb_address(api, namespace),
        timeout=60,
        not_yet=lambda e: isinstance(e, client.ApiException),
    )
    return str(address)


async def test_lb_address_reaches_the_pod_across_clusters_and_follows_its_ip(bed: Bed) -> None:
    net, api, ns = bed.net, bed.api, bed.namespace
    alice = bed.dp.clusters["alice"]
    pod = net.add_pod("alice", "consumer-0", 3)
    server = net.serve(pod.netns, pod.address, 26656, "alice-consumer-0")
    create_consumer_pod(api, ns, "consumer-0", KEY, ips=[str(pod.address)])

    async with controller(api, LbSettings(namespace=ns)) as ctl:
        assert (await ctl.apply(DesiredState.of([chain(KEY, P2P, namespace=ns)]))).ok
        lb = await wait_address(api, ns)
        lo, hi = (ipaddress.IPv4Address(a) for a in bed.pools["alice"])
        assert lo <= ipaddress.IPv4Address(lb) <= hi, (lb, bed.pools["alice"])
        # Assigned by the real MetalLB controller, which names the pool it allocated from.
        svc = client.CoreV1Api(api).read_namespaced_service("p2p-loadbalancer", ns)
        assert svc.metadata.annotations["metallb.io/ip-allocated-from-pool"] == "dp-alice"
        await asyncio.to_thread(alice.wait_kube_proxy_synced)

        from_bob = net.prober(net.node_netns("bob"))
        bob_pod = net.add_pod("bob", "consumer-0", 3)
        from_bob_pod = net.prober(bob_pod.netns)
        await asyncio.to_thread(dataplane.wait_routed, from_bob, lb, P2P, "alice-consumer-0")
        reply = await asyncio.to_thread(from_bob.connect, lb, P2P, 5.0)
        assert reply["ok"]
        assert str(reply["reply"]).startswith("alice-consumer-0 10.244.1.5 ")
        # MetalLB's speaker announces the address by answering ARP for it: it is on no
        # interface of alice's node.
        assert f" {lb}/" not in netlab.ip("-o", "addr", netns=net.node_netns("alice"))
        reply = await asyncio.to_thread(from_bob_pod.connect, lb, P2P, 5.0)
        assert reply["ok"]
        assert str(reply["reply"]).startswith("alice-consumer-0 10.244.1.5 ")
        # Only the derived port is open on the address.
        closed = await asyncio.to_thread(from_bob.connect, lb, P2P + 1, 2.0)
        assert closed["ok"] is False

        # The pod comes back with a new IP: the EndpointSlice follows, kube-proxy routes to it.
        server.stop()
        pod.readdress(ipaddress.IPv4Address("10.244.1.9"))
        net.serve(pod.netns, pod.address, 26656, "alice-consumer-0-again")
        await asyncio.to_thread(
            set_pod_status, api, ns, "consumer-0", ips=["10.244.1.9"], ready=True
        )
        await asyncio.to_thread(
            dataplane.wait_routed, from_bob, lb, P2P, "alice-consumer-0-again 10.244.1.9"
        )


async def test_address_planned_outside_the_subnet_is_unreachable(bed: Bed) -> None:
    net, api = bed.net, bed.api
    pod = net.add_pod("alice", "consumer-0", 3)
    net.serve(pod.netns, pod.address, 26656, "alice-consumer-0")
    from_bob = net.prober(net.node_netns("bob"))
    good = LbSettings(namespace=bed.namespace)
    wrong = LbSettings(
        namespace=bed.wrong_namespace,
        new_service_annotations={dataplane.POOL_ANNOTATION: "dp-alice-wrong"},
    )
    for n in (bed.namespace, bed.wrong_namespace):
        create_consumer_pod(api, n, "consumer-0", KEY, ips=[str(pod.address)])
    async with controller(api, good) as c1, controller(api, wrong) as c2:
        for ctl, n in ((c1, bed.namespace), (c2, bed.wrong_namespace)):
            assert (await ctl.apply(DesiredState.of([chain(KEY, P2P, namespace=n)]))).ok
        planned = await wait_address(api, bed.namespace)
        outside = await wait_address(api, bed.wrong_namespace)
        assert ipaddress.IPv4Address(planned) in net.plan.subnet
        assert outside.startswith("172.30.1."), outside
        wrong_svc = client.CoreV1Api(api).read_namespaced_service(
            "p2p-loadbalancer", bed.wrong_namespace
        )
        assert wrong_svc.metadata.annotations["metallb.io/ip-allocated-from-pool"] == (
            "dp-alice-wrong"
        )
        await asyncio.to_thread(dataplane.wait_routed, from_bob, planned, P2P, "alice-consumer-0")
        # MetalLB assigned and announces both, kube-proxy on alice routes both; but from
        # another cluster the address outside the shared subnet is unreachable.
        r = await asyncio.to_thread(from_bob.connect, outside, P2P, 3.0)
        assert r == {"ok": False, "error": "ENETUNREACH"}
        r = await asyncio.to_thread(from_bob.connect, planned, P2P, 3.0)
        assert r["ok"] is True
