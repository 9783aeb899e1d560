"""Faults between the service and a consumer node's RPC in `dial` mode.

The consumer node is a real CometBFT node (the provider daemon started with
the consumer chain's ID and unsafe RPC); the service reaches its RPC only
through the tests' fault proxy (the consumer pod's IP is 127.0.0.1 and the
RPC port setting is the proxy's). In each round the proxy cuts the node's
answers, answers garbage instead of HTTP (`BadStatusLine`, which used to end
the service's loop), stalls or refuses, while bob publishes a new address.
The service survives, counts the failed dial, and once the fault ends tells
the node the new list exactly once: the node's own log shows it dialling bob's
new address, and the service dialled each peer list once and only once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.metrics import sample_value
from tests.conftest import ControlPlaneFactory, create_namespace, namespace_name
from tests.support.chain import ProviderChain
from tests.support.chain_fixtures import stop_and_verify
from tests.support.chainmonitor_support import TunedProviderChain
from tests.support.fault_scenarios import (
    delete_namespace,
    launched_chain,
    move,
    still_running,
    validator_cast,
)
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, RunningService, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]

FAULTS = [(Fault.GARBAGE, 0), (Fault.CUT, 200), (Fault.STALL, 0), (Fault.REFUSE, 0)]


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


def dialled(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.getMessage() == "consumer node dialed its peers")


def dials(service: RunningService, chain_id: str, outcome: str) -> float:
    text = service.service.metrics.render()[0].decode()
    labels = {"chain_id": chain_id, "mode": "dial", "outcome": outcome}
    return sample_value(text, "ics_discovery_consumer_notifications_total", labels) or 0.0


async def test_consumer_rpc_faults_are_survived_and_each_list_is_dialled_once(
    cast: list[Cluster], testbed_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = cast[0]
    caplog.set_level(logging.INFO, logger="discovery.service")
    async with launched_chain(cast, pod_ip="127.0.0.1", workload=False) as chain_id:
        consumer = TunedProviderChain(
            name="consumer-node",
            workdir=testbed_dir / chain_id,
            size=1,
            chain_id=chain_id,
            config_overrides={"rpc": {"unsafe": True}},
        )
        await asyncio.to_thread(consumer.start)
        node = consumer.nodes[0]
        proxy = FaultProxy("127.0.0.1", node.ports.rpc, name="fault-consumer-rpc").start()
        try:
            async with running_service(
                alice, notify_default="dial", consumer_rpc_port=proxy.port
            ) as a:
                view = await eventually(
                    "alice's view of the chain", lambda: a.service.store.current.chain(chain_id)
                )
                assert view.ports is not None
                port = view.ports.ports["p2p"]
                await eventually("the first dial", lambda: dialled(caplog) == 1, in_thread=False)
                for index, (fault, after) in enumerate(FAULTS):
                    failed = dials(a, chain_id, "failed")
                    proxy.set_fault(fault, after_bytes=after)
                    moved = f"198.51.100.{90 + index}"
                    await move(cast, "bob", moved)

                    def dial_failed(before: float = failed) -> bool:
                        still_running(a)
                        return dials(a, chain_id, "failed") > before

                    await eventually(f"a dial failing on {fault}", dial_failed, in_thread=False)
                    assert not a.task.done(), f"the service stopped on {fault}"
                    assert dialled(caplog) == 1 + index
                    proxy.heal()

                    def node_dials(host: str = moved) -> bool:
                        return f"{host}:{port}" in node.log_path.read_text(errors="replace")

                    await eventually(f"the node dialling bob at {moved}", node_dials)
                    await eventually(
                        "the new list dialled",
                        lambda i=index: dialled(caplog) == 2 + i,  # type: ignore[misc]
                        in_thread=False,
                    )
                await asyncio.sleep(2)
                # Each peer list told once: none lost, none repeated.
                assert dialled(caplog) == 1 + len(FAULTS)
                assert dials(a, chain_id, "done") == 1 + len(FAULTS)
                assert a.service.standing_faults() == {}
                assert not a.task.done()
        finally:
            proxy.stop()
            await asyncio.to_thread(stop_and_verify, consumer)
    assert proxy.stats.garbage > 0
    assert proxy.stats.cut > 0
