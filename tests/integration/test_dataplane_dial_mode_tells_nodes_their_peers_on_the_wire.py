"""`dial` mode on the wire: each cluster's service runs as `ics-discovery run` inside its cluster's
node namespace (reaching its apiserver and its provider node through relays, and the consumer pod
by its pod IP, as inside a real cluster), publishes its real LoadBalancer address and tells its
consumer node the peers with `dial_peers`. The nodes start with no peers at all; the consumer
chain then makes blocks signed by all three validators, every node connected to the other two
through their LoadBalancer addresses.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from discovery.nodekey import derive_node_key, encode_node_key, secret_from_environment
from tests.support import dataplane
from tests.support.chain import export_key_hex, write_key_file
from tests.support.consumer import RPC_PORT, ConsumerChain, node_rpc
from tests.support.kubelet import StandInKubelet, consumer_statefulset
from tests.support.polling import eventually
from tests.support.procs import Process
from tests.support.service_fixtures import SERVICE_NAME, Cluster

pytestmark = [pytest.mark.kube, pytest.mark.chain, pytest.mark.netns]


@pytest.fixture
def wire(clusters: list[Cluster], tmp_path: Path) -> Iterator[dataplane.DataPlane]:
    """The shared network, kube-proxy and LoadBalancer addresses for the three clusters."""
    with dataplane.cluster_wire(clusters, tmp_path) as dp:
        yield dp


async def test_dial_mode_peers_consumer_nodes_through_the_loadbalancers(  # noqa: PLR0915 (one scenario)
    clusters: list[Cluster], wire: dataplane.DataPlane, tmp_path: Path
) -> None:
    net = wire.net
    provider = clusters[0].chain
    chain_id = f"dial-{secrets.token_hex(3)}-1"
    pods = {c.name: net.add_pod(c.name, "consumer-0", 3) for c in clusters}
    for c in clusters:
        client.AppsV1Api(c.plane.admin_client()).create_namespaced_stateful_set(
            c.namespace, consumer_statefulset("consumer", chain_id)
        )
    consumer_id = await asyncio.to_thread(
        # Spawn only once all three opted in: each must be in the initial validator set.
        provider.launch_consumer,
        chain_id,
        spawn_delay=None,
    )
    kubelets: list[StandInKubelet] = []
    services: dict[str, Process] = {}
    consumer = ConsumerChain(chain_id, consumer_id, tmp_path / "consumer")
    try:
        placement = {
            c.name: (c.validator, pods[c.name].netns, str(pods[c.name].address)) for c in clusters
        }
        await asyncio.to_thread(consumer.prepare, provider, placement)
        for c in clusters:
            secret = secrets.token_hex(32)
            env = f"ICSDP_{c.name.upper()}_NODE_SECRET"
            key_hex = await asyncio.to_thread(export_key_hex, provider, c.validator)
            key_file = write_key_file(tmp_path, f"{c.name}.key", key_hex)
            node_key = derive_node_key(secret_from_environment(secret))
            consumer.use_node_key(c.name, encode_node_key(node_key))
            consumer.configure(c.name, peers=[], external_address="", unsafe_rpc=True)
            kubelets.append(
                StandInKubelet(c.plane.admin_client(), c.namespace, "consumer", chain_id,
                               c.name, consumer, net, pods[c.name], mode="dial").start()
            )  # fmt: skip
            services[c.name] = dataplane.start_service_in_node(
                wire, c.name, c.node, tmp_path,
                {
                    "operator_address": c.validator.operator,
                    "service_name": SERVICE_NAME,
                    "service_namespace": c.namespace,
                    "consumer_namespace": c.namespace,
                    "notify_default": "dial",
                    "consumer_rpc_port": RPC_PORT,
                    "publish_endpoint": True,
                    "publish_key_file": str(key_file),
                    "node_key_secret_env": env,
                },
                env={env: secret},
            )  # fmt: skip
        ids = {c.name: consumer.nodes[c.name].node_id for c in clusters}
        probers = {c.name: net.prober(net.node_netns(c.name)) for c in clusters}
        why = [""]

        def wired() -> dict[str, str] | None:
            for name, proc in services.items():
                dead = proc.exit_reason()
                if dead:
                    raise AssertionError(f"{name}'s service: {dead}")
            lbs = {c.name: dataplane.cluster_lb_address(c) for c in clusters}
            if not all(lbs.values()):
                why[0] = f"LoadBalancer addresses {lbs}"
                return None
            for c in clusters:
                ip = str(pods[c.name].address)
                try:
                    info = node_rpc(probers[c.name], ip, "/net_info")
                    height = int(node_rpc(probers[c.name], ip, "/status")["sync_info"][
                        "latest_block_height"])  # fmt: skip
                except AssertionError as e:
                    why[0] = f"{c.name}: {e}"
                    return None
                outbound = {p["remote_ip"] for p in info["peers"] if p["is_outbound"]}
                if int(info["n_peers"]) != 2 or height < 3:
                    why[0] = f"{c.name}: {info['n_peers']} peers, height {height}"
                    return None
                if not outbound <= {lbs[o.name] for o in clusters if o is not c}:
                    why[0] = f"{c.name} dialled {outbound}, not LoadBalancers {lbs}"
                    return None
            return {k: str(v) for k, v in lbs.items()}

        try:
            lbs = await eventually("every node told its peers and connected", wired,
                                   timeout=300, interval=0.5)  # fmt: skip
        except TimeoutError as e:
            tails = "\n".join(f"--- {n}\n{p.log_tail(20)}" for n, p in services.items())
            raise AssertionError(f"{e}\n{why[0]}\n{tails}") from e

        for c in clusters:
            details = provider.staking_validator(c.validator.operator)["description"]["details"]
            assert f"node={ids[c.name]}" in details
            assert f"p2p={lbs[c.name]}" in details
            # The node was started without peers: every peer came from dial_peers.
            assert next(k for k in kubelets if k.cluster == c.name).started_peers == [""]
            info = node_rpc(probers[c.name], str(pods[c.name].address), "/net_info")
            assert {p["node_info"]["id"] for p in info["peers"]} == {
                ids[o.name] for o in clusters if o is not c
            }
        alice_ip = str(pods["alice"].address)
        everyone = {v["address"] for v in node_rpc(probers["alice"], alice_ip, "/validators")[
            "validators"]}  # fmt: skip

        def signed_by_all() -> bool:
            status = node_rpc(probers["alice"], alice_ip, "/status")
            height = int(status["sync_info"]["latest_block_height"]) - 1
            commit = node_rpc(probers["alice"], alice_ip, f"/commit?height={height}")
            sigs = commit["signed_header"]["commit"]["signatures"]
            return {s["validator_address"] for s in sigs if s["block_id_flag"] == 2} == everyone

        await eventually("a block signed by all three", signed_by_all, timeout=60)
    finally:
        for k in kubelets:
            k.stop()
        consumer.stop()
        await asyncio.to_thread(provider.remove_consumer, 0, consumer_id)
