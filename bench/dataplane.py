"""Measure the data plane: kube-proxy start to routed, EndpointSlice change to routed.

On the shared L2 network of namespaces (tests/support/netlab.py) with one real
control plane (alice), its real kube-proxy in nftables mode in alice's node
namespace, MetalLB's controller and speaker, lbmanager
writes a chain's Service port and EndpointSlice; a prober in bob's node
namespace connects to alice's LoadBalancer address at the chain's derived P2P
port. Printed:

- kube-proxy start to routed: from starting kube-proxy (with its tables
  deleted, so nothing is routed before) to the first connection from bob that
  reaches the pod, and to kube-proxy's first complete rule sync (--starts times);
- EndpointSlice change to routed: the consumer pod's IP alternates between two
  pod addresses (each pod namespace answers with its own name); for each change
  (--changes times), from the moment a watch sees the new address in the
  EndpointSlice lbmanager wrote to the first connection that reaches the new
  pod, and from the Pod status write to that connection (lbmanager included).
  The EndpointSlice time is when this process's watch saw the change; kube-proxy's
  own watch may see it first (a change routed before it reads as 0 ms).
  kube-proxy syncs at most once per `--min-sync-period` (1 s by default, left
  so): changes spaced by less than that (`--pause`) wait for it.

Run as root from the repository root after `make tools`:

    .venv/bin/python -m bench.dataplane [--changes 12] [--starts 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kubernetes import client, watch  # noqa: E402

from discovery.ports import derive_ports  # noqa: E402
from lbmanager import DesiredState, LbSettings  # noqa: E402
from lbmanager.reconciler import LoadBalancerController  # noqa: E402
from tests.support import dataplane, netlab  # noqa: E402
from tests.support.kube import start_control_plane  # noqa: E402
from tests.support.lb import chain, create_consumer_pod, model, set_pod_status  # noqa: E402
from tests.support.polling import wait_until  # noqa: E402

NAMESPACE = "provider"
CHAIN_ID = "consumer-bench-1"
KEY = "1-consumer-bench-1"
P2P = derive_ports(CHAIN_ID).p2p


class SliceWatch:
    """Records (monotonic time, addresses) of every change to the namespace's EndpointSlices."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.events: list[tuple[float, frozenset[str]]] = []
        self._lock = threading.Lock()
        self._w = watch.Watch()  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(
            target=self._run, args=(api, namespace), name="slice-watch", daemon=True
        )
        self._thread.start()

    def _run(self, api: client.ApiClient, namespace: str) -> None:
        disc = client.DiscoveryV1Api(api)
        with contextlib.suppress(Exception):
            for ev in self._w.stream(  # type: ignore[no-untyped-call]
                disc.list_namespaced_endpoint_slice, namespace, timeout_seconds=3600
            ):
                obj = ev["object"]
                addrs = frozenset(a for e in (obj.endpoints or []) for a in (e.addresses or []))
                with self._lock:
                    self.events.append((time.monotonic(), addrs))

    def first_with(self, address: str, after: float) -> float | None:
        with self._lock:
            for t, addrs in self.events:
                if t >= after and address in addrs:
                    return t
        return None

    def stop(self) -> None:
        self._w.stop()  # type: ignore[no-untyped-call]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values) * 1000, 1),
        "worst_ms": round(max(values) * 1000, 1),
        "best_ms": round(min(values) * 1000, 1),
    }


def wait_lb_address(api: client.ApiClient, timeout: float = 60) -> str:
    return str(
        wait_until(
            "a LoadBalancer address",
            lambda: dataplane.lb_address(api, NAMESPACE),
            timeout=timeout,
            interval=0.05,
        )
    )


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    plane = start_control_plane("alice", tmp / "alice")
    net = netlab.build_network(["alice", "bob"], workdir=tmp)
    dp = dataplane.DataPlane(net)
    ctl: LoadBalancerController | None = None
    task: asyncio.Task[None] | None = None
    slices: SliceWatch | None = None
    try:
        api = plane.admin_client()
        client.CoreV1Api(api).create_namespace(
            model(client.V1Namespace, {"metadata": {"name": NAMESPACE}})
        )
        pools = await asyncio.to_thread(dataplane.planned_pools, net, ["alice", "bob"])
        alice = dp.add_cluster("alice", plane, kube_proxy=False)
        dataplane.apply_pool(api, "alice", ["-".join(pools["alice"])])

        pods = [net.add_pod("alice", f"consumer-{i}", 3 + i) for i in range(2)]
        for pod in pods:
            net.serve(pod.netns, pod.address, 26656, pod.name)
        create_consumer_pod(api, NAMESPACE, "consumer-0", KEY, ips=[str(pods[0].address)])
        ctl = LoadBalancerController(api, LbSettings(namespace=NAMESPACE))
        task = asyncio.create_task(ctl.run())
        report = await ctl.apply(DesiredState.of([chain(KEY, P2P, namespace=NAMESPACE)]))
        assert report.ok, report
        lb = await asyncio.to_thread(wait_lb_address, api)
        prober = net.prober(net.node_netns("bob"))

        starts: list[float] = []
        syncs: list[float] = []
        for _ in range(args.starts):
            alice.stop_kube_proxy(flush=True)
            r = await asyncio.to_thread(prober.connect, lb, P2P, 1.0)
            assert not r["ok"], f"routed with kube-proxy stopped: {r}"
            alice.start_kube_proxy()
            starts.append(
                await asyncio.to_thread(dataplane.wait_routed, prober, lb, P2P, "consumer-0", 120)
            )
            syncs.append(await asyncio.to_thread(alice.wait_kube_proxy_synced, 120))

        slices = SliceWatch(api, NAMESPACE)
        to_routed: list[float] = []
        pod_to_routed: list[float] = []
        for i in range(args.changes):
            target = pods[(i + 1) % 2]
            t_write = time.monotonic()
            await asyncio.to_thread(
                set_pod_status, api, NAMESPACE, "consumer-0", ips=[str(target.address)], ready=True
            )
            await asyncio.to_thread(
                dataplane.wait_routed, prober, lb, P2P, f"{target.name} {target.address}", 60
            )
            t_routed = time.monotonic()
            t_slice = slices.first_with(str(target.address), t_write)
            if t_slice is None:  # the watch event may trail the routed connection
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    t_slice = slices.first_with(str(target.address), t_write)
                    if t_slice is not None:
                        break
            assert t_slice is not None, "the watch never saw the EndpointSlice change"
            to_routed.append(max(0.0, t_routed - t_slice))
            pod_to_routed.append(t_routed - t_write)
            await asyncio.sleep(args.pause)
        return {
            "lb_address": lb,
            "port": P2P,
            "kube_proxy_start_to_routed": summary(starts),
            "kube_proxy_start_to_first_sync": summary(syncs),
            "endpointslice_change_to_routed": summary(to_routed),
            "pod_ip_write_to_routed": summary(pod_to_routed),
            "control_plane_startup_seconds": round(plane.startup_seconds, 2),
        }
    finally:
        if slices is not None:
            slices.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ctl is not None:
            await ctl.close()
        dp.close()
        plane.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=12, help="EndpointSlice changes (>= 10)")
    parser.add_argument("--starts", type=int, default=3, help="kube-proxy cold starts")
    parser.add_argument(
        "--pause",
        type=float,
        default=1.2,
        help="seconds between changes (kube-proxy syncs at most once per --min-sync-period, 1 s)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    before = netlab.root_network_state()
    with tempfile.TemporaryDirectory(prefix="ics-bench-dp-") as tmp:
        results = asyncio.run(measure(args, Path(tmp)))
    results["root_namespace_unchanged"] = netlab.root_network_state() == before
    results["namespaces_left"] = netlab.our_namespaces()
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0

    def line(label: str, s: dict[str, float]) -> None:
        print(
            f"  {label:34s} median {s['median_ms']:8.1f} ms  worst {s['worst_ms']:8.1f} ms"
            f"  best {s['best_ms']:8.1f} ms  (n={s['n']})"
        )

    print(
        f"data plane: LoadBalancer {results['lb_address']}:{results['port']} (kube-proxy nftables)"
    )
    line("kube-proxy start -> routed", results["kube_proxy_start_to_routed"])
    line("kube-proxy start -> first sync", results["kube_proxy_start_to_first_sync"])
    line("EndpointSlice change -> routed", results["endpointslice_change_to_routed"])
    line("Pod IP write -> routed (lbmanager)", results["pod_ip_write_to_routed"])
    print(
        f"  root namespace unchanged: {results['root_namespace_unchanged']}; "
        f"namespaces left: {results['namespaces_left'] or 'none'}"
    )
    return 0 if results["root_namespace_unchanged"] and not results["namespaces_left"] else 1


if __name__ == "__main__":
    sys.exit(main())
