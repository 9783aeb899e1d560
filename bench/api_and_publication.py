"""Measure the service's outer parts: gRPC API, WatchPeers, /metrics, peers ConfigMap, Lease.

What is measured, all on 127.0.0.1 with real servers:
- gRPC `GetPeers` round trips (median, p99) against a state of N chains;
- `WatchPeers`: time from `StateStore.update` to the change reaching W
  concurrent watchers (median, worst over the changes);
- one `/metrics` scrape;
- on a real control plane: peers ConfigMap create, unchanged apply (and its
  write count, target 0), update; leader takeover after a release and after a
  crash (lease duration 3 s).
Run from the repository root after `make tools`:

    .venv/bin/python -m bench.api_and_publication [--chains 50] [--watchers 20] [--changes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
from kubernetes import client  # noqa: E402

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb  # noqa: E402
from discovery._proto.ics.discovery.v1.discovery_pb2_grpc import DiscoveryStub  # noqa: E402
from discovery.api import ApiServer  # noqa: E402
from discovery.configmap_control import Outcome, PeersConfigMapControl  # noqa: E402
from discovery.metrics import MetricsServer, ServiceMetrics  # noqa: E402
from discovery.peers_configmap import PeersConfigMap, build_peers_configmap  # noqa: E402
from discovery.state import DiscoveryState, StateStore  # noqa: E402
from lbmanager.kube import KubeRest  # noqa: E402
from lbmanager.leader import LeaderElector, LeaseConfig  # noqa: E402
from tests.support.discovery_states import (  # noqa: E402
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    SampleValidator,
    build_state,
)
from tests.support.kube import start_control_plane  # noqa: E402
from tests.support.polling import eventually  # noqa: E402


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def state_with(chains: int, height: int, bob_host: str) -> DiscoveryState:
    bob = SampleValidator("bob", f"p2p={bob_host} node={'02' * 20}", BOB.index)
    return build_state(
        height=height,
        validators=(ALICE, bob, CAROL, MALLORY),
        chains={str(i): f"chain-{i}" for i in range(1, chains + 1)},
    )


def scrape(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback http
        return bytes(resp.read())


async def bench_api(chains: int, watchers: int, changes: int) -> None:
    store = StateStore(state_with(chains, 1, "198.51.100.2"))
    server = ApiServer(store, "127.0.0.1:0")
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = DiscoveryStub(channel)
        samples = []
        for i in range(500):
            started = time.perf_counter()
            await stub.GetPeers(pb.GetPeersRequest(chain_id=f"chain-{i % chains + 1}"))
            samples.append(time.perf_counter() - started)
        samples.sort()
        p99 = samples[int(len(samples) * 0.99)]
        print(
            f"GetPeers round trip ({chains} chains): "
            f"median {ms(statistics.median(samples))}, p99 {ms(p99)}"
        )

        streams = [
            stub.WatchPeers(pb.WatchPeersRequest(chain_id="chain-1")).__aiter__()
            for _ in range(watchers)
        ]
        for s in streams:
            await anext(s)
        delays: list[float] = []
        for n in range(changes):
            state = state_with(chains, n + 2, f"198.51.100.{(n % 200) + 10}")
            published = time.perf_counter()
            store.update(state)
            await asyncio.gather(*(anext(s) for s in streams))
            delays.append(time.perf_counter() - published)
        print(
            f"WatchPeers publish-to-{watchers}-watchers: median "
            f"{ms(statistics.median(delays))}, worst {ms(max(delays))} over {changes} changes"
        )
    metrics = ServiceMetrics()
    metrics.observe_state(store.current)
    http = MetricsServer(metrics, "127.0.0.1:0")
    await http.start()
    url = f"http://127.0.0.1:{http.port}/metrics"
    scrapes = []
    for _ in range(50):
        started = time.perf_counter()
        await asyncio.to_thread(scrape, url)
        scrapes.append(time.perf_counter() - started)
    print(f"/metrics scrape ({chains} chains): median {ms(statistics.median(scrapes))}")
    await http.stop()
    await server.stop(1)


async def idle() -> None:
    """The leader's work in this benchmark: nothing, until cancelled."""
    await asyncio.Event().wait()


async def until(check: Callable[[], bool], task: asyncio.Task[None], limit: float = 20) -> None:
    """Poll in-process state; fail at once if the elector `task` died."""

    def held() -> bool:
        if task.done():
            task.result()
            raise RuntimeError("elector stopped")
        return check()

    await eventually("the elector's state", held, timeout=limit, interval=0.01, in_thread=False)


async def bench_kube(namespace: str, rest: KubeRest) -> None:
    state = state_with(1, 1, "198.51.100.2")
    chain = state.chains[0]
    peers, ports = chain.peers, chain.ports
    assert peers is not None
    assert ports is not None

    def cm(drop: int = 0) -> PeersConfigMap:
        return build_peers_configmap(
            chain_id=chain.chain_id,
            consumer_id=chain.consumer_id,
            namespace=namespace,
            peers=peers.peers[drop:],
            left_out=peers.left_out,
            ports=ports.ports,
        )

    control = PeersConfigMapControl(rest)
    t = time.perf_counter()
    assert await control.apply(cm()) is Outcome.CREATED
    created = time.perf_counter() - t
    unchanged = []
    for _ in range(20):
        t = time.perf_counter()
        assert await control.apply(cm()) is Outcome.UNCHANGED
        unchanged.append(time.perf_counter() - t)
    t = time.perf_counter()
    assert await control.apply(cm(drop=1)) is Outcome.UPDATED
    updated = time.perf_counter() - t
    writes_when_unchanged = sum(control.writes.values()) - 2  # the create and the update
    print(
        f"peers ConfigMap: create {ms(created)}, unchanged apply median "
        f"{ms(statistics.median(unchanged))} ({writes_when_unchanged} writes in 20), "
        f"update {ms(updated)}"
    )

    for crash in (False, True):
        waited = await takeover(rest, namespace, crash=crash)
        what = "crash (lease expiry)" if crash else "release"
        print(f"leader takeover after {what}: {waited:.2f} s (lease 3 s, retry 0.5 s)")


async def takeover(rest: KubeRest, namespace: str, *, crash: bool) -> float:
    """Seconds from the leader stopping (crash: no release) to the other one leading."""
    lease = "bench-crash" if crash else "bench-release"
    configs = [LeaseConfig(namespace, lease, who, 3.0, 2.0, 0.5) for who in "ab"]
    a = LeaderElector(rest, configs[0], release_on_exit=not crash)
    b = LeaderElector(rest, configs[1])
    ta = asyncio.ensure_future(a.run(idle))
    await until(lambda: a.is_leader, ta)
    tb = asyncio.ensure_future(b.run(idle))
    await until(lambda: b.observed_holder == "a", tb)
    ta.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ta
    stopped = time.perf_counter()
    await until(lambda: b.is_leader, tb)
    waited = time.perf_counter() - stopped
    tb.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tb
    return waited


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=50)
    parser.add_argument("--watchers", type=int, default=20)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--no-kube", action="store_true", help="skip the control-plane part")
    args = parser.parse_args()
    # A terminated run must still stop the control plane it started (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(bench_api(args.chains, args.watchers, args.changes))
    if args.no_kube:
        return 0
    with tempfile.TemporaryDirectory(prefix="ics-bench-") as tmp:
        plane = start_control_plane("bench", Path(tmp) / "cp", with_controller_manager=False)
        try:
            api = plane.admin_client()
            client.CoreV1Api(api).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name="bench"))
            )
            asyncio.run(bench_kube("bench", KubeRest(api, timeout=2.0)))
        finally:
            plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
