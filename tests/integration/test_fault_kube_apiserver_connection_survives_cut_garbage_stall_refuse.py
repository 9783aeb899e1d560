"""Faults between the service and the kube-apiserver: every request and watch of the service.

The service's Kubernetes client talks to a real kube-apiserver only through
the tests' fault proxy (TLS passes through it as bytes). In each round the
proxy cuts answers after a few bytes, answers garbage instead of TLS, stalls
with the request held, or refuses connections, while bob publishes a new
address on chain. The test waits until the service has met the fault, checks
that it still runs, heals the proxy and waits for the peers ConfigMap to
carry bob's new address. The consumer StatefulSet is restarted at most once
per peer list and ends with the last one: a write cut off on its way back is
neither lost nor repeated as a second restart.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from urllib.parse import urlsplit

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
from tests.support.lb import CountingApiClient
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, RunningService, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]

FAULTS = [(Fault.CUT, 300), (Fault.GARBAGE, 0), (Fault.STALL, 0), (Fault.REFUSE, 0)]


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
def kube_proxy(cast: list[Cluster]) -> Iterator[FaultProxy]:
    server = urlsplit(cast[0].plane.admin_client().configuration.host)
    assert server.hostname is not None
    assert server.port is not None
    with FaultProxy(server.hostname, server.port, name="fault-kube") as proxy:
        yield proxy


def through(proxy: FaultProxy, alice: Cluster) -> CountingApiClient:
    """alice's admin credentials, pointed at the proxy (same address, so TLS still verifies)."""
    config = copy.deepcopy(alice.plane.admin_client().configuration)
    config.host = f"https://{proxy.address}"
    return CountingApiClient(config)


def kube_faults(service: RunningService, kind: str) -> float:
    text = service.service.metrics.render()[0].decode()
    labels = {"part": "kubernetes", "kind": kind}
    return sample_value(text, "ics_discovery_faults_total", labels) or 0.0


async def test_kube_api_faults_are_survived_without_lost_writes_or_extra_restarts(
    cast: list[Cluster], kube_proxy: FaultProxy
) -> None:
    alice = cast[0]
    api = through(kube_proxy, alice)
    async with (
        launched_chain(cast) as chain_id,
        running_service(alice, api=api, notify_default="restart") as a,
    ):
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
        for index, (fault, after) in enumerate(FAULTS):
            counted = kube_faults(a, "transient")
            held = kube_proxy.stats.held + kube_proxy.stats.stalled
            kube_proxy.set_fault(fault, after_bytes=after)
            moved = f"198.51.100.{80 + index}"
            await move(cast, "bob", moved)

            def met(
                stalled: bool = fault is Fault.STALL, held: int = held, n: float = counted
            ) -> bool:
                still_running(a)
                if stalled:
                    # A request or connection of the service is held (it waits for an answer).
                    return kube_proxy.stats.held + kube_proxy.stats.stalled > held
                return kube_faults(a, "transient") > n

            await eventually(f"the service meeting {fault}", met, in_thread=False)
            assert not a.task.done(), f"the service stopped on {fault}"
            kube_proxy.heal()
            want = peers_of(cast, port, {"bob": moved})
            await converged(alice, chain_id, want, f"bob's address {moved} after {fault}")

        final_hash = await asyncio.to_thread(configmap_peers_hash, alice, chain_id)
        await eventually("the last restart", lambda: restarts(alice).peers_hash == final_hash)
        await asyncio.sleep(2)
        last = await asyncio.to_thread(restarts, alice)
        # No restart extra: at most one per peer list (a list whose restart was still
        # pending when the next one came may be coalesced into it), and none lost: the
        # workload carries the last list.
        assert first.generation < last.generation <= first.generation + len(FAULTS)
        assert last.peers_hash == final_hash
        assert kube_faults(a, "permanent") == 0
        assert a.service.standing_faults() == {}
        assert not a.task.done()
    assert kube_proxy.stats.cut > 0
    assert kube_proxy.stats.garbage > 0
    assert kube_proxy.stats.stalled + kube_proxy.stats.held > 0
