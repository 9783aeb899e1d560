"""The event stream never ends on a fault: garbage, cut connections and refusals are counted.

A node that refuses our subscription query for good used to end the stream
(and with it the service) with `InvalidQuery`; it is now a permanent fault:
counted, reported through the counters (for /readyz), and the next node is
tried. Garbage instead of a WebSocket handshake and a connection cut after a
few bytes are transient faults. Real sockets on 127.0.0.1: a scripted
WebSocket server plays the node, the tests' fault proxy breaks connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve

from chainmonitor.backoff import JitteredBackoff
from chainmonitor.stream import EventStream, StreamSettings, StreamSignal
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.polling import eventually

SETTINGS = StreamSettings(
    ping_interval=5,
    silence_timeout=5,
    subscribe_timeout=1,
    open_timeout=1,
    close_timeout=0.2,
    healthy_after=30,
)

Handler = Callable[[ServerConnection], Awaitable[None]]


async def refuse_queries(ws: ServerConnection) -> None:
    async for raw in ws:
        request = json.loads(raw)
        error = {"code": -32603, "message": "Internal error", "data": "failed to parse query"}
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}))


async def ack_all(ws: ServerConnection) -> None:
    async for raw in ws:
        request = json.loads(raw)
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {}}))


@contextlib.asynccontextmanager
async def node(handler: Handler) -> AsyncIterator[int]:
    async with serve(handler, "127.0.0.1", 0) as server:
        yield next(iter(server.sockets)).getsockname()[1]


@contextlib.asynccontextmanager
async def running(*urls: str) -> AsyncIterator[EventStream]:
    signals: list[StreamSignal] = []
    fast = JitteredBackoff(initial=0.01, maximum=0.05)
    stream = EventStream(urls, signals.append, settings=SETTINGS, backoff=fast)
    task = asyncio.create_task(stream.run())
    try:
        yield stream
        assert not task.done(), task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], bool]) -> None:
    await eventually("the stream's counters", check, timeout=10, interval=0.02, in_thread=False)


async def test_a_node_refusing_our_query_is_a_permanent_fault_and_the_next_node_serves() -> None:
    async with node(refuse_queries) as bad, node(ack_all) as good:
        urls = (f"http://127.0.0.1:{bad}", f"http://127.0.0.1:{good}")
        async with running(*urls) as stream:
            await until(lambda: stream.counters.permanent_failures >= 1)
            assert "failed to parse query" in stream.counters.last_failure
            await until(lambda: stream.counters.connected)
            # Live again: the refusal no longer stands.
            assert not stream.counters.failing_permanently


async def test_a_single_node_refusing_our_query_leaves_the_stream_running_and_reported() -> None:
    async with node(refuse_queries) as bad, running(f"http://127.0.0.1:{bad}") as stream:
        await until(lambda: stream.counters.failing_permanently)
        assert stream.counters.permanent_failures == 1
        # Retried only slowly: no second attempt within a short while.
        await asyncio.sleep(0.5)
        assert stream.counters.permanent_failures == 1


@pytest.mark.parametrize(("fault", "after"), [(Fault.GARBAGE, 0), (Fault.CUT, 40)])
async def test_garbage_and_cut_connections_are_transient_and_heal(fault: Fault, after: int) -> None:
    async with node(ack_all) as port:
        with FaultProxy("127.0.0.1", port) as proxy:
            proxy.set_fault(fault, after_bytes=after)
            async with running(f"http://{proxy.address}") as stream:
                await until(lambda: stream.counters.transient_failures >= 2)
                assert stream.counters.permanent_failures == 0
                assert not stream.counters.failing_permanently
                assert not stream.counters.connected
                await asyncio.to_thread(proxy.heal)
                await until(lambda: stream.counters.connected)
