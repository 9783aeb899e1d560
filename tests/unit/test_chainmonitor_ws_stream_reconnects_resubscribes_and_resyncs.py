"""The WebSocket client's I/O loop: backoff, failover, silent streams, junk frames, cancellations.

A scripted local WebSocket server plays the node per connection (ack the
subscriptions, then close, go silent, send junk, cancel a subscription...), so
every failure path runs deterministically in milliseconds. The same client
against the real chain is in tests/integration/test_chainmonitor_*.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from chainmonitor.events import BlockCommitted, TxCommitted
from chainmonitor.stream import EventStream, Resync, StreamSettings, StreamSignal, websocket_url
from chainmonitor.subscriptions import default_plan

WS = Path(__file__).resolve().parents[1] / "data" / "ws"
EDIT = json.loads((WS / "tx_edit_validator.json").read_text())
BLOCK = json.loads((WS / "new_block.json").read_text())

Behaviour = Callable[[ServerConnection, list[int]], Awaitable[None]]


@dataclass
class RecordingBackoff:
    delays: list[float] = field(default_factory=list)
    resets: int = 0

    def next_delay(self) -> float:
        self.delays.append(0.01)
        return 0.01

    def reset(self) -> None:
        self.resets += 1


@dataclass
class ScriptedNode:
    """Acks each connection's subscriptions, then runs that connection's behaviour."""

    behaviours: list[Behaviour]
    ack: bool = True
    connections: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def handler(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        self.connected.set()
        ids = []
        for _ in default_plan():
            request = json.loads(await ws.recv())
            self.requests.append(request)
            ids.append(request["id"])
            if self.ack:
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {}}))
        behaviour = self.behaviours[min(index, len(self.behaviours) - 1)]
        await behaviour(ws, ids)


@contextlib.asynccontextmanager
async def node(node: ScriptedNode) -> AsyncIterator[str]:
    async with serve(node.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


def event_on(request_id: int, frame: dict[str, Any]) -> str:
    return json.dumps({**frame, "id": request_id})


async def hold(ws: ServerConnection, ids: list[int]) -> None:
    await ws.wait_closed()


async def close_now(ws: ServerConnection, ids: list[int]) -> None:
    await ws.close()


async def send_edit_then_hold(ws: ServerConnection, ids: list[int]) -> None:
    await ws.send(event_on(ids[0], EDIT))
    await ws.wait_closed()


SETTINGS = StreamSettings(
    ping_interval=5,
    silence_timeout=0.5,
    subscribe_timeout=1,
    open_timeout=1,
    close_timeout=0.2,
    healthy_after=30,
)


async def until(check: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait (at most 5 s) until `check()` holds, re-checking whenever `changed` is set."""
    async with asyncio.timeout(5):
        while not check():
            changed.clear()
            await changed.wait()


@dataclass
class Client:
    stream: EventStream
    signals: list[StreamSignal]
    backoff: RecordingBackoff
    changed: asyncio.Event

    async def until(self, check: Callable[[], bool]) -> None:
        await until(check, self.changed)

    def resyncs(self) -> list[str]:
        return [s.reason for s in self.signals if isinstance(s, Resync)]


@contextlib.asynccontextmanager
async def client(*urls: str, settings: StreamSettings = SETTINGS) -> AsyncIterator[Client]:
    signals: list[StreamSignal] = []
    changed = asyncio.Event()

    def deliver(signal: StreamSignal) -> None:
        signals.append(signal)
        changed.set()

    backoff = RecordingBackoff()
    stream = EventStream(urls, deliver, settings=settings, backoff=backoff)
    task = asyncio.create_task(stream.run())
    try:
        yield Client(stream, signals, backoff, changed)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_websocket_url_forms() -> None:
    assert websocket_url("http://127.0.0.1:26657") == "ws://127.0.0.1:26657/websocket"
    assert websocket_url("tcp://127.0.0.1:26657") == "ws://127.0.0.1:26657/websocket"
    assert websocket_url("https://rpc.example.org/") == "wss://rpc.example.org/websocket"
    assert websocket_url("ws://h:1/websocket") == "ws://h:1/websocket"
    assert websocket_url("127.0.0.1:26657") == "ws://127.0.0.1:26657/websocket"


async def test_subscribes_goes_live_resyncs_and_delivers() -> None:
    scripted = ScriptedNode([send_edit_then_hold])
    async with node(scripted) as url, client(url) as c:
        await c.until(lambda: len(c.signals) >= 2)
        assert c.signals[0] == Resync("connected")
        assert isinstance(c.signals[1], TxCommitted)
        counters = c.stream.counters
        assert counters.connected
        assert counters.events == 1
        assert counters.last_event_height == c.signals[1].height
        assert [r["params"]["query"] for r in scripted.requests] == [
            s.query for s in default_plan()
        ]


async def test_reconnects_resubscribes_and_resyncs_after_the_node_closes() -> None:
    scripted = ScriptedNode([close_now, send_edit_then_hold])
    async with node(scripted) as url, client(url) as c:
        await c.until(lambda: any(isinstance(s, TxCommitted) for s in c.signals))
        assert c.resyncs() == ["connected", "reconnected"]
        assert scripted.connections == 2
        assert len(scripted.requests) == 2 * len(default_plan())
        assert c.stream.counters.reconnects == 1
        assert c.backoff.delays


async def test_fails_over_to_the_next_url() -> None:
    scripted = ScriptedNode([send_edit_then_hold])
    async with node(scripted) as url:
        dead = "http://127.0.0.1:9"  # discard port: nothing listens
        async with client(dead, url) as c:
            await c.until(lambda: any(isinstance(s, TxCommitted) for s in c.signals))
            counters = c.stream.counters
            assert counters.connect_failures == 1
            assert counters.url == websocket_url(url)
            assert c.resyncs() == ["connected"]


async def test_silent_stream_is_dropped_and_replaced() -> None:
    scripted = ScriptedNode([hold, send_edit_then_hold])
    async with node(scripted) as url, client(url) as c:
        await c.until(lambda: any(isinstance(s, TxCommitted) for s in c.signals))
        assert c.stream.counters.silences == 1
        assert c.resyncs() == ["connected", "reconnected"]


async def test_unacknowledged_subscriptions_mean_reconnect() -> None:
    scripted = ScriptedNode([hold], ack=False)
    async with node(scripted) as url, client(url) as c:
        await until(lambda: scripted.connections >= 2, scripted.connected)
        assert c.resyncs() == []
        assert not c.stream.counters.connected


async def test_bad_frames_are_counted_and_the_stream_goes_on() -> None:
    async def junk(ws: ServerConnection, ids: list[int]) -> None:
        await ws.send("not json at all")
        await ws.send("{}")
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": ids[0], "result": {"data": 5}}))
        await ws.send(event_on(ids[0], EDIT))
        await ws.wait_closed()

    async with node(ScriptedNode([junk])) as url, client(url) as c:
        await c.until(lambda: any(isinstance(s, TxCommitted) for s in c.signals))
        counters = c.stream.counters
        assert counters.frames_rejected == 3
        assert counters.reconnects == 0


async def test_oversized_frame_is_rejected_and_the_stream_recovers() -> None:
    async def big(ws: ServerConnection, ids: list[int]) -> None:
        await ws.send(event_on(ids[3], BLOCK))  # ~9 kB
        await ws.wait_closed()

    settings = StreamSettings(
        silence_timeout=5,
        subscribe_timeout=1,
        open_timeout=1,
        close_timeout=0.2,
        max_frame_bytes=4096,
    )
    async with (
        node(ScriptedNode([big, send_edit_then_hold])) as url,
        client(url, settings=settings) as c,
    ):
        await c.until(lambda: any(isinstance(s, TxCommitted) for s in c.signals))
        assert c.stream.counters.frames_rejected == 1
        assert c.resyncs() == ["connected", "reconnected"]


async def test_cancelled_subscription_is_renewed_then_resynced() -> None:
    renewed: list[dict[str, Any]] = []

    async def cancel(ws: ServerConnection, ids: list[int]) -> None:
        await ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": ids[0],
                    "error": {
                        "code": -32000,
                        "message": "Server error",
                        "data": "subscription was canceled (reason: internal subscription "
                        "event buffer is out of capacity)",
                    },
                }
            )
        )
        for _ in range(2):  # unsubscribe, then subscribe again
            request = json.loads(await ws.recv())
            renewed.append(request)
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {}}))
        await ws.send(event_on(renewed[-1]["id"], EDIT))
        await ws.wait_closed()

    async with node(ScriptedNode([cancel])) as url, client(url) as c:
        await c.until(lambda: any(isinstance(s, TxCommitted) for s in c.signals))
        assert [r["method"] for r in renewed] == ["unsubscribe", "subscribe"]
        assert {r["params"]["query"] for r in renewed} == {default_plan()[0].query}
        assert renewed[1]["id"] not in range(1, len(default_plan()) + 1)
        assert len(c.resyncs()) == 2
        assert "renewed after cancellation" in c.resyncs()[1]
        counters = c.stream.counters
        assert counters.cancellations == 1
        assert counters.reconnects == 0


async def test_healthy_connection_resets_the_backoff() -> None:
    async def beat(ws: ServerConnection, ids: list[int]) -> None:
        for _ in range(15):
            await ws.send(event_on(ids[4], BLOCK))
            await asyncio.sleep(0.02)
        await ws.close()

    settings = StreamSettings(
        silence_timeout=1,
        subscribe_timeout=1,
        open_timeout=1,
        close_timeout=0.2,
        healthy_after=0.1,
    )
    async with node(ScriptedNode([beat, hold])) as url, client(url, settings=settings) as c:
        await c.until(lambda: len(c.resyncs()) >= 2)
        assert c.backoff.resets >= 1
        assert sum(isinstance(s, BlockCommitted) for s in c.signals) == 15


async def test_a_gap_in_block_headers_means_a_new_connection_and_resync() -> None:
    def header(height: int) -> dict[str, Any]:
        frame = json.loads(json.dumps(BLOCK))
        value = frame["result"]["data"]["value"]
        frame["result"]["data"] = {
            "type": "tendermint/event/NewBlockHeader",
            "value": {"header": {**value["block"]["header"], "height": str(height)}},
        }
        return dict(frame)

    async def skip(ws: ServerConnection, ids: list[int]) -> None:
        for height in (5, 6, 9):
            await ws.send(event_on(ids[4], header(height)))
        await ws.wait_closed()

    scripted = ScriptedNode([skip, hold])
    async with node(scripted) as url, client(url) as c:
        await c.until(lambda: len(c.resyncs()) >= 2)
        assert c.resyncs() == ["connected", "reconnected"]
        counters = c.stream.counters
        assert counters.block_gaps == 1
        assert counters.reconnects == 1
        assert scripted.connections == 2


async def test_headers_arriving_late_mean_a_new_connection_and_resync() -> None:
    now = time.time()

    def header(height: int, age: float) -> dict[str, Any]:
        frame = json.loads(json.dumps(BLOCK))
        value = frame["result"]["data"]["value"]
        stamp = dt.datetime.fromtimestamp(now - age, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        frame["result"]["data"] = {
            "type": "tendermint/event/NewBlockHeader",
            "value": {"header": {**value["block"]["header"], "height": str(height), "time": stamp}},
        }
        return dict(frame)

    async def late(ws: ServerConnection, ids: list[int]) -> None:
        await ws.send(event_on(ids[4], header(1, 0.5)))
        await ws.send(event_on(ids[4], header(2, 12.0)))  # 11.5 s later than the first
        await ws.wait_closed()

    settings = StreamSettings(
        silence_timeout=5,
        subscribe_timeout=1,
        open_timeout=1,
        close_timeout=0.2,
        max_lag_growth=10.0,
    )
    async with node(ScriptedNode([late, hold])) as url, client(url, settings=settings) as c:
        await c.until(lambda: len(c.resyncs()) >= 2)
        assert c.resyncs() == ["connected", "reconnected"]
        assert c.stream.counters.fell_behind == 1


async def test_reconnect_on_request_drops_the_connection_and_resyncs() -> None:
    scripted = ScriptedNode([hold])
    async with node(scripted) as url, client(url) as c:
        await c.until(lambda: c.resyncs() == ["connected"])
        c.stream.reconnect("events were missed")
        await c.until(lambda: c.resyncs() == ["connected", "reconnected"])
        assert scripted.connections == 2
        assert c.stream.counters.forced_reconnects == 1
    idle = EventStream(["http://127.0.0.1:9"], lambda s: None)
    idle.reconnect("not connected: nothing to do")
    assert idle.counters.forced_reconnects == 0
