"""A validator publishing a hostile endpoint is left out, with its reason, while the others work.

The reason shows in the gRPC API (GetPeers, ListValidators), in the metrics
and in the peers ConfigMap, and a `WatchPeers` client sees each change to the
list as it happens: the hostile edit, then the repaired endpoint.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
from collections.abc import Callable
from functools import partial

import grpc
import pytest

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb
from discovery._proto.ics.discovery.v1.discovery_pb2_grpc import DiscoveryStub
from discovery.metrics import sample_value
from tests.support.polling import WAIT, eventually
from tests.support.service_fixtures import (
    Cluster,
    RunningService,
    publish_endpoints,
    running_service,
)

pytestmark = [pytest.mark.kube, pytest.mark.chain]


def metrics_text(running: RunningService) -> str:
    url = f"http://127.0.0.1:{running.service.http.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


async def next_where(
    call: grpc.aio.UnaryStreamCall, accept: Callable[[pb.WatchPeersResponse], bool]
) -> pb.WatchPeersResponse:
    """The first streamed message `accept` takes (intermediate lists may come first)."""
    async with asyncio.timeout(WAIT):
        while True:
            message = await call.read()
            assert message is not grpc.aio.EOF, "WatchPeers ended"
            assert isinstance(message, pb.WatchPeersResponse)
            if accept(message):
                return message


def entries(message: pb.WatchPeersResponse) -> list[str]:
    return [p.entry for p in message.peers.peers]


async def test_hostile_endpoint_is_left_out_with_reason_and_watchers_see_it(
    clusters: list[Cluster],
) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    chain_id = f"hostile-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    for c in (alice, bob):
        await asyncio.to_thread(c.add_consumer_pod, chain_id, f"10.245.{c.index}.9")

    async with running_service(alice) as a, running_service(bob):
        consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{a.service.api.port}")
        try:
            stub = DiscoveryStub(channel)
            call = stub.WatchPeers(pb.WatchPeersRequest(chain_id=chain_id))
            first = await next_where(call, lambda m: m.present and len(m.peers.peers) == 2)
            port = first.peers.peers[0].port
            assert sorted(entries(first)) == sorted([bob.entry(port), charlie.entry(port)])

            # charlie points everyone's consumer nodes at their own loopback.
            hostile = f"Validator charlie p2p=127.0.0.1 node={charlie.node_id}"
            await asyncio.to_thread(chain.edit_validator, charlie.index, details=hostile)
            left = await next_where(call, lambda m: len(m.peers.peers) == 1)
            assert entries(left) == [bob.entry(port)]
            [out] = left.peers.left_out
            assert out.operator_address == charlie.validator.operator
            assert out.reason == "invalid-endpoint"
            assert "127.0.0.1" in out.detail

            # The others keep working: both ConfigMaps hold the one good peer.
            await eventually("alice", partial(alice.has_peers, chain_id, bob.entry(port)))
            await eventually("bob", partial(bob.has_peers, chain_id, alice.entry(port)))
            cm = await asyncio.to_thread(alice.configmap, chain_id)
            assert cm is not None
            [reason] = json.loads(cm.data["left_out.json"])
            assert (reason["operator"], reason["reason"]) == (
                charlie.validator.operator,
                "invalid-endpoint",
            )

            got = (await stub.GetPeers(pb.GetPeersRequest(chain_id=chain_id), timeout=10)).peers
            assert [x.reason for x in got.left_out] == ["invalid-endpoint"]
            registry = await stub.ListValidators(pb.ListValidatorsRequest(), timeout=10)
            charlie_view = next(
                v for v in registry.validators if v.operator_address == charlie.validator.operator
            )
            assert charlie_view.WhichOneof("endpoint") == "rejected"
            assert charlie_view.rejected.reason == "forbidden-address"

            text = await asyncio.to_thread(metrics_text, a)
            assert (
                sample_value(
                    text, "ics_discovery_endpoints_invalid", {"reason": "forbidden-address"}
                )
                == 1
            )
            assert (
                sample_value(
                    text,
                    "ics_discovery_left_out_validators",
                    {"chain_id": chain_id, "reason": "invalid-endpoint"},
                )
                == 1
            )
            assert sample_value(text, "ics_discovery_peers", {"chain_id": chain_id}) == 1

            # Repaired: the watcher sees charlie come back.
            await asyncio.to_thread(chain.edit_validator, charlie.index, details=charlie.details())
            back = await next_where(call, lambda m: len(m.peers.peers) == 2)
            assert sorted(entries(back)) == sorted([bob.entry(port), charlie.entry(port)])
            assert list(back.peers.left_out) == []
            call.cancel()
        finally:
            await channel.close()
            await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
        await eventually("alice cleaning up", partial(alice.withdrawn, chain_id))
