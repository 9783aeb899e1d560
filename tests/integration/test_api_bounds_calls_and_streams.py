"""A real gRPC server on 127.0.0.1 bounds WatchPeers streams and concurrent calls.

Over a real channel: with `max_streams` streams open the next one is refused
with RESOURCE_EXHAUSTED (a message naming the setting, and a metric), unary
calls still answer, and once a stream closes a new one is accepted. With
`max_concurrent_rpcs` calls in flight gRPC itself refuses the next call. And
a change to one chain's peers reaches that chain's streams only.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc
import pytest
from prometheus_client import CollectorRegistry

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb
from discovery._proto.ics.discovery.v1.discovery_pb2_grpc import DiscoveryStub
from discovery.api import ApiServer
from discovery.state import ChainPeers, DiscoveryState, StateStore
from tests.support.discovery_states import build_state
from tests.support.polling import eventually

STATE = build_state(chains={"1": "chain-1", "2": "chain-2"})


def _open(stub: DiscoveryStub, chain_id: str) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg,unused-ignore]
    return stub.WatchPeers(pb.WatchPeersRequest(chain_id=chain_id))


async def test_streams_beyond_the_limit_are_refused_and_counted() -> None:
    registry = CollectorRegistry()
    store = StateStore(STATE)
    server = ApiServer(
        store, "127.0.0.1:0", max_streams=3, max_concurrent_rpcs=16, registry=registry
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = DiscoveryStub(channel)
            streams = [_open(stub, "chain-1") for _ in range(3)]
            for s in streams:
                assert (await asyncio.wait_for(s.read(), 10)).present
            assert registry.get_sample_value("ics_discovery_api_watch_streams") == 3

            extra = _open(stub, "chain-2")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await asyncio.wait_for(extra.read(), 10)
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "grpc_max_streams" in (refused.value.details() or "")
            assert registry.get_sample_value("ics_discovery_api_watch_streams_refused_total") == 1

            # Unary calls still answer while the streams are at their limit.
            peers = await stub.GetPeers(pb.GetPeersRequest(chain_id="chain-2"), timeout=5)
            assert peers.peers.chain_id == "chain-2"

            # One stream closes: its slot is free again.
            streams[0].cancel()
            servicer = server.servicer
            assert servicer is not None
            await eventually(
                "the closed stream to be released",
                lambda: servicer.open_streams == 2,
                timeout=10,
                interval=0.02,
                in_thread=False,
            )
            again = _open(stub, "chain-2")
            assert (await asyncio.wait_for(again.read(), 10)).present
            assert registry.get_sample_value("ics_discovery_api_watch_streams") == 3
            for s in (*streams[1:], again):
                s.cancel()
            await eventually(
                "every stream released",
                lambda: servicer.open_streams == 0,
                timeout=10,
                interval=0.02,
                in_thread=False,
            )
            assert registry.get_sample_value("ics_discovery_api_watch_streams_refused_total") == 1
    finally:
        await server.stop(grace=1)


async def test_calls_beyond_the_concurrency_limit_are_refused_by_grpc() -> None:
    store = StateStore(STATE)
    # No stream limit of our own: only gRPC's bound on calls in flight applies.
    server = ApiServer(store, "127.0.0.1:0", max_concurrent_rpcs=2)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = DiscoveryStub(channel)
            streams = [_open(stub, "chain-1"), _open(stub, "chain-2")]
            for s in streams:
                await asyncio.wait_for(s.read(), 10)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ListConsumers(pb.ListConsumersRequest(), timeout=5)
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            streams[0].cancel()

            loop = asyncio.get_running_loop()

            async def list_consumers() -> pb.ListConsumersResponse:
                return await stub.ListConsumers(pb.ListConsumersRequest(), timeout=5)

            def served() -> bool:
                """One call answered (made on the loop; this check runs in a worker thread)."""
                asyncio.run_coroutine_threadsafe(list_consumers(), loop).result()
                return True

            def exhausted(e: Exception) -> bool:
                return (
                    isinstance(e, grpc.aio.AioRpcError)
                    and e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                )

            await eventually(
                "a call slot freed", served, timeout=10, interval=0.05, not_yet=exhausted
            )
            streams[1].cancel()
    finally:
        await server.stop(grace=1)


def _chain_1_without_peers(state: DiscoveryState) -> DiscoveryState:
    chains = tuple(
        replace(c, peers=ChainPeers(c.chain_id, c.consumer_id)) if c.chain_id == "chain-1" else c
        for c in state.chains
    )
    return replace(state, height=state.height + 1, chains=chains)


async def test_a_change_reaches_only_the_streams_of_its_chain() -> None:
    store = StateStore(STATE)
    server = ApiServer(store, "127.0.0.1:0", max_streams=50, max_concurrent_rpcs=100)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = DiscoveryStub(channel)
            on_1 = [_open(stub, "chain-1") for _ in range(10)]
            on_2 = [_open(stub, "chain-2") for _ in range(10)]
            for s in on_1 + on_2:
                await asyncio.wait_for(s.read(), 10)
            await eventually(
                "20 streams waiting",
                lambda: store.waiting == 20,
                timeout=10,
                interval=0.02,
                in_thread=False,
            )
            assert store.watched_chains == 2
            before = store.wakeups
            store.update(_chain_1_without_peers(STATE))
            for s in on_1:
                msg = await asyncio.wait_for(s.read(), 10)
                assert msg.present
                assert list(msg.peers.peers) == []
            reads = [asyncio.ensure_future(s.read()) for s in on_2]
            await asyncio.sleep(0.3)
            assert not any(r.done() for r in reads), "chain-2's streams got a message"
            assert store.wakeups - before == 10
            for r in reads:
                r.cancel()
            for s in on_1 + on_2:
                s.cancel()
    finally:
        await server.stop(grace=1)
