"""`ics-discovery run` as a real process: it serves; on SIGTERM it releases its Lease and exits 0.

Kubernetes stops a pod with SIGTERM; a service that dies without releasing
its Lease makes the standby replica wait a whole lease duration before
taking over. The process is started exactly as the container starts it
(settings from the environment, credentials from a kubeconfig file).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from tests.support.polling import eventually
from tests.support.procs import REPO, free_ports
from tests.support.service_fixtures import Cluster, publish_endpoints

pytestmark = [pytest.mark.kube, pytest.mark.chain]

LEASE = "ics-discovery-leader"


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def lease_holder(cluster: Cluster) -> str:
    lease = client.CoordinationV1Api(cluster.plane.admin_client()).read_namespaced_lease(
        LEASE, cluster.namespace
    )
    return str(lease.spec.holder_identity or "")


def spawn(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """The service as the container runs it: `ics-discovery run`, settings from the environment."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "discovery.cli", "run"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


async def test_sigterm_releases_the_lease_and_exits_zero(
    clusters: list[Cluster], tmp_path: Path
) -> None:
    alice = clusters[0]
    await publish_endpoints(clusters)
    grpc_port, metrics_port = free_ports(2)
    env = {
        **os.environ,
        "ICS_DISCOVERY_PROVIDER_RPC_URLS": alice.node.rpc_url,
        "ICS_DISCOVERY_PROVIDER_GRPC_URLS": alice.node.grpc_address,
        "ICS_DISCOVERY_OPERATOR_ADDRESS": alice.validator.operator,
        "ICS_DISCOVERY_KUBECONFIG": str(alice.plane.kubeconfig),
        "ICS_DISCOVERY_SERVICE_NAMESPACE": alice.namespace,
        "ICS_DISCOVERY_CONSUMER_NAMESPACE": alice.namespace,
        "ICS_DISCOVERY_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
        "ICS_DISCOVERY_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "ICS_DISCOVERY_LEADER_IDENTITY": "alice-process",
        "ICS_DISCOVERY_LOG_FORMAT": "json",
    }
    log_path = tmp_path / "service.log"
    process = await asyncio.to_thread(spawn, env, log_path)
    try:

        def serving() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"exited {process.returncode}: {log_path.read_text()[-2000:]}")
            return ready(metrics_port) and lease_holder(alice) == "alice-process"

        await eventually("the service ready and leading", serving)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 60)
        assert code == 0, log_path.read_text()[-2000:]
        assert await asyncio.to_thread(lease_holder, alice) == ""
        lines = log_path.read_text().splitlines()
        assert any('"msg": "discovery service stopped"' in line for line in lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
