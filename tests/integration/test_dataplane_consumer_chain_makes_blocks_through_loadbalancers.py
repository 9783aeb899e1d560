"""A real consumer chain across three clusters: each validator's consumer node runs in its
cluster's pod namespace, dials the other validators at their clusters' LoadBalancer address and
the chain's derived P2P port, kube-proxy routes those connections to the pods, and the chain makes
blocks signed by all three validators.

Here the nodes' `persistent_peers` are rendered by the test from the LoadBalancer addresses;
taking them from the service's peers ConfigMap is the next step of the data plane work.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubernetes import client

from discovery.ports import derive_ports
from lbmanager import DesiredState, LbSettings
from lbmanager.reconciler import LoadBalancerController
from tests.conftest import ControlPlaneFactory, create_namespace, namespace_name
from tests.support import dataplane, netlab
from tests.support.chain import ProviderChain
from tests.support.consumer import P2P_PORT, ConsumerChain, node_rpc
from tests.support.lb import chain, create_consumer_pod
from tests.support.polling import any_error, eventually
from tests.support.procs import pids_alive

pytestmark = [pytest.mark.kube, pytest.mark.chain, pytest.mark.netns]

CLUSTERS = ["alice", "bob", "charlie"]


@dataclass
class Bed:
    net: netlab.Network
    dp: dataplane.DataPlane
    apis: dict[str, client.ApiClient]
    namespaces: dict[str, str]
    pools: dict[str, tuple[str, str]]
    consumer: ConsumerChain | None = None
    extra_pids: list[int] = field(default_factory=list)


@pytest.fixture
def bed(
    request: pytest.FixtureRequest, control_planes: ControlPlaneFactory, tmp_path: Path
) -> Iterator[Bed]:
    before = netlab.root_network_state()
    planes = {c: control_planes(c) for c in CLUSTERS}
    apis = {c: p.admin_client() for c, p in planes.items()}
    nsname = namespace_name(request.node.nodeid)
    namespaces = {c: create_namespace(apis[c], nsname) for c in CLUSTERS}
    net = netlab.build_network(CLUSTERS, workdir=tmp_path)
    dp = dataplane.DataPlane(net)
    bed = Bed(net, dp, apis, namespaces, {})
    try:
        bed.pools = dataplane.planned_pools(net, CLUSTERS)
        for c in CLUSTERS:
            dp.add_cluster(c, planes[c], lb_namespaces=[namespaces[c]])
            lo, hi = bed.pools[c]
            dataplane.apply_pool(apis[c], f"dp-{c}", [f"{lo}-{hi}"])
        yield bed
    finally:
        pids = dp.pids()
        if bed.consumer is not None:
            pids += bed.consumer.pids()
            bed.consumer.stop()
        dp.close()
        for c in CLUSTERS:
            dataplane.delete_pool(apis[c], f"dp-{c}")
            with contextlib.suppress(client.ApiException):
                client.CoreV1Api(apis[c]).delete_namespace(namespaces[c])
    assert netlab.our_namespaces() == [], "a namespace survived teardown"
    assert pids_alive(pids) == [], "a process survived teardown"
    assert netlab.root_network_state() == before, "the root network namespace changed"


@contextlib.asynccontextmanager
async def controllers(bed: Bed) -> AsyncIterator[dict[str, LoadBalancerController]]:
    ctls = {
        c: LoadBalancerController(bed.apis[c], LbSettings(namespace=bed.namespaces[c]))
        for c in CLUSTERS
    }
    tasks = [asyncio.create_task(ctl.run()) for ctl in ctls.values()]
    try:
        yield ctls
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for ctl in ctls.values():
            await ctl.close()


async def test_consumer_chain_makes_blocks_with_peers_through_the_loadbalancers(
    bed: Bed, provider_chain3: ProviderChain, tmp_path: Path
) -> None:
    provider = provider_chain3
    chain_id = f"dataplane-{secrets.token_hex(3)}-1"
    consumer_id = await asyncio.to_thread(
        # Spawn only once all three opted in: each must be in the initial validator set.
        provider.launch_consumer,
        chain_id,
        spawn_delay=None,
    )
    try:
        await check_consumer_chain(bed, provider, chain_id, consumer_id, tmp_path)
    finally:
        await asyncio.to_thread(provider.remove_consumer, 0, consumer_id)


async def check_consumer_chain(
    bed: Bed, provider: ProviderChain, chain_id: str, consumer_id: str, tmp_path: Path
) -> None:
    net = bed.net
    p2p = derive_ports(chain_id).p2p
    pods = {c: net.add_pod(c, "consumer-0", 3) for c in CLUSTERS}
    key = f"{consumer_id}-{chain_id}"
    for c in CLUSTERS:
        create_consumer_pod(
            bed.apis[c], bed.namespaces[c], "consumer-0", key, ips=[str(pods[c].address)]
        )

    async with controllers(bed) as ctls:
        for c, ctl in ctls.items():
            exposure = chain(key, p2p, target=P2P_PORT, namespace=bed.namespaces[c])
            assert (await ctl.apply(DesiredState.of([exposure]))).ok

        def all_addresses() -> bool:
            return all(dataplane.lb_address(bed.apis[c], bed.namespaces[c]) for c in CLUSTERS)

        await eventually("LoadBalancer addresses", all_addresses, timeout=60, not_yet=any_error)
        lbs = {c: str(dataplane.lb_address(bed.apis[c], bed.namespaces[c])) for c in CLUSTERS}
        for c in CLUSTERS:
            lo, hi = (ipaddress.IPv4Address(a) for a in bed.pools[c])
            assert lo <= ipaddress.IPv4Address(lbs[c]) <= hi, (c, lbs[c], bed.pools[c])

        consumer = ConsumerChain(chain_id, consumer_id, tmp_path / "consumer")
        bed.consumer = consumer
        placement = {
            c: (provider.validators[i], pods[c].netns, str(pods[c].address))
            for i, c in enumerate(CLUSTERS)
        }
        await asyncio.to_thread(consumer.prepare, provider, placement)
        for c in CLUSTERS:
            peers = [f"{consumer.nodes[o].node_id}@{lbs[o]}:{p2p}" for o in CLUSTERS if o != c]
            consumer.configure(c, peers=peers, external_address=f"{lbs[c]}:{p2p}")
        for c in CLUSTERS:
            consumer.start(net, c)

        probers = {c: net.prober(net.node_netns(c)) for c in CLUSTERS}

        def connected_and_producing() -> bool:
            for c in CLUSTERS:
                ip = str(pods[c].address)
                if int(node_rpc(probers[c], ip, "/status")["sync_info"]["latest_block_height"]) < 3:
                    return False
                if int(node_rpc(probers[c], ip, "/net_info")["n_peers"]) != 2:
                    return False
            return True

        alive = lambda: next(  # noqa: E731
            (r for n in consumer.nodes.values() if n.process and (r := n.process.exit_reason())),
            None,
        )
        await eventually(
            "consumer chain producing with every node connected to both peers",
            connected_and_producing,
            timeout=240,
            interval=0.5,
            not_yet=any_error,
            alive=alive,
        )

        # Every node lists the other two validators' nodes; every outbound connection goes
        # to another cluster's LoadBalancer address at the derived port, every inbound one
        # arrives through this cluster's kube-proxy (DNAT to the pod, masqueraded to the
        # node's pod-side address), never straight from another pod.
        ids = {c: consumer.nodes[c].node_id for c in CLUSTERS}
        for c in CLUSTERS:
            info = node_rpc(probers[c], str(pods[c].address), "/net_info")
            seen = {p["node_info"]["id"]: p for p in info["peers"]}
            assert set(seen) == {ids[o] for o in CLUSTERS if o != c}
            for o in CLUSTERS:
                if o == c:
                    continue
                p = seen[ids[o]]
                # What the peer announces: its cluster's LoadBalancer at the derived port.
                assert p["node_info"]["listen_addr"].endswith(f"{lbs[o]}:{p2p}"), p["node_info"]
                if p["is_outbound"]:
                    assert p["remote_ip"] == lbs[o], (c, o, p["remote_ip"], lbs)
                else:
                    gateway = str(net.plan.node(c).pod_gateway)
                    assert p["remote_ip"] == gateway, (c, o, p["remote_ip"])

        # The consumer's validators are the provider's, and blocks carry all three signatures.
        alice_ip = str(pods["alice"].address)
        vals = node_rpc(probers["alice"], alice_ip, "/validators")["validators"]
        assert {v["pub_key"]["value"] for v in vals} == {
            v.consensus_pubkey for v in provider.validators
        }
        everyone = {v["address"] for v in vals}

        def signed_by_all() -> bool:
            status = node_rpc(probers["alice"], alice_ip, "/status")
            height = int(status["sync_info"]["latest_block_height"]) - 1
            commit = node_rpc(probers["alice"], alice_ip, f"/commit?height={height}")
            sigs = commit["signed_header"]["commit"]["signatures"]
            return {s["validator_address"] for s in sigs if s["block_id_flag"] == 2} == everyone

        await eventually(
            "a block signed by all three",
            signed_by_all,
            timeout=60,
            interval=0.2,
            not_yet=any_error,
        )
