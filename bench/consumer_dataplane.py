"""Measure a real consumer chain on the data plane: launch to every node connected and producing.

A three-validator provider chain launches a consumer chain; three clusters (one
control plane each) on the shared network of namespaces each get kube-proxy, a
LoadBalancer address from their planned pool and lbmanager's Service port and
EndpointSlice for the chain; one `interchain-security-cd` node per cluster runs
in its pod namespace and dials the other two at their LoadBalancer address and
the chain's derived P2P port. Printed (--runs times, median and worst):

- launched to first block: from the provider reporting the consumer LAUNCHED
  (genesis query, node homes, node start included) to the first consumer block;
- launched to every node connected: ... to every node having both peers and a
  block signed by all three validators.

Run as root from the repository root after `make tools`:

    .venv/bin/python -m bench.consumer_dataplane [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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

from discovery.ports import derive_ports  # noqa: E402
from lbmanager import DesiredState, LbSettings  # noqa: E402
from lbmanager.reconciler import LoadBalancerController  # noqa: E402
from tests.support import dataplane, netlab  # noqa: E402
from tests.support.chain import ProviderChain, start_provider_chain  # noqa: E402
from tests.support.consumer import P2P_PORT, ConsumerChain, node_rpc  # noqa: E402
from tests.support.kube import ControlPlane, start_control_plane  # noqa: E402
from tests.support.lb import chain, create_consumer_pod, model  # noqa: E402
from tests.support.polling import any_error, eventually  # noqa: E402

CLUSTERS = ["alice", "bob", "charlie"]


async def one_run(  # noqa: PLR0915 (one run)
    provider: ProviderChain, planes: dict[str, ControlPlane], tmp: Path, run: int
) -> dict[str, float]:
    net = netlab.build_network(CLUSTERS, workdir=tmp / f"net{run}")
    dp = dataplane.DataPlane(net)
    consumer: ConsumerChain | None = None
    ctls: list[LoadBalancerController] = []
    tasks: list[asyncio.Task[None]] = []
    ns = f"bench-{run}"
    chain_id = f"bench-{secrets.token_hex(3)}-1"
    consumer_id = ""
    try:
        pools = dataplane.planned_pools(net, CLUSTERS)
        apis = {c: planes[c].admin_client() for c in CLUSTERS}
        for c in CLUSTERS:
            client.CoreV1Api(apis[c]).create_namespace(
                model(client.V1Namespace, {"metadata": {"name": ns}})
            )
            dp.add_cluster(c, planes[c], lb_namespaces=[ns])
            dataplane.apply_pool(apis[c], f"bench-{c}", ["-".join(pools[c])])
        t_launch0 = time.monotonic()
        consumer_id = await asyncio.to_thread(provider.launch_consumer, chain_id)
        t_launched = time.monotonic()
        p2p = derive_ports(chain_id).p2p
        key = f"{consumer_id}-{chain_id}"
        pods = {c: net.add_pod(c, "consumer-0", 3) for c in CLUSTERS}
        for c in CLUSTERS:
            create_consumer_pod(apis[c], ns, "consumer-0", key, ips=[str(pods[c].address)])
            ctl = LoadBalancerController(apis[c], LbSettings(namespace=ns))
            ctls.append(ctl)
            tasks.append(asyncio.create_task(ctl.run()))
            exposure = chain(key, p2p, target=P2P_PORT, namespace=ns)
            assert (await ctl.apply(DesiredState.of([exposure]))).ok
        await eventually(
            "LoadBalancer addresses",
            lambda: all(dataplane.lb_address(apis[c], ns) for c in CLUSTERS),
            timeout=60,
            not_yet=any_error,
        )
        lbs = {c: str(dataplane.lb_address(apis[c], ns)) for c in CLUSTERS}
        consumer = ConsumerChain(chain_id, consumer_id, tmp / f"consumer{run}")
        placement = {
            c: (provider.validators[i], pods[c].netns, str(pods[c].address))
            for i, c in enumerate(CLUSTERS)
        }
        await asyncio.to_thread(consumer.prepare, provider, placement)
        for c in CLUSTERS:
            peers = [f"{consumer.nodes[o].node_id}@{lbs[o]}:{p2p}" for o in CLUSTERS if o != c]
            consumer.configure(c, peers=peers, external_address=f"{lbs[c]}:{p2p}")
            consumer.start(net, c)
        probers = {c: net.prober(net.node_netns(c)) for c in CLUSTERS}
        vals: set[str] = set()

        def first_block() -> bool:
            return all(
                int(node_rpc(probers[c], str(pods[c].address), "/status")["sync_info"][
                    "latest_block_height"]) >= 1
                for c in CLUSTERS
            )  # fmt: skip

        def connected_all_signing() -> bool:
            nonlocal vals
            for c in CLUSTERS:
                if int(node_rpc(probers[c], str(pods[c].address), "/net_info")["n_peers"]) != 2:
                    return False
            ip = str(pods["alice"].address)
            if not vals:
                vals = {
                    v["address"]
                    for v in node_rpc(probers["alice"], ip, "/validators")["validators"]
                }
            h = (
                int(node_rpc(probers["alice"], ip, "/status")["sync_info"]["latest_block_height"])
                - 1
            )
            if h < 1:
                return False
            sigs = node_rpc(probers["alice"], ip, f"/commit?height={h}")["signed_header"]["commit"]
            return {
                s["validator_address"] for s in sigs["signatures"] if s["block_id_flag"] == 2
            } == vals

        await eventually(
            "first consumer block", first_block, timeout=240, interval=0.05, not_yet=any_error
        )
        t_block = time.monotonic()
        await eventually(
            "all connected and signing",
            connected_all_signing,
            timeout=240,
            interval=0.05,
            not_yet=any_error,
        )
        t_all = time.monotonic()
        return {
            "create_to_launched": t_launched - t_launch0,
            "launched_to_first_block": t_block - t_launched,
            "launched_to_all_connected_signing": t_all - t_launched,
        }
    finally:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for ctl in ctls:
            await ctl.close()
        if consumer is not None:
            consumer.stop()
        dp.close()
        if consumer_id:
            await asyncio.to_thread(provider.remove_consumer, 0, consumer_id)
        for c in CLUSTERS:
            api = planes[c].admin_client()
            dataplane.delete_pool(api, f"bench-{c}")
            with contextlib.suppress(client.ApiException):
                client.CoreV1Api(api).delete_namespace(ns)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 2),
        "worst_s": round(max(values), 2),
    }


async def measure(runs: int, tmp: Path) -> dict[str, Any]:
    planes: dict[str, ControlPlane] = {}
    provider: ProviderChain | None = None
    try:
        for c in CLUSTERS:
            planes[c] = start_control_plane(c, tmp / "planes" / c)
        provider = start_provider_chain("provider3", tmp / "provider", size=3)
        results = [await one_run(provider, planes, tmp, i) for i in range(runs)]
    finally:
        if provider is not None:
            provider.stop()
        for p in planes.values():
            p.stop()
    return {k: summary([r[k] for r in results]) for k in results[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    before = netlab.root_network_state()
    with tempfile.TemporaryDirectory(prefix="ics-bench-cdp-") as tmp:
        results = asyncio.run(measure(args.runs, Path(tmp)))
    results["root_namespace_unchanged"] = netlab.root_network_state() == before
    results["namespaces_left"] = netlab.our_namespaces()
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        print("consumer chain on the data plane (3 clusters, kube-proxy, LoadBalancer peers)")
        for k in ("create_to_launched", "launched_to_first_block",
                  "launched_to_all_connected_signing"):  # fmt: skip
            s = results[k]
            print(
                f"  {k:36s} median {s['median_s']:6.2f} s"
                f"  worst {s['worst_s']:6.2f} s  (n={s['n']})"
            )
        print(
            f"  root namespace unchanged: {results['root_namespace_unchanged']}; "
            f"namespaces left: {results['namespaces_left'] or 'none'}"
        )
    return 0 if results["root_namespace_unchanged"] and not results["namespaces_left"] else 1


if __name__ == "__main__":
    sys.exit(main())
