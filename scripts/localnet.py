"""`make localnet`: three validator clusters, a provider chain and the service, on 127.0.0.1.

Starts, without Docker: three Kubernetes control planes (alice, bob, charlie:
etcd, kube-apiserver, kube-controller-manager), a three-validator Interchain
Security provider chain (one node per validator), each validator's endpoint
published on chain, and one `ics-discovery run` per cluster. Then it creates a
consumer chain all three opt in to, adds a stand-in consumer pod per cluster
(a Pod object whose IP and readiness this script writes, as no kubelet runs)
and shows, with `ics-discovery status`, each cluster's ports and peers
converging. Everything keeps running after the script returns; state, logs
and pids live under ./localnet/, and `make localnet-down` stops it all.

    python scripts/localnet.py up     # what `make localnet` runs
    python scripts/localnet.py down   # what `make localnet-down` runs
    python scripts/localnet.py status # `ics-discovery status` of every cluster
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kubernetes import client  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from discovery.nodekey import encode_node_key, generate_node_key  # noqa: E402
from tests.support.chain import ProviderChain, start_provider_chain  # noqa: E402
from tests.support.kube import ControlPlane, start_control_plane  # noqa: E402
from tests.support.lb import create_consumer_pod  # noqa: E402
from tests.support.procs import Process, TestBedError, free_ports, pids_alive, wait_for  # noqa: E402

NAMES = ("alice", "bob", "charlie")
SERVICE_NAMESPACE = "provider"
CONSUMER_NAMESPACE = "consumers"
CONSUMER_CHAIN_ID = "localnet-consumer-1"
DEFAULT_DIR = REPO / "localnet"


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    index: int
    kubeconfig: str
    grpc: str
    metrics: str
    operator: str
    host: str
    node_id: str
    pod_ip: str


def say(text: str) -> None:
    print(f"[localnet] {text}", flush=True)


def state_path(root: Path) -> Path:
    return root / "state.json"


def read_state(root: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(state_path(root).read_text())
    except FileNotFoundError:
        return None
    return doc if isinstance(doc, dict) else None


def write_state(root: Path, doc: dict[str, Any]) -> None:
    tmp = state_path(root).with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(state_path(root))


def live_pids(doc: dict[str, Any]) -> list[int]:
    return pids_alive([int(p) for p in doc.get("pids", {}).values()])


# --- up ----------------------------------------------------------------------------


def create_namespace(plane: ControlPlane, name: str) -> None:
    core = client.CoreV1Api(plane.admin_client())
    with contextlib.suppress(ApiException):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Pods are refused until the controller manager made the default ServiceAccount.
    wait_for(
        f"{plane.name}: default ServiceAccount in {name}",
        lambda: core.read_namespaced_service_account("default", name) is not None,
        timeout=60,
    )


def start_service(root: Path, plane: ControlPlane, chain: ProviderChain, info: ClusterInfo) -> int:
    env = {
        "ICS_DISCOVERY_PROVIDER_RPC_URLS": chain.nodes[info.index].rpc_url,
        "ICS_DISCOVERY_PROVIDER_GRPC_URLS": chain.nodes[info.index].grpc_address,
        "ICS_DISCOVERY_OPERATOR_ADDRESS": info.operator,
        "ICS_DISCOVERY_KUBECONFIG": str(plane.kubeconfig),
        "ICS_DISCOVERY_SERVICE_NAMESPACE": SERVICE_NAMESPACE,
        "ICS_DISCOVERY_CONSUMER_NAMESPACE": CONSUMER_NAMESPACE,
        "ICS_DISCOVERY_GRPC_LISTEN": info.grpc,
        "ICS_DISCOVERY_METRICS_LISTEN": info.metrics,
        "ICS_DISCOVERY_RESYNC_INTERVAL": "60",
        "ICS_DISCOVERY_LOG_FORMAT": "text",
        "ICS_DISCOVERY_ENDPOINT_PROFILE": "testnet",
    }
    process = Process(
        f"discovery-{info.name}",
        [sys.executable, "-m", "discovery.cli", "run"],
        root / "logs" / f"discovery-{info.name}.log",
        env=env,
        cwd=REPO,
    )
    process.start()
    return process.pid


def write_node_key(root: Path, name: str) -> str:
    """A real consumer node key for the validator (mode 0600); its node ID goes on chain."""
    key = generate_node_key()
    path = root / "keys" / f"{name}-node_key.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(encode_node_key(key))
    return str(key.node_id)


def up(root: Path, wait: float) -> int:
    doc = read_state(root)
    if doc is not None and live_pids(doc):
        say(f"already running (state in {state_path(root)}); run `make localnet-down` first")
        return 1
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    state: dict[str, Any] = {"pids": {}, "clusters": {}, "started": time.time()}
    t0 = time.monotonic()
    try:
        planes: dict[str, ControlPlane] = {}
        for name in NAMES:
            say(f"starting control plane {name} (etcd, kube-apiserver, kube-controller-manager)")
            plane = start_control_plane(name, root / "clusters" / name)
            planes[name] = plane
            for component, process in plane.processes.items():
                state["pids"][f"{name}/{component}"] = process.pid
            write_state(root, state)
        say("starting the 3-validator provider chain")
        chain = start_provider_chain("localnet", root / "chain", size=3)
        for node in chain.nodes:
            assert node.process is not None
            state["pids"][f"chain/{node.moniker}"] = node.process.pid
        write_state(root, state)

        ports = free_ports(6)
        infos: list[ClusterInfo] = []
        for i, name in enumerate(NAMES):
            infos.append(
                ClusterInfo(
                    name=name,
                    index=i,
                    kubeconfig=str(planes[name].kubeconfig),
                    grpc=f"127.0.0.1:{ports[2 * i]}",
                    metrics=f"127.0.0.1:{ports[2 * i + 1]}",
                    operator=chain.validators[i].operator,
                    # TEST-NET-3 addresses: the LoadBalancer IPs MetalLB would hand out.
                    host=f"203.0.113.{11 + i}",
                    node_id=write_node_key(root, name),
                    pod_ip=f"10.244.{i}.10",
                )
            )
        for info in infos:
            create_namespace(planes[info.name], SERVICE_NAMESPACE)
            create_namespace(planes[info.name], CONSUMER_NAMESPACE)
            say(f"{info.name} publishes its endpoint node={info.node_id} p2p={info.host}")
            chain.edit_validator(
                info.index,
                moniker=info.name,
                details=f"Validator {info.name} node={info.node_id} p2p={info.host}",
            )
        for info in infos:
            pid = start_service(root, planes[info.name], chain, info)
            state["pids"][f"discovery/{info.name}"] = pid
            state["clusters"][info.name] = info.__dict__
            say(f"ics-discovery run for {info.name}: API {info.grpc}, metrics {info.metrics}")
        write_state(root, state)

        for info in infos:
            create_consumer_pod(
                planes[info.name].admin_client(),
                CONSUMER_NAMESPACE,
                "consumer-node-0",
                CONSUMER_CHAIN_ID,
                ips=[info.pod_ip],
            )
        say(f"creating consumer chain {CONSUMER_CHAIN_ID}; all three validators opt in")
        consumer_id = chain.launch_consumer(CONSUMER_CHAIN_ID, [0, 1, 2])
        state["consumer"] = {"chain_id": CONSUMER_CHAIN_ID, "consumer_id": consumer_id}
        write_state(root, state)
        say(f"consumer {consumer_id} launched at height {chain.height()}; watching convergence")
        converged = asyncio.run(watch_convergence(infos, wait))
    except BaseException:
        say("start-up failed; stopping what was started")
        down(root, keep_logs=True)
        raise
    elapsed = time.monotonic() - t0
    if not converged:
        say(f"not converged within {wait:.0f}s; logs in {root / 'logs'} (still running)")
        return 1
    say(f"converged; the whole localnet took {elapsed:.0f}s to start")
    say("try:  .venv/bin/ics-discovery status --validators --address " + infos[0].grpc)
    say(f"      KUBECONFIG={infos[0].kubeconfig} (admin of alice's cluster)")
    say("stop: make localnet-down")
    return 0


async def cluster_summary(info: ClusterInfo) -> tuple[bool, str]:
    """(converged, one line) from the cluster's gRPC API."""
    import grpc

    from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb
    from discovery._proto.ics.discovery.v1.discovery_pb2_grpc import DiscoveryStub

    async with grpc.aio.insecure_channel(info.grpc) as channel:
        stub = DiscoveryStub(channel)
        try:
            consumers = await stub.ListConsumers(pb.ListConsumersRequest(), timeout=3)
        except grpc.aio.AioRpcError as e:
            return False, f"{info.name}: API not answering yet ({e.code().name})"
    chain = next((c for c in consumers.consumers if c.chain_id == CONSUMER_CHAIN_ID), None)
    if chain is None:
        return False, f"{info.name}: height {consumers.height}, consumer not seen yet"
    line = (
        f"{info.name}: height {consumers.height}, {chain.phase.removeprefix('CONSUMER_PHASE_')}, "
        f"exposed={'yes' if chain.exposed else 'no'}, p2p port {chain.ports.p2p or '-'}, "
        f"{chain.peer_count} peers"
    )
    if chain.problem:
        line += f", problem: {chain.problem}"
    return chain.exposed and chain.peer_count == len(NAMES) - 1, line


def print_status(info: ClusterInfo) -> None:
    print(f"\n===== {info.name}: ics-discovery status --address {info.grpc} =====", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "discovery.cli",
            "status",
            "--address",
            info.grpc,
            "--metrics-address",
            info.metrics,
        ],
        cwd=REPO,
        check=False,
    )


async def watch_convergence(infos: list[ClusterInfo], wait: float) -> bool:
    """Print each cluster's line whenever it changes; True once all have converged."""
    deadline = time.monotonic() + wait
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        results = await asyncio.gather(*(cluster_summary(i) for i in infos))
        for info, (_, line) in zip(infos, results, strict=True):
            if last.get(info.name) != line:
                say(line)
                last[info.name] = line
        if all(ok for ok, _ in results):
            for info in infos:
                print_status(info)
            return True
        await asyncio.sleep(0.5)
    return False


# --- down --------------------------------------------------------------------------


def stop_pids(labelled: dict[str, int], grace: float = 20.0) -> list[int]:
    """SIGTERM each process group, wait, SIGKILL what is left; the pids still alive."""
    for pid in labelled.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pids_alive(list(labelled.values())):
        time.sleep(0.2)
    for pid in pids_alive(list(labelled.values())):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    time.sleep(0.5)
    return pids_alive(list(labelled.values()))


def down(root: Path, keep_logs: bool = True) -> int:
    doc = read_state(root)
    if doc is None:
        say(f"nothing to stop ({state_path(root)} does not exist)")
        return 0
    pids: dict[str, int] = {k: int(v) for k, v in doc.get("pids", {}).items()}
    # Services first (they release their Leases), then the chain, then the clusters.
    order = ("discovery/", "chain/", "")
    left: list[int] = []
    for prefix in order:
        group = {k: v for k, v in pids.items() if k.startswith(prefix)}
        for k in group:
            pids.pop(k)
        if group:
            say(f"stopping {', '.join(sorted(group))}")
            left += stop_pids(group)
    if left:
        say(f"processes still alive: {left}")
        return 1
    for sub in ("clusters", "chain", "keys"):
        shutil.rmtree(root / sub, ignore_errors=True)
    state_path(root).unlink(missing_ok=True)
    if not keep_logs:
        shutil.rmtree(root, ignore_errors=True)
    say("stopped" + (f"; logs kept in {root / 'logs'}" if keep_logs else ""))
    return 0


def status(root: Path) -> int:
    doc = read_state(root)
    if doc is None:
        say("not running")
        return 1
    for name in NAMES:
        info = doc.get("clusters", {}).get(name)
        if info:
            print_status(ClusterInfo(**info))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory")
    parser.add_argument("--wait", type=float, default=180.0, help="seconds to wait to converge")
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    try:
        if args.action == "up":
            return up(root, args.wait)
        if args.action == "down":
            return down(root)
        return status(root)
    except TestBedError as e:
        say(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
