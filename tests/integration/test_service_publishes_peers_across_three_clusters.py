"""Three clusters, three services, one real provider chain: peers follow the chain end to end.

A consumer chain launches with all three validators opted in: every cluster
gets the chain's port on its LoadBalancer, an EndpointSlice to its consumer
pod and a peers ConfigMap naming the other two validators. Then one validator
moves its endpoint (the other two clusters follow), one opts out (the others
drop it; its own cluster withdraws the chain), and the chain is removed
(everything of it goes away everywhere).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from functools import partial

import pytest

from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]


def peers_of(
    clusters: list[Cluster], port: int, moved: dict[str, str] | None = None
) -> dict[str, str]:
    """The persistent_peers each cluster should publish: every other validator, sorted."""
    moved = moved or {}
    return {
        c.name: ",".join(
            sorted(o.entry(port, moved.get(o.name)) for o in clusters if o.name != c.name)
        )
        for c in clusters
    }


async def test_launch_edit_opt_out_and_removal_reach_every_cluster(clusters: list[Cluster]) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    chain_id = f"svc-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    pod_ips = {c.name: f"10.244.{c.index}.7" for c in clusters}
    for c in clusters:
        await asyncio.to_thread(c.add_consumer_pod, chain_id, pod_ips[c.name])

    async with (
        running_service(alice) as a,
        running_service(bob),
        running_service(charlie),
    ):
        consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
        try:
            view = await eventually(
                "alice exposing the chain",
                lambda: (v := a.service.store.current.chain(chain_id)) and v.exposed and v,
                in_thread=False,
            )
            assert view.ports is not None
            port = view.ports.ports["p2p"]
            expected = peers_of(clusters, port)

            for c in clusters:
                await eventually(
                    f"{c.name}'s peers ConfigMap",
                    partial(c.has_peers, chain_id, expected[c.name]),
                )
                assert await asyncio.to_thread(c.lb_port, chain_id) == port
                assert await asyncio.to_thread(c.slice_addresses, chain_id) == [pod_ips[c.name]]
                cm = await asyncio.to_thread(c.configmap, chain_id)
                assert cm is not None
                assert cm.data["peer_count"] == "2"
                assert json.loads(cm.data["ports.json"])["p2p"] == port
                assert {p["moniker"] for p in json.loads(cm.data["peers.json"])} == {
                    o.validator.moniker for o in clusters if o is not c
                }

            # From here alice's wall clock runs 30 s ahead of the chain's: an observation
            # timed from the block's time shows it, one timed from the snapshot's arrival
            # would not.
            registry = a.service.metrics.registry

            def latency_totals() -> tuple[float, float]:
                count = registry.get_sample_value("ics_discovery_publication_latency_seconds_count")
                total = registry.get_sample_value("ics_discovery_publication_latency_seconds_sum")
                return count or 0.0, total or 0.0

            count_before, total_before = latency_totals()
            a.service.wall_clock = lambda: time.time() + 30.0

            # bob moves: alice and charlie follow, bob's own list does not name bob.
            moved = {"bob": "203.0.113.99"}
            await asyncio.to_thread(
                chain.edit_validator, bob.index, details=bob.details(moved["bob"])
            )
            after_move = peers_of(clusters, port, moved)
            for c in (alice, charlie):
                await eventually(
                    f"{c.name} following bob's new endpoint",
                    partial(c.has_peers, chain_id, after_move[c.name]),
                )
            assert await asyncio.to_thread(bob.persistent_peers, chain_id) == expected["bob"]
            # bob's edit was timed from its block: 30 s of clock offset plus a fraction.
            await eventually(
                "the write timed", lambda: latency_totals()[0] > count_before, in_thread=False
            )
            count, total = latency_totals()
            assert 30 < (total - total_before) / (count - count_before) < 40
            a.service.wall_clock = time.time

            # charlie opts out: the others drop charlie; charlie's cluster withdraws the chain.
            await asyncio.to_thread(chain.opt_out, charlie.index, consumer_id)
            await eventually(
                "alice dropping charlie",
                partial(alice.has_peers, chain_id, bob.entry(port, moved["bob"])),
            )
            await eventually(
                "bob dropping charlie", partial(bob.has_peers, chain_id, alice.entry(port))
            )
            await eventually("charlie withdrawing the chain", partial(charlie.withdrawn, chain_id))
        finally:
            await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)

        for c in (alice, bob):
            await eventually(
                f"{c.name} cleaning up the removed chain", partial(c.withdrawn, chain_id)
            )
        stopped = a.service.store.current.chain(chain_id)
        assert stopped is not None
        assert stopped.phase == "CONSUMER_PHASE_STOPPED"
        assert not stopped.exposed
