"""Measure the whole loop on the wire: address moves and pod IP changes to nodes reconnected.

Three clusters (control plane, kube-proxy, MetalLB controller and speaker each) on the
shared network of namespaces, a three-validator provider chain, the discovery
service per cluster in `restart` mode publishing its own endpoint, a consumer
StatefulSet per cluster run by the stand-in kubelet, and a real consumer chain
(tests/support/{netlab,dataplane,consumer,kubelet}.py). Printed (median, worst):

- on-chain address move to every node reconnected: alice's LoadBalancer
  address moves within its pool (--moves times); from the moment the chain shows
  the new address to every node having both peers again, the other clusters'
  nodes restarted with it and no connection to the old address left (and, for
  reference, from the LoadBalancer change);
- pod IP change to reconnected: bob's consumer pod comes back with a new IP
  (--pod-changes times); from the new pod's start to its EndpointSlice holding
  the new IP and every node having both peers again.

Run as root from the repository root after `make tools`:

    .venv/bin/python -m bench.wire [--moves 10] [--pod-changes 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kubernetes import client  # noqa: E402

from discovery.nodekey import derive_node_key, encode_node_key, secret_from_environment  # noqa: E402
from tests.support import dataplane, netlab  # noqa: E402
from tests.support.chain import (  # noqa: E402
    export_key_hex,
    start_provider_chain,
    write_key_file,
)
from tests.support.consumer import ConsumerChain, NodeRpcUnanswered, node_rpc  # noqa: E402
from tests.support.kube import ControlPlane, start_control_plane  # noqa: E402
from tests.support.kubelet import StandInKubelet, consumer_statefulset  # noqa: E402
from tests.support.lb import model  # noqa: E402
from tests.support.polling import eventually  # noqa: E402
from tests.support.service_fixtures import Cluster, running_service  # noqa: E402

NAMES = ["alice", "bob", "charlie"]
NAMESPACE = "wire"


async def until(check: Any, what: str, within: float = 300, interval: float = 0.05) -> float:
    """Monotonic time at which `check` (run in a thread) first held."""
    await eventually(
        what,
        check,
        timeout=within,
        interval=interval,
        not_yet=lambda e: isinstance(e, NodeRpcUnanswered | client.ApiException),
    )
    return time.monotonic()


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 2),
        "worst_s": round(max(values), 2),
    }


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:  # noqa: C901, PLR0915 (one run)
    planes: dict[str, ControlPlane] = {}
    provider = None
    net = None
    dp = None
    kubelets: list[StandInKubelet] = []
    consumer: ConsumerChain | None = None
    consumer_id = ""
    try:
        for n in NAMES:
            planes[n] = start_control_plane(n, tmp / "planes" / n)
        provider = start_provider_chain("provider3", tmp / "provider", size=3)
        clusters = [Cluster(n, i, planes[n], NAMESPACE, provider) for i, n in enumerate(NAMES)]
        for c in clusters:
            c.core().create_namespace(model(client.V1Namespace, {"metadata": {"name": NAMESPACE}}))
        net = netlab.build_network(NAMES, workdir=tmp / "net")
        dp = dataplane.DataPlane(net)
        pools = await asyncio.to_thread(dataplane.planned_pools, net, NAMES)
        for c in clusters:
            dp.add_cluster(c.name, c.plane, lb_namespaces=[NAMESPACE])
            first, last = pools[c.name]
            dataplane.apply_pool(c.plane.admin_client(), f"dp-{c.name}",
                                 [f"{first}-{last}"])  # fmt: skip
        chain_id = f"wire-{secrets.token_hex(3)}-1"
        keys, envs = {}, {}
        for c in clusters:
            keys[c.name] = write_key_file(
                tmp, f"{c.name}.key", export_key_hex(provider, c.validator)
            )
            envs[c.name] = f"ICSDP_{c.name.upper()}_NODE_SECRET"
            os.environ[envs[c.name]] = secrets.token_hex(32)
        pods = {c.name: net.add_pod(c.name, "consumer-0", 3) for c in clusters}
        for c in clusters:
            client.AppsV1Api(c.plane.admin_client()).create_namespaced_stateful_set(
                NAMESPACE, consumer_statefulset("consumer", chain_id)
            )
        consumer_id = await asyncio.to_thread(provider.launch_consumer, chain_id)
        consumer = ConsumerChain(chain_id, consumer_id, tmp / "consumer")
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
                    NAMESPACE,
                    "consumer",
                    chain_id,
                    c.name,
                    consumer,
                    net,
                    pods[c.name],
                ).start()
            )
        ids = {c.name: consumer.nodes[c.name].node_id for c in clusters}
        probers = {c.name: net.prober(net.node_netns(c.name)) for c in clusters}
        by_name = {k.cluster: k for k in kubelets}

        def all_peered(avoid: str | None = None) -> bool:
            for c in clusters:
                info = node_rpc(probers[c.name], str(pods[c.name].address), "/net_info")
                if int(info["n_peers"]) != 2:
                    return False
                if avoid and any(p["remote_ip"] == avoid for p in info["peers"]):
                    return False
            return True

        def peers_name(c: Cluster, entry: str) -> bool:
            peers = c.persistent_peers(chain_id) or ""
            return entry in peers and by_name[c.name].started_peers[-1:] == [peers]

        async with contextlib.AsyncExitStack() as stack:
            for c in clusters:
                await stack.enter_async_context(
                    running_service(c, publish_endpoint=True, publish_key_file=keys[c.name],
                                    node_key_secret_env=envs[c.name], notify_default="restart")
                )  # fmt: skip

            def wired() -> bool:
                lbs = {c.name: dataplane.cluster_lb_address(c) for c in clusters}
                return all(lbs.values()) and all(
                    peers_name(c, f"{ids[o.name]}@{lbs[o.name]}:")
                    for c in clusters
                    for o in clusters
                    if o is not c
                ) and all_peered()  # fmt: skip

            await until(wired, "the first wiring", within=300)

            alice = clusters[0]
            pool = next(
                p for p in dataplane.read_pools(alice.plane.admin_client()) if p.name == "dp-alice"
            )
            from_chain: list[float] = []
            from_lb: list[float] = []
            for _ in range(args.moves):
                old = str(dataplane.cluster_lb_address(alice))
                new = str(next(a for a in pool.addresses if str(a) != old))
                t0 = time.monotonic()
                alice.core().patch_namespaced_service(
                    "p2p-loadbalancer", NAMESPACE,
                    {"metadata": {"annotations": {dataplane.REQUEST_IPS_ANNOTATION: new}}},
                )  # fmt: skip

                def on_chain(new: str = new) -> bool:
                    desc = provider.staking_validator(alice.validator.operator)["description"]
                    return f"p2p={new}" in str(desc.get("details", ""))

                t_chain = await until(on_chain, "the move on chain", interval=0.02)

                def reconnected(new: str = new, old: str = old) -> bool:
                    entry = f"{ids['alice']}@{new}:"
                    return all(peers_name(c, entry) for c in clusters[1:]) and all_peered(old)

                t_done = await until(reconnected, "every node reconnected")
                from_chain.append(t_done - t_chain)
                from_lb.append(t_done - t0)

            bob = clusters[1]
            pod_changes: list[float] = []
            for i in range(args.pod_changes):
                new_ip = str(net.plan.pod_address("bob", 7 + (i % 2)))
                t0 = time.monotonic()
                await asyncio.to_thread(by_name["bob"].recreate_pod, new_ip)

                def followed(new_ip: str = new_ip) -> bool:
                    return bob.slice_addresses(chain_id) == [new_ip] and all_peered()

                pod_changes.append(await until(followed, "peers back on bob's new pod") - t0)
        return {
            "chain_move_to_reconnected": summary(from_chain),
            "loadbalancer_move_to_reconnected": summary(from_lb),
            "pod_ip_change_to_reconnected": summary(pod_changes),
            "kubelet_restarts": {k.cluster: k.restarts for k in kubelets},
        }
    finally:
        for k in kubelets:
            k.stop()
        if consumer is not None:
            consumer.stop()
        if provider is not None and consumer_id:
            with contextlib.suppress(Exception):
                provider.remove_consumer(0, consumer_id)
        if dp is not None:
            dp.close()
        elif net is not None:
            net.close()
        if provider is not None:
            provider.stop()
        for plane in planes.values():
            plane.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--pod-changes", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    before = netlab.root_network_state()
    with tempfile.TemporaryDirectory(prefix="ics-bench-wire-") as tmp:
        results = asyncio.run(measure(args, Path(tmp)))
    results["root_namespace_unchanged"] = netlab.root_network_state() == before
    results["namespaces_left"] = netlab.our_namespaces()
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        print("the loop on the wire (3 clusters, restart mode, real consumer chain)")
        for k in ("chain_move_to_reconnected", "loadbalancer_move_to_reconnected",
                  "pod_ip_change_to_reconnected"):  # fmt: skip
            s = results[k]
            print(
                f"  {k:34s} median {s['median_s']:6.2f} s"
                f"  worst {s['worst_s']:6.2f} s  (n={s['n']})"
            )
        print(f"  consumer node restarts per cluster: {results['kubelet_restarts']}")
        print(
            f"  root namespace unchanged: {results['root_namespace_unchanged']}; "
            f"namespaces left: {results['namespaces_left'] or 'none'}"
        )
    return 0 if results["root_namespace_unchanged"] and not results["namespaces_left"] else 1


if __name__ == "__main__":
    sys.exit(main())
