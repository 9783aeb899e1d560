"""The whole loop on the wire, in `restart` mode: each cluster's service publishes its real
LoadBalancer address (from its planned pool) on chain with the node ID derived from the
validator's secret, writes the other validators as peers in its cluster's peers ConfigMap and puts
the peers hash on the consumer StatefulSet; a stand-in kubelet restarts the consumer node with the
ConfigMap's peers (the only source of peers). The consumer chain then makes blocks signed by all
three validators, every node connected to the other two through their LoadBalancer addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from discovery.nodekey import derive_node_key, encode_node_key, secret_from_environment
from tests.support import dataplane
from tests.support.chain import export_key_hex, write_key_file
from tests.support.consumer import ConsumerChain, node_rpc
from tests.support.kubelet import StandInKubelet, consumer_statefulset
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain, pytest.mark.netns]


@pytest.fixture
def wire(clusters: list[Cluster], tmp_path: Path) -> Iterator[dataplane.DataPlane]:
    """The shared network, kube-proxy and LoadBalancer addresses for the three clusters."""
    with dataplane.cluster_wire(clusters, tmp_path) as dp:
        yield dp


async def test_consumer_nodes_peer_through_what_the_services_published(  # noqa: C901, PLR0915 (one scenario)
    clusters: list[Cluster],
    wire: dataplane.DataPlane,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = wire.net
    provider = clusters[0].chain
    chain_id = f"wire-{secrets.token_hex(3)}-1"
    keys, envs = {}, {}
    for c in clusters:
        key_hex = await asyncio.to_thread(export_key_hex, provider, c.validator)
        keys[c.name] = write_key_file(tmp_path, f"{c.name}.key", key_hex)
        envs[c.name] = f"ICSDP_{c.name.upper()}_NODE_SECRET"
        monkeypatch.setenv(envs[c.name], secrets.token_hex(32))
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
    consumer = ConsumerChain(chain_id, consumer_id, tmp_path / "consumer")
    try:
        placement = {
            c.name: (c.validator, pods[c.name].netns, str(pods[c.name].address)) for c in clusters
        }
        await asyncio.to_thread(consumer.prepare, provider, placement)
        for c in clusters:
            secret = secret_from_environment(os.environ[envs[c.name]])
            consumer.use_node_key(c.name, encode_node_key(derive_node_key(secret)))
            consumer.configure(c.name, peers=[], external_address="")
            kubelets.append(
                StandInKubelet(
                    c.plane.admin_client(),
                    c.namespace,
                    "consumer",
                    chain_id,
                    c.name,
                    consumer,
                    net,
                    pods[c.name],
                ).start()
            )
        async with contextlib.AsyncExitStack() as stack:
            for c in clusters:
                await stack.enter_async_context(
                    running_service(
                        c,
                        publish_endpoint=True,
                        publish_key_file=keys[c.name],
                        node_key_secret_env=envs[c.name],
                        notify_default="restart",
                    )
                )
            ids = {c.name: consumer.nodes[c.name].node_id for c in clusters}
            probers = {c.name: net.prober(net.node_netns(c.name)) for c in clusters}

            why: list[str] = [""]

            def diagnosis() -> str:
                state = [
                    f"{k.cluster}: restarts={k.restarts} started_peers={k.started_peers[-2:]} "
                    f"errors={k.errors[-3:]}"
                    for k in kubelets
                ]
                tails = "\n".join(f"--- {n}\n{t}" for n, t in consumer.log_tails(15).items())
                return f"{why[0]}\n" + "\n".join(state) + "\n" + tails

            def not_yet(reason: str) -> dict[str, str] | None:
                why[0] = reason
                return None

            def wired() -> dict[str, str] | None:
                lbs = {c.name: dataplane.cluster_lb_address(c) for c in clusters}
                if not all(lbs.values()):
                    return not_yet(f"LoadBalancer addresses {lbs}")
                for c in clusters:
                    port = c.lb_port(chain_id)
                    want = ",".join(sorted(
                        f"{ids[o.name]}@{lbs[o.name]}:{port}" for o in clusters if o is not c
                    ))  # fmt: skip
                    have = c.persistent_peers(chain_id)
                    if have != want:
                        return not_yet(f"{c.name} peers ConfigMap {have!r}, want {want!r}")
                    ip = str(pods[c.name].address)
                    try:
                        n_peers = int(node_rpc(probers[c.name], ip, "/net_info")["n_peers"])
                        status = node_rpc(probers[c.name], ip, "/status")
                    except AssertionError as e:
                        return not_yet(f"{c.name} RPC: {e}")
                    if n_peers != 2:
                        return not_yet(f"{c.name} has {n_peers} peers")
                    if int(status["sync_info"]["latest_block_height"]) < 3:
                        return not_yet(f"{c.name} at height {status['sync_info']}")
                return {k: str(v) for k, v in lbs.items()}

            try:
                lbs = await eventually("every node peered through the published addresses", wired,
                                       timeout=300, interval=0.5)  # fmt: skip
            except TimeoutError as e:
                raise AssertionError(f"{e}\n{diagnosis()}") from e

            for c in clusters:
                # On chain: this validator's real LoadBalancer address and derived node ID.
                details = provider.staking_validator(c.validator.operator)["description"]
                assert f"node={ids[c.name]}" in details["details"]
                assert f"p2p={lbs[c.name]}" in details["details"]
                # The node runs with exactly the ConfigMap's peers.
                kubelet = next(k for k in kubelets if k.cluster == c.name)
                assert kubelet.started_peers[-1] == c.persistent_peers(chain_id)
                info = node_rpc(probers[c.name], str(pods[c.name].address), "/net_info")
                seen = {p["node_info"]["id"]: p for p in info["peers"]}
                assert set(seen) == {ids[o.name] for o in clusters if o is not c}
                for o in clusters:
                    if o is c:
                        continue
                    p = seen[ids[o.name]]
                    want_ip = lbs[o.name] if p["is_outbound"] else str(
                        net.plan.node(c.name).pod_gateway)  # fmt: skip
                    assert p["remote_ip"] == want_ip, (c.name, o.name, p)

            alice_ip = str(pods["alice"].address)
            vals = node_rpc(probers["alice"], alice_ip, "/validators")["validators"]
            everyone = {v["address"] for v in vals}

            def signed_by_all() -> bool:
                status = node_rpc(probers["alice"], alice_ip, "/status")
                height = int(status["sync_info"]["latest_block_height"]) - 1
                commit = node_rpc(probers["alice"], alice_ip, f"/commit?height={height}")
                sigs = commit["signed_header"]["commit"]["signatures"]
                return {s["validator_address"] for s in sigs if s["block_id_flag"] == 2} == everyone

            await eventually("a block signed by all three", signed_by_all, timeout=60)

            # alice's LoadBalancer address moves to another address of its pool (as an
            # operator asks MetalLB for one): alice publishes it, the others follow.
            alice = clusters[0]
            old_ip = lbs["alice"]
            pool = next(
                p for p in dataplane.read_pools(alice.plane.admin_client()) if p.name == "dp-alice"
            )
            new_ip = str(next(a for a in pool.addresses if str(a) != old_ip))
            alice.core().patch_namespaced_service(
                "p2p-loadbalancer",
                alice.namespace,
                {"metadata": {"annotations": {dataplane.REQUEST_IPS_ANNOTATION: new_ip}}},
            )
            moved_at = int(node_rpc(probers["alice"], alice_ip, "/status")["sync_info"][
                "latest_block_height"])  # fmt: skip

            def followed() -> bool:
                details = provider.staking_validator(alice.validator.operator)["description"]
                if f"p2p={new_ip}" not in details["details"]:
                    return False
                for c in clusters[1:]:
                    peers = c.persistent_peers(chain_id) or ""
                    if f"{ids['alice']}@{new_ip}:" not in peers:
                        return False
                    kubelet = next(k for k in kubelets if k.cluster == c.name)
                    if not kubelet.started_peers or kubelet.started_peers[-1] != peers:
                        return False
                for c in clusters:
                    try:
                        info = node_rpc(probers[c.name], str(pods[c.name].address), "/net_info")
                    except AssertionError:
                        return False
                    if int(info["n_peers"]) != 2:
                        return False
                    if any(p["remote_ip"] == old_ip for p in info["peers"]):
                        return False
                return True

            await eventually("the others reconnecting to alice's new address", followed,
                             timeout=300, interval=0.5)  # fmt: skip
            assert dataplane.cluster_lb_address(alice) == new_ip

            def signed_after_move() -> bool:
                status = node_rpc(probers["bob"], str(pods["bob"].address), "/status")
                height = int(status["sync_info"]["latest_block_height"]) - 1
                if height <= moved_at:
                    return False
                commit = node_rpc(
                    probers["bob"], str(pods["bob"].address), f"/commit?height={height}"
                )
                sigs = commit["signed_header"]["commit"]["signatures"]
                return {s["validator_address"] for s in sigs if s["block_id_flag"] == 2} == everyone

            await eventually("blocks signed by all three after the move", signed_after_move,
                             timeout=120)  # fmt: skip

            # bob's consumer pod comes back with a new IP: its EndpointSlice follows, bob's
            # kube-proxy routes the LoadBalancer port to it and the others reconnect.
            bob = clusters[1]
            new_pod_ip = str(net.plan.pod_address("bob", 7))
            bob_kubelet = next(k for k in kubelets if k.cluster == "bob")
            await asyncio.to_thread(bob_kubelet.recreate_pod, new_pod_ip)
            assert str(pods["bob"].address) == new_pod_ip
            restarted_at = int(node_rpc(probers["alice"], alice_ip, "/status")["sync_info"][
                "latest_block_height"])  # fmt: skip

            def reconnected() -> bool:
                if bob.slice_addresses(chain_id) != [new_pod_ip]:
                    return not_yet(f"bob's slice {bob.slice_addresses(chain_id)}") is not None
                for c in clusters:
                    try:
                        info = node_rpc(probers[c.name], str(pods[c.name].address), "/net_info")
                    except AssertionError as e:
                        return not_yet(f"{c.name} RPC: {e}") is not None
                    if int(info["n_peers"]) != 2:
                        return not_yet(f"{c.name} has {info['n_peers']} peers") is not None
                status = node_rpc(probers["alice"], alice_ip, "/status")
                height = int(status["sync_info"]["latest_block_height"]) - 1
                if height <= restarted_at:
                    return False
                commit = node_rpc(probers["alice"], alice_ip, f"/commit?height={height}")
                sigs = commit["signed_header"]["commit"]["signatures"]
                return {s["validator_address"] for s in sigs if s["block_id_flag"] == 2} == everyone

            try:
                await eventually("peers reconnected to bob's new pod", reconnected, timeout=180)
            except TimeoutError as e:
                raise AssertionError(f"{e}\n{diagnosis()}") from e
        # The stand-in kubelets met nothing but the API's own refusals (a Pod being replaced).
        for k in kubelets:
            assert all(e.startswith("ApiException") for e in k.errors), k.errors
    finally:
        for k in kubelets:
            k.stop()
        consumer.stop()
        await asyncio.to_thread(provider.remove_consumer, 0, consumer_id)
