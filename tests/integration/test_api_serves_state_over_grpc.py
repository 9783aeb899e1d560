"""A real gRPC server on 127.0.0.1 answers a real client from the current state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb
from discovery._proto.ics.discovery.v1.discovery_pb2_grpc import DiscoveryStub
from discovery.api import SERVICE_NAME, ApiError, ApiServer
from discovery.cli import main
from discovery.state import StateStore
from tests.support.discovery_states import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    SampleValidator,
    build_state,
)

Served = tuple[ApiServer, StateStore, DiscoveryStub, grpc.aio.Channel]
BOB_MOVED = SampleValidator("bob", f"p2p=198.51.100.22 node={'02' * 20}", BOB.index)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    store = StateStore(build_state())
    server = ApiServer(store, "127.0.0.1:0")
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, store, DiscoveryStub(channel), channel
    finally:
        await channel.close()
        await server.stop(grace=1)


async def test_unary_calls_answer_from_the_state(served: Served) -> None:
    _, store, stub, _ = served
    state = store.current
    consumers = await stub.ListConsumers(pb.ListConsumersRequest(), timeout=5)
    assert [c.chain_id for c in consumers.consumers] == ["consumer-a", "consumer-b"]
    assert consumers.height == 100
    ports = await stub.GetPorts(pb.GetPortsRequest(chain_id="consumer-b"), timeout=5)
    expected = state.chains[1].ports
    assert expected is not None
    got = (ports.ports.p2p, ports.ports.rpc, ports.ports.grpc)
    assert got == (expected.ports["p2p"], expected.ports["rpc"], expected.ports["grpc"])
    assert ports.scheme == "document"
    assert ports.consumer_id == "2"
    peers = (await stub.GetPeers(pb.GetPeersRequest(chain_id="consumer-a"), timeout=5)).peers
    assert state.chains[0].peers is not None
    assert peers.persistent_peers == state.chains[0].peers.persistent_peers()
    assert [x.operator_address for x in peers.left_out] == [MALLORY.operator]
    validators = await stub.ListValidators(pb.ListValidatorsRequest(), timeout=5)
    assert len(validators.validators) == 4


async def test_unknown_and_invalid_chains_get_grpc_status_codes(served: Served) -> None:
    _, _, stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.GetPeers(pb.GetPeersRequest(chain_id="nope"), timeout=5)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.GetPorts(pb.GetPortsRequest(chain_id="x" * 51), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "over the limit" in (exc.value.details() or "")


async def test_watching_an_invalid_chain_id_is_refused(served: Served) -> None:
    _, _, stub, _ = served
    stream = stub.WatchPeers(pb.WatchPeersRequest(chain_id=" "), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await anext(stream.__aiter__())
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_is_not_serving_until_the_service_says_so(served: Served) -> None:
    server, _, _, channel = served
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE_NAME):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await server.set_serving(True)
    answer = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_watch_sends_current_list_then_each_change_only(served: Served) -> None:
    _, store, stub, _ = served
    stream = stub.WatchPeers(pb.WatchPeersRequest(chain_id="consumer-a"), timeout=30)
    messages = stream.__aiter__()
    first = await asyncio.wait_for(anext(messages), 5)
    assert first.present
    assert any("2001:db8::2" in p.entry for p in first.peers.peers)
    # A new height with the same peers is not a change for watchers ...
    store.update(replace(store.current, height=101))
    # ... so the next message is this edit of bob's endpoint.
    moved = build_state(height=102, validators=(ALICE, BOB_MOVED, CAROL, MALLORY))
    store.update(moved)
    second = await asyncio.wait_for(anext(messages), 5)
    assert second.present
    assert second.peers.height == 102
    entries = [p.entry for p in second.peers.peers]
    assert any("198.51.100.22" in e for e in entries)
    assert not any("2001:db8::2" in e for e in entries)
    # The chain going away is a change too.
    store.update(replace(moved, chains=moved.chains[1:], height=103))
    third = await asyncio.wait_for(anext(messages), 5)
    assert not third.present
    assert third.peers.chain_id == "consumer-a"
    stream.cancel()


async def test_stopping_the_server_ends_open_watch_streams() -> None:
    store = StateStore(build_state())
    server = ApiServer(store, "127.0.0.1:0")
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = DiscoveryStub(channel).WatchPeers(pb.WatchPeersRequest(chain_id="consumer-a"))
        messages = stream.__aiter__()
        await asyncio.wait_for(anext(messages), 5)
        started = asyncio.get_running_loop().time()
        await server.stop(grace=10)
        elapsed = asyncio.get_running_loop().time() - started
        with pytest.raises((StopAsyncIteration, grpc.aio.AioRpcError)):
            await asyncio.wait_for(anext(messages), 5)
    # Without ending the streams, stop would have waited the whole grace period.
    assert elapsed < 5


async def test_binding_a_taken_port_is_a_clear_error(served: Served) -> None:
    server, store, _, _ = served
    with pytest.raises(ApiError, match="cannot bind"):
        await ApiServer(store, f"127.0.0.1:{server.port}").start()


async def test_status_command_prints_the_table(
    served: Served,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _, _, _ = served
    code = await asyncio.to_thread(
        main, ["status", "--address", f"127.0.0.1:{server.port}", "--validators"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "peers of consumer-a (consumer 1):" in out
    assert "forbidden-address" in out
    assert "\x1b" not in out
    code = await asyncio.to_thread(
        main,
        ["status", "--address", f"127.0.0.1:{server.port}", "--json", "--chain", "consumer-b"],
    )
    out = capsys.readouterr().out
    assert code == 0
    assert '"chain_id": "consumer-b"' in out
    assert '"chain_id": "consumer-a"' not in out
