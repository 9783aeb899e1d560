"""Measure lbmanager on a real control plane: cold, steady and +1-chain reconciles, pod latency.

Targets (issue 6): a cold reconcile of 500 chains within 10 s with at most 2
write requests per chain; a steady-state reconcile with zero writes; adding one
chain to 500 with at most 2 writes. Also measured: how long after a pod's IP
changes its new IP is in the chain's EndpointSlice (target 2 s). Write requests
are counted at the HTTP client (every POST/PUT/PATCH/DELETE sent), not taken
from lbmanager's own report. Run from the repository root after `make tools`:

    .venv/bin/python -m bench.lb_reconcile [--chains 500] [--no-pods] [--restarts 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kubernetes import client  # noqa: E402

from lbmanager import DesiredState, LbSettings  # noqa: E402
from lbmanager.naming import slice_name  # noqa: E402
from lbmanager.reconciler import LoadBalancerController, LoadBalancerReconciler  # noqa: E402
from tests.support.kube import start_control_plane  # noqa: E402
from tests.support.lb import (  # noqa: E402
    CountingApiClient,
    chain,
    counting_client,
    create_consumer_pod,
    model,
    set_pod_status,
)

NAMESPACE = "provider"
CONSUMERS = "consumers"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def pod_ip(i: int, generation: int = 0) -> str:
    return f"10.{100 + generation % 100}.{i // 250}.{i % 250 + 1}"


def measure_reconciles(api: CountingApiClient, n: int, max_ports: int | None) -> dict[str, Any]:
    settings = LbSettings(namespace=NAMESPACE, max_ports_per_service=max_ports)
    rec = LoadBalancerReconciler(api, settings)
    desired = DesiredState.of(
        chain(f"chain-{i:04d}", 20000 + i, namespace=CONSUMERS) for i in range(n)
    )
    out: dict[str, Any] = {"chains": n}

    api.reset()
    report, secs = timed(lambda: rec.reconcile(desired))
    assert report.ok, [c.error for c in report.chains if c.error][:3]
    out["cold"] = {
        "seconds": secs,
        "writes": len(api.writes),
        "writes_per_chain": len(api.writes) / n,
    }

    api.reset()
    report, secs = timed(lambda: rec.reconcile(desired))
    out["steady"] = {"seconds": secs, "writes": len(api.writes)}

    fresh = LoadBalancerReconciler(api, settings)
    api.reset()
    report, secs = timed(lambda: fresh.reconcile(desired))
    out["restarted_steady"] = {"seconds": secs, "writes": len(api.writes)}

    more = DesiredState.of([*desired.chains, chain("one-more", 29999, namespace=CONSUMERS)])
    api.reset()
    report, secs = timed(lambda: rec.reconcile(more))
    assert report.ok
    out["add_one"] = {"seconds": secs, "writes": len(api.writes)}

    fewer = DesiredState.of(more.chains[1:])
    api.reset()
    report, secs = timed(lambda: rec.reconcile(fewer))
    out["remove_one"] = {"seconds": secs, "writes": len(api.writes)}
    return out


async def measure_pod_latency(admin: client.ApiClient, n: int, restarts: int) -> dict[str, Any]:
    """Change a pod's IP (a restart elsewhere) and time until the slice shows it."""
    settings = LbSettings(namespace=NAMESPACE)
    ctl = LoadBalancerController(admin, settings)
    desired = DesiredState.of(
        chain(f"chain-{i:04d}", 20000 + i, namespace=CONSUMERS) for i in range(n)
    )
    task = asyncio.create_task(ctl.run())
    disc = client.DiscoveryV1Api(admin)
    latencies: list[float] = []
    try:
        report, _ = await ctl.apply(desired), None
        assert report.ok
        for r in range(restarts):
            i = (r * 37) % n
            key = f"chain-{i:04d}"
            new_ip = pod_ip(i, r + 1)
            name = slice_name(settings.service_name, key, "IPv4")
            t0 = time.perf_counter()
            await asyncio.to_thread(
                set_pod_status, admin, CONSUMERS, f"node-{i:04d}", ips=[new_ip], ready=True
            )
            while True:
                s = await asyncio.to_thread(disc.read_namespaced_endpoint_slice, name, NAMESPACE)
                if [a for e in s.endpoints or [] for a in e.addresses] == [new_ip]:
                    break
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError(f"slice of {key} did not follow its pod within 30 s")
                await asyncio.sleep(0.005)
            latencies.append(time.perf_counter() - t0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await ctl.close()
    return {
        "restarts": restarts,
        "median_seconds": statistics.median(latencies),
        "max_seconds": max(latencies),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=500)
    parser.add_argument("--no-pods", action="store_true", help="chains without consumer pods")
    parser.add_argument("--restarts", type=int, default=20, help="pod IP changes to time (0: skip)")
    parser.add_argument("--max-ports", type=int, default=None, help="also shard the Service")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ics-bench-lb-") as tmp:
        plane = start_control_plane("bench", Path(tmp) / "cp")
        try:
            admin = plane.admin_client()
            core = client.CoreV1Api(admin)
            for ns in (NAMESPACE, CONSUMERS):
                core.create_namespace(model(client.V1Namespace, {"metadata": {"name": ns}}))
            with_pods = not args.no_pods
            setup = 0.0
            if with_pods:
                _, setup = timed(
                    lambda: [
                        create_consumer_pod(
                            admin, CONSUMERS, f"node-{i:04d}", f"chain-{i:04d}", ips=[pod_ip(i)]
                        )
                        for i in range(args.chains)
                    ]
                )
            api = counting_client(admin)
            results = measure_reconciles(api, args.chains, args.max_ports)
            results["pods"] = with_pods
            results["control_plane_startup_seconds"] = plane.startup_seconds
            results["pod_setup_seconds"] = setup
            if with_pods and args.restarts > 0:
                results["pod_ip_change"] = asyncio.run(
                    measure_pod_latency(admin, args.chains, args.restarts)
                )
        finally:
            plane.stop()

    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0
    n = results["chains"]
    c, s, rs, a1, r1 = (
        results[k] for k in ("cold", "steady", "restarted_steady", "add_one", "remove_one")
    )
    print(
        f"lbmanager reconcile, real kube-apiserver, {n} chains, pods={'yes' if with_pods else 'no'}"
    )
    print(
        f"  cold reconcile     {c['seconds']:6.2f} s  {c['writes']:4d} writes "
        f"({c['writes_per_chain']:.3f}/chain)   target <= 10 s, <= 2/chain"
    )
    print(
        f"  steady state       {s['seconds']:6.2f} s  {s['writes']:4d} writes            target 0"
    )
    print(
        f"  after restart      {rs['seconds']:6.2f} s  {rs['writes']:4d} writes            target 0"
    )
    print(
        f"  add one chain      {a1['seconds']:6.2f} s  {a1['writes']:4d} writes"
        "            target <= 2"
    )
    print(f"  remove one chain   {r1['seconds']:6.2f} s  {r1['writes']:4d} writes")
    if "pod_ip_change" in results:
        p = results["pod_ip_change"]
        print(
            f"  pod IP -> slice    median {p['median_seconds'] * 1000:.0f} ms, "
            f"max {p['max_seconds'] * 1000:.0f} ms over {p['restarts']} changes   target <= 2 s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
