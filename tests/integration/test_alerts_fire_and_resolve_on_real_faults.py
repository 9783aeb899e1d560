"""A real Prometheus scrapes a running service and its alerts fire on real faults, then resolve.

alice's discovery service runs against her control plane and the shared
three-validator provider chain; the Prometheus from `make tools` scrapes its
/metrics every second and evaluates the chart's own rules (rendered by `helm
template` with short `for:` durations). Three faults, one after the other:

- the provider node goes away: alice's RPC/WebSocket URL is a TCP relay on
  127.0.0.1 to her node, and closing the relay is, for the service, exactly a
  stopped node (the session's chain itself must keep running for the other
  tests); reopening it is the node coming back;
- the consumer pod is deleted, then created again;
- alice's endpoint on chain is changed by hand to an address that is not her
  LoadBalancer's, then set back.

Each time the matching alert must reach `firing` in /api/v1/alerts with the
chain ID in its labels where it is per chain, and must leave once the fault
ends. Then every query of the Grafana dashboard runs against the same
Prometheus and must be valid and return series. Every wait is bounded;
Prometheus is stopped at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from kubernetes import client

from discovery.api import SERVICE_NAME as DISCOVERY_SERVICE
from tests.support.alerts import chart_rules
from tests.support.polling import any_error, eventually, wait_until
from tests.support.procs import Process, free_ports, tool
from tests.support.service_fixtures import SERVICE_NAME, Cluster, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain, pytest.mark.helm]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "helm" / "ics-validator" / "files" / "dashboard.json"
FAST = {
    "streamDownFor": "2s",
    "consumerPodFor": "2s",
    "ownEndpointFor": "2s",
    "chainNotExposedFor": "2s",
}
CONSUMER_IP = "10.244.0.17"
ELSEWHERE = "198.51.100.77"


# --- a relay that stands for the provider node's RPC port -------------------------


class Relay:
    """TCP relay 127.0.0.1:port -> target; `close()` drops it and every connection."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        (self.port,) = free_ports(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            self._writers.discard(up_writer)


# --- Prometheus ----------------------------------------------------------------------


class Prometheus:
    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port

    def get(self, path: str, **query: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - http on loopback
            return json.loads(resp.read())

    def alerts(self, name: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/alerts")
        assert answer["status"] == "success"
        return [a for a in answer["data"]["alerts"] if a["labels"]["alertname"] == name]

    def firing(self, name: str, **labels: str) -> dict[str, Any] | None:
        for a in self.alerts(name):
            if a["state"] == "firing" and all(a["labels"].get(k) == v for k, v in labels.items()):
                return a
        return None

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


@contextlib.contextmanager
def prometheus_scraping(
    folder: Path, target_port: int, rules: dict[str, Any]
) -> Iterator[Prometheus]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [
            {
                "job_name": "ics-discovery",
                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    (port,) = free_ports(1)
    process = Process(
        "prometheus",
        [
            str(tool("prometheus")),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        folder / "prometheus.log",
        cwd=folder,
    )
    process.start()
    try:
        prom = Prometheus(process, port)

        def ready() -> bool:
            url = f"http://127.0.0.1:{port}/-/ready"
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)

        wait_until(
            "Prometheus ready",
            ready,
            timeout=60,
            interval=0.3,
            alive=process.exit_reason,
            not_yet=any_error,
        )
        yield prom
    finally:
        process.stop()


# --- helpers -----------------------------------------------------------------------------


def set_ingress(cluster: Cluster, ip: str) -> None:
    client.CoreV1Api(cluster.plane.admin_client()).patch_namespaced_service_status(
        SERVICE_NAME,
        cluster.namespace,
        {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}},
        _content_type="application/merge-patch+json",
    )


def delete_pod(cluster: Cluster, name: str) -> None:
    cluster.core().delete_namespaced_pod(name, cluster.namespace, grace_period_seconds=0)


def reflected_services(port: int) -> list[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


def dashboard_queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def concrete(expr: str) -> str:
    """A dashboard query as Grafana sends it with every job selected."""
    return expr.replace("$__rate_interval", "5m").replace('=~"$job"', '=~".*"')


@pytest.fixture
async def consumer_chain(clusters: list[Cluster]) -> AsyncIterator[str]:
    """A launched consumer chain all three opted in to; alice and bob publish endpoints,
    charlie none (so a left-out validator shows on the dashboard)."""
    alice, bob, charlie = clusters
    chain = alice.chain
    await asyncio.gather(
        asyncio.to_thread(chain.edit_validator, alice.index, details=alice.details()),
        asyncio.to_thread(chain.edit_validator, bob.index, details=bob.details()),
        asyncio.to_thread(chain.edit_validator, charlie.index, details="Validator charlie"),
    )
    chain_id = f"alerts-{secrets.token_hex(3)}-1"
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        yield chain_id
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
        await asyncio.to_thread(chain.edit_validator, charlie.index, details=charlie.details())


async def until(what: str, check: Any, within: float = 90.0) -> Any:
    return await eventually(what, check, timeout=within, interval=0.5)


async def test_alerts_fire_on_faults_and_resolve_and_the_dashboard_queries_answer(
    clusters: list[Cluster], consumer_chain: str, tmp_path: Path
) -> None:
    alice = clusters[0]
    chain_id = consumer_chain
    node_rpc = urllib.parse.urlsplit(alice.node.rpc_url)
    assert node_rpc.hostname == "127.0.0.1"
    assert node_rpc.port is not None
    relay = Relay(node_rpc.hostname, node_rpc.port)
    await relay.open()
    rules = await asyncio.to_thread(chart_rules, **FAST)
    try:
        async with running_service(
            alice, provider_rpc_urls=[f"http://127.0.0.1:{relay.port}"]
        ) as running:
            service = running.service
            # Reflection is on by default in the real service.
            assert DISCOVERY_SERVICE in await asyncio.to_thread(
                reflected_services, service.api.port
            )
            await eventually(
                "alice exposing the chain",
                lambda: (v := service.store.current.chain(chain_id)) is not None and v.exposed,
                in_thread=False,
            )
            await asyncio.to_thread(alice.add_consumer_pod, chain_id, CONSUMER_IP)
            await asyncio.to_thread(set_ingress, alice, alice.host)

            with prometheus_scraping(tmp_path / "prometheus", service.http.port, rules) as prom:
                ready_pod = f'ics_discovery_consumer_pods{{chain_id="{chain_id}",ready="true"}}'
                await until(
                    "a scrape with our endpoint and a ready pod",
                    lambda: (
                        prom.query("ics_discovery_own_endpoint_matches == 1")
                        and prom.query(f"{ready_pod} == 1")
                    ),
                )
                # One replica without leader election: it leads, and took the lead once.
                assert prom.query("ics_discovery_leader == 1")
                assert prom.query("ics_discovery_leadership_changes_total == 1")
                assert prom.alerts("IcsDiscoveryProviderStreamDown") == []
                assert prom.alerts("IcsDiscoveryConsumerPodNotReady") == []
                assert prom.alerts("IcsDiscoveryOwnEndpointDiffers") == []

                # 1. The provider node goes away, then comes back.
                await relay.close()
                await until(
                    "IcsDiscoveryProviderStreamDown firing",
                    lambda: prom.firing("IcsDiscoveryProviderStreamDown", job="ics-discovery"),
                )
                await relay.open()
                await until(
                    "IcsDiscoveryProviderStreamDown resolved",
                    lambda: prom.alerts("IcsDiscoveryProviderStreamDown") == [],
                    within=120,
                )

                # 2. The consumer pod is deleted, then comes back.
                await asyncio.to_thread(delete_pod, alice, "consumer-node")
                alert = await until(
                    "IcsDiscoveryConsumerPodNotReady firing for the chain",
                    lambda: prom.firing("IcsDiscoveryConsumerPodNotReady", chain_id=chain_id),
                )
                assert chain_id in alert["annotations"]["summary"]
                await asyncio.to_thread(alice.add_consumer_pod, chain_id, CONSUMER_IP)
                await until(
                    "IcsDiscoveryConsumerPodNotReady resolved",
                    lambda: prom.alerts("IcsDiscoveryConsumerPodNotReady") == [],
                )

                # 3. Our endpoint is changed on chain by hand, then set back.
                await asyncio.to_thread(
                    alice.chain.edit_validator, alice.index, details=alice.details(ELSEWHERE)
                )
                await until(
                    "IcsDiscoveryOwnEndpointDiffers firing",
                    lambda: prom.firing("IcsDiscoveryOwnEndpointDiffers"),
                )
                await asyncio.to_thread(
                    alice.chain.edit_validator, alice.index, details=alice.details()
                )
                await until(
                    "IcsDiscoveryOwnEndpointDiffers resolved",
                    lambda: prom.alerts("IcsDiscoveryOwnEndpointDiffers") == [],
                )

                # The launched chain stayed exposed throughout.
                assert prom.alerts("IcsDiscoveryChainNotExposed") == []

                # Every dashboard query is valid PromQL and answers with series.
                queries = dashboard_queries()
                assert len(queries) >= 20
                empty = []
                for title, expr in queries:
                    if not await asyncio.to_thread(prom.query, concrete(expr)):
                        empty.append(f"{title}: {expr}")
                assert empty == []
    finally:
        await relay.close()
