"""Measure the discovery service end to end: on-chain edit to ConfigMap, idle memory, restart.

Starts (on 127.0.0.1, like `make localnet`) three control planes, a three-validator
provider chain and one `ics-discovery run` process per cluster, launches a
consumer chain all three opt in to, then:

- edits: `--edits` times (default 20), one validator moves its endpoint
  (validators take turns) and the bench waits until the peers ConfigMap of every
  other cluster (the ones that list that validator) carries the new host. The
  latency is taken from the commit of the block holding the edit (the header
  time of the next block, CometBFT's BFT time of that commit) and, for
  reference, from the header time of the block itself;
- memory: RSS (VmRSS) and peak (VmHWM) of each service process after idling;
- restart: one service is stopped (SIGTERM) and started again; the time from
  the new process's start until its API serves the chain exposed with both peers,
  and the Kubernetes writes it made meanwhile (from its own metrics).

Run from the repository root after `make tools` (one bench at a time: the two
cores are shared):

    .venv/bin/python -m bench.service_latency [--edits 20] [--idle 15]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
from kubernetes import client  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb  # noqa: E402
from discovery._proto.ics.discovery.v1.discovery_pb2_grpc import DiscoveryStub  # noqa: E402
from discovery.peers_configmap import peers_configmap_name  # noqa: E402
from tests.support.chain import ProviderChain, start_provider_chain  # noqa: E402
from tests.support.kube import ControlPlane, start_control_plane  # noqa: E402
from tests.support.lb import create_consumer_pod  # noqa: E402
from tests.support.polling import any_error, wait_until  # noqa: E402
from tests.support.procs import Process, free_ports  # noqa: E402

NAMES = ("alice", "bob", "charlie")
SERVICE_NS = "provider"
CONSUMER_NS = "consumers"
CHAIN_ID = "bench-consumer-1"


@dataclass
class Cluster:
    name: str
    index: int
    plane: ControlPlane
    grpc: str
    metrics: str
    node_id: str
    process: Process | None = None

    def configmap_data(self) -> dict[str, str] | None:
        try:
            cm = client.CoreV1Api(self.plane.admin_client()).read_namespaced_config_map(
                peers_configmap_name(CHAIN_ID), CONSUMER_NS
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(cm.data or {})


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def prepare_namespaces(plane: ControlPlane) -> None:
    core = client.CoreV1Api(plane.admin_client())
    for ns in (SERVICE_NS, CONSUMER_NS):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        wait_until(
            f"default ServiceAccount in {ns}",
            lambda ns=ns: core.read_namespaced_service_account("default", ns) is not None,  # type: ignore[misc]
            timeout=60,
            not_yet=any_error,
        )


def start_service(workdir: Path, cluster: Cluster, chain: ProviderChain) -> Process:
    node = chain.nodes[cluster.index]
    env = {
        "ICS_DISCOVERY_PROVIDER_RPC_URLS": node.rpc_url,
        "ICS_DISCOVERY_PROVIDER_GRPC_URLS": node.grpc_address,
        "ICS_DISCOVERY_OPERATOR_ADDRESS": chain.validators[cluster.index].operator,
        "ICS_DISCOVERY_KUBECONFIG": str(cluster.plane.kubeconfig),
        "ICS_DISCOVERY_SERVICE_NAMESPACE": SERVICE_NS,
        "ICS_DISCOVERY_CONSUMER_NAMESPACE": CONSUMER_NS,
        "ICS_DISCOVERY_GRPC_LISTEN": cluster.grpc,
        "ICS_DISCOVERY_METRICS_LISTEN": cluster.metrics,
        "ICS_DISCOVERY_LOG_FORMAT": "text",
        "ICS_DISCOVERY_ENDPOINT_PROFILE": "testnet",
    }
    process = Process(
        f"discovery-{cluster.name}",
        [sys.executable, "-m", "discovery.cli", "run"],
        workdir / "logs" / f"discovery-{cluster.name}.log",
        env=env,
        cwd=REPO,
    )
    process.start()
    return process


async def converged(cluster: Cluster) -> bool:
    """The cluster's API serves the chain exposed with both other validators as peers."""
    async with grpc.aio.insecure_channel(cluster.grpc) as channel:
        try:
            answer = await DiscoveryStub(channel).ListConsumers(
                pb.ListConsumersRequest(), timeout=2
            )
        except grpc.aio.AioRpcError:
            return False
    return any(
        c.chain_id == CHAIN_ID and c.exposed and c.peer_count == len(NAMES) - 1
        for c in answer.consumers
    )


async def wait_converged(cluster: Cluster, within: float = 120.0) -> float:
    t0 = time.monotonic()
    while not await converged(cluster):
        if time.monotonic() - t0 > within:
            raise TimeoutError(f"{cluster.name} did not converge within {within:g}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


def metrics(cluster: Cluster) -> str:
    with urllib.request.urlopen(f"http://{cluster.metrics}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def rss_kb(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def kube_writes(text: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "ics_discovery_kubernetes_writes_total":
                total += s.value
    return total


def wait_for_host(clusters: list[Cluster], host: str, timeout: float = 60.0) -> dict[str, float]:
    """Wall-clock time each cluster's ConfigMap first showed `host` (polled every 10 ms)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(clusters):
        for c in clusters:
            if c.name in seen:
                continue
            data = c.configmap_data()
            if data is not None and f"@{host}:" in data.get("persistent_peers", ""):
                seen[c.name] = time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host} not published everywhere: {sorted(seen)}")
        time.sleep(0.01)
    return seen


def measure_edits(chain: ProviderChain, clusters: list[Cluster], edits: int) -> dict[str, Any]:
    from_commit: list[float] = []
    from_block: list[float] = []
    for i in range(edits):
        editor = clusters[i % len(clusters)]
        others = [c for c in clusters if c is not editor]
        host = f"198.51.100.{(i % 200) + 20}"
        tx = chain.edit_validator(
            editor.index, details=f"Validator {editor.name} p2p={host} node={editor.node_id}"
        )
        seen = wait_for_host(others, host)
        done = max(seen.values())
        chain.wait_for_height(tx.height + 1)
        block = chain.block_time(tx.height).timestamp()
        commit = chain.block_time(tx.height + 1).timestamp()
        from_commit.append(done - commit)
        from_block.append(done - block)
        say(f"edit {i + 1}/{edits} by {editor.name}: {done - commit:.3f}s after the commit")
    interval = chain.average_block_seconds(max(1, chain.height() - 50), chain.height())
    return {
        "edits": edits,
        "block_interval_seconds": round(interval, 3),
        "from_commit_seconds": summary(from_commit),
        "from_block_time_seconds": summary(from_block),
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "worst": round(max(values), 3),
        "best": round(min(values), 3),
    }


async def measure_restart(workdir: Path, cluster: Cluster, chain: ProviderChain) -> dict[str, Any]:
    assert cluster.process is not None
    t_stop = time.monotonic()
    cluster.process.stop()
    stop_seconds = time.monotonic() - t_stop
    t0 = time.monotonic()
    cluster.process = start_service(workdir, cluster, chain)
    await wait_converged(cluster)
    seconds = time.monotonic() - t0
    return {
        "graceful_stop_seconds": round(stop_seconds, 3),
        "restart_to_converged_seconds": round(seconds, 3),
        "kubernetes_writes_after_restart": kube_writes(metrics(cluster)),
    }


async def run(workdir: Path, edits: int, idle: float) -> dict[str, Any]:
    planes: list[ControlPlane] = []
    chain: ProviderChain | None = None
    clusters: list[Cluster] = []
    try:
        for name in NAMES:
            planes.append(start_control_plane(name, workdir / "clusters" / name))
            prepare_namespaces(planes[-1])
        chain = start_provider_chain("bench", workdir / "chain", size=3)
        ports = free_ports(6)
        for i, name in enumerate(NAMES):
            node_id = f"{i + 1:02x}" * 20
            clusters.append(
                Cluster(
                    name,
                    i,
                    planes[i],
                    f"127.0.0.1:{ports[2 * i]}",
                    f"127.0.0.1:{ports[2 * i + 1]}",
                    node_id,
                )
            )
            chain.edit_validator(
                i, moniker=name, details=f"Validator {name} p2p=203.0.113.{11 + i} node={node_id}"
            )
            create_consumer_pod(
                planes[i].admin_client(), CONSUMER_NS, "consumer-0", CHAIN_ID, ips=[f"10.9.{i}.1"]
            )
        for c in clusters:
            c.process = start_service(workdir, c, chain)
        chain.launch_consumer(CHAIN_ID, [0, 1, 2])
        for c in clusters:
            await wait_converged(c)
        say("converged; measuring edits")
        out: dict[str, Any] = {"edit_to_configmap": measure_edits(chain, clusters, edits)}

        say(f"idling {idle:g}s for memory")
        await asyncio.sleep(idle)
        memory = {}
        for c in clusters:
            assert c.process is not None
            rss, peak = rss_kb(c.process.pid)
            memory[c.name] = {"rss_mb": round(rss / 1024, 1), "peak_mb": round(peak / 1024, 1)}
        out["memory_at_idle"] = memory

        # The counter the restart figure reads is live: the first run's writes show in it.
        out["kubernetes_writes_first_run"] = {c.name: kube_writes(metrics(c)) for c in clusters}
        say("restarting alice's service")
        out["restart"] = await measure_restart(workdir, clusters[0], chain)
        return out
    finally:
        for c in clusters:
            if c.process is not None:
                c.process.stop()
        if chain is not None:
            chain.stop()
        for plane in planes:
            plane.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="discovery service latency, memory, restart")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--idle", type=float, default=15.0, help="seconds idle before RSS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ics-bench-svc-") as tmp:
        results = asyncio.run(run(Path(tmp), args.edits, args.idle))
    results["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
