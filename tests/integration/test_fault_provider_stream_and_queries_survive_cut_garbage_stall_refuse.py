"""Faults between the service and the provider node: the WebSocket, gRPC and REST connections.

The service reaches a real provider node only through the tests' fault proxy,
one proxy per port (RPC WebSocket, gRPC, REST). In each round one path is
broken (answers cut after a few bytes, garbage, a stall, a refused port)
while bob publishes a new address on chain; the test waits until the service
has met the fault, checks that it still runs, heals the proxy and waits for
alice's peers ConfigMap to carry bob's new address. With gRPC refused and REST
healthy, the queries fail over to REST and converge during the fault itself.
At the end the consumer StatefulSet has been restarted at most once per peer
list and carries the last one: no write lost, no restart extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from discovery.metrics import sample_value
from tests.conftest import ControlPlaneFactory, create_namespace, namespace_name
from tests.support.chain import ProviderChain
from tests.support.fault_scenarios import (
    configmap_peers_hash,
    converged,
    delete_namespace,
    launched_chain,
    move,
    peers_of,
    restarts,
    still_running,
    validator_cast,
)
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, RunningService, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]

FAULTS = [(Fault.CUT, 120), (Fault.GARBAGE, 0), (Fault.STALL, 0), (Fault.REFUSE, 0)]


@pytest.fixture
def cast(
    request: pytest.FixtureRequest,
    control_planes: ControlPlaneFactory,
    provider_chain3: ProviderChain,
) -> Iterator[list[Cluster]]:
    plane = control_planes("alice")
    name = namespace_name(request.node.nodeid)
    create_namespace(plane.admin_client(), name)
    yield validator_cast(plane, name, provider_chain3)
    delete_namespace(plane, name)


@pytest.fixture
def proxies(provider_chain3: ProviderChain) -> Iterator[dict[str, FaultProxy]]:
    ports = provider_chain3.nodes[0].ports
    started: dict[str, FaultProxy] = {}
    try:
        for kind, port in (("ws", ports.rpc), ("grpc", ports.grpc), ("rest", ports.api)):
            started[kind] = FaultProxy("127.0.0.1", port, name=f"fault-{kind}").start()
        yield started
    finally:
        for p in started.values():
            p.stop()


def faults_counted(service: RunningService, part: str) -> float:
    text = service.service.metrics.render()[0].decode()
    return sum(
        sample_value(text, "ics_discovery_faults_total", {"part": part, "kind": kind}) or 0.0
        for kind in ("transient", "permanent")
    )


async def test_provider_faults_are_survived_and_every_change_arrives_once(
    cast: list[Cluster], proxies: dict[str, FaultProxy]
) -> None:
    alice = cast[0]
    overrides: dict[str, Any] = {
        "provider_rpc_urls": [f"http://{proxies['ws'].address}"],
        "provider_grpc_urls": [proxies["grpc"].address],
        "provider_rest_urls": [f"http://{proxies['rest'].address}"],
        "notify_default": "restart",
    }
    async with launched_chain(cast) as chain_id, running_service(alice, **overrides) as a:
        view = await eventually(
            "alice exposing the chain",
            lambda: (v := a.service.store.current.chain(chain_id)) and v.exposed and v,
            in_thread=False,
        )
        assert view.ports is not None
        port = view.ports.ports["p2p"]
        await converged(alice, chain_id, peers_of(cast, port), "the first peers")
        await eventually(
            "the first restart",
            lambda: restarts(alice).peers_hash == configmap_peers_hash(alice, chain_id),
        )
        first = await asyncio.to_thread(restarts, alice)
        lists = 0
        host = 70

        async def round_with(broken: list[FaultProxy], fault: Fault, after: int) -> None:
            nonlocal lists, host
            monitor = a.service.monitor
            queries_before = monitor.counters.query_failures
            stream_before = monitor.counters.stream.transient_failures
            for p in broken:
                p.set_fault(fault, after_bytes=after)
            host += 1
            moved = f"198.51.100.{host}"
            await move(cast, "bob", moved)
            stream = proxies["ws"] in broken

            def met() -> bool:
                still_running(a)
                if stream:
                    return monitor.counters.stream.transient_failures > stream_before
                return monitor.counters.query_failures > queries_before

            await eventually(f"the service meeting {fault} on {broken}", met, in_thread=False)
            assert not a.task.done(), "the service stopped on a provider fault"
            assert a.service.stats.ready_at is not None
            for p in broken:
                p.heal()
            await converged(alice, chain_id, peers_of(cast, port, {"bob": moved}), f"{moved}")
            lists += 1

        for fault, after in FAULTS:
            # Queries break (gRPC and its REST fallback) while events still arrive ...
            await round_with([proxies["grpc"], proxies["rest"]], fault, after)
            # ... and the event stream breaks while queries would work.
            await round_with([proxies["ws"]], fault, after)

        # gRPC refused, REST healthy: the queries fail over and the change arrives
        # while the fault lasts.
        with proxies["grpc"].faulty(Fault.REFUSE):
            host += 1
            moved = f"198.51.100.{host}"
            await move(cast, "bob", moved)
            await converged(alice, chain_id, peers_of(cast, port, {"bob": moved}), "failover")
            lists += 1
            assert not a.task.done()

        # No restart extra: at most one per peer list (lists that come while a restart
        # is held down may be coalesced), and none lost: the workload has the last list.
        final_hash = await asyncio.to_thread(configmap_peers_hash, alice, chain_id)
        await eventually("the last restart", lambda: restarts(alice).peers_hash == final_hash)
        await asyncio.sleep(2)
        last = await asyncio.to_thread(restarts, alice)
        assert first.generation < last.generation <= first.generation + lists
        assert last.peers_hash == final_hash
        assert a.service.stats.writes["configmaps"] >= lists
        # The faults were counted, by part; none was permanent.
        assert faults_counted(a, "provider_stream") > 0
        assert faults_counted(a, "provider_queries") > 0
        text = a.service.metrics.render()[0].decode()
        for part in ("provider_stream", "provider_queries"):
            labels = {"part": part, "kind": "permanent"}
            assert sample_value(text, "ics_discovery_faults_total", labels) == 0
        assert a.service.standing_faults() == {}
        assert not a.task.done()
    for p in proxies.values():
        assert p.stats.connections > 0
    assert proxies["ws"].stats.cut > 0
    assert proxies["grpc"].stats.garbage > 0
