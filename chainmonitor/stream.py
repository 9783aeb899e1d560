"""The WebSocket client for CometBFT's `/websocket`: connect, subscribe, read, reconnect, forever.

Events are only hints (the node forgets a client's subscriptions when it
disconnects and drops a slow client's subscription silently), so this client
never tries to be lossless: after every (re)connect, and after a cancelled
subscription is renewed, it tells its consumer to resync from queries. It keeps
the connection honest with client pings and a silence timeout, fails over
between RPC URLs, waits with jittered backoff between attempts, and never dies
on a bad frame. The protocol decisions live in `session.py`; this is the I/O.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI
from websockets.frames import CloseCode

from chainmonitor.backoff import Backoff, JitteredBackoff
from chainmonitor.errors import FrameRejected, InvalidQuery, StreamError
from chainmonitor.events import BlockCommitted, ChainEvent, OtherEvent, TxCommitted
from chainmonitor.faults import TRANSPORT_ERRORS, classify
from chainmonitor.frames import DEFAULT_MAX_FRAME_BYTES, parse_frame
from chainmonitor.session import (
    Action,
    Broken,
    Deliver,
    Ignored,
    Live,
    ResyncNeeded,
    Send,
    StreamSession,
)
from chainmonitor.subscriptions import Subscription, Topic, check_plan, default_plan

log = logging.getLogger(__name__)

# The slowest pace at which a node that refused us for good is asked again.
_PERMANENT_RETRY: Final = 300.0

WS_SCHEMES: Final = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss", "tcp": "ws"}


def websocket_url(rpc_url: str) -> str:
    """`ws[s]://host:port/websocket` from an RPC address (`http://`, `tcp://`, `ws://`, ...)."""
    parts = urlsplit(rpc_url if "://" in rpc_url else f"ws://{rpc_url}")
    scheme = WS_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise StreamError(f"not an RPC URL: {rpc_url!r}", transient=False)
    path = parts.path.rstrip("/")
    if not path.endswith("/websocket"):
        path += "/websocket"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


@dataclass(frozen=True)
class StreamSettings:
    """Timings and limits of the stream (seconds, bytes)."""

    ping_interval: float = 10.0
    ping_timeout: float = 10.0
    # No frame at all (not even a block header) for this long means a dead
    # stream even if pings work; keep it several block times long.
    silence_timeout: float = 30.0
    open_timeout: float = 10.0
    subscribe_timeout: float = 10.0
    close_timeout: float = 2.0
    # A connection that stayed up this long resets the backoff window.
    healthy_after: float = 30.0
    # Headers arriving this much later (behind their block time) than they did
    # on this connection mean the client fell behind and the node may have
    # dropped a subscription without a notice: reconnect and resync. Slow
    # consensus rounds also delay headers, so keep it well above a block
    # interval; 0 turns the check off.
    max_lag_growth: float = 30.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    # Frames the library buffers before it stops reading the socket.
    max_queue: int = 64


@dataclass(frozen=True)
class Resync:
    """Signal: events may have been missed; re-read the whole state from queries."""

    reason: str


StreamSignal = ChainEvent | Resync


@dataclass
class StreamCounters:
    """Counters for export (metrics, health); `EventStream.counters` returns a copy."""

    connected: bool = False
    url: str = ""
    connects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    resyncs: int = 0
    cancellations: int = 0
    block_gaps: int = 0
    fell_behind: int = 0
    forced_reconnects: int = 0
    silences: int = 0
    last_event_height: int = 0
    events: int = 0
    frames_rejected: int = 0
    # Connections lost or refused, by whether retrying can help; the last one's
    # reason, and whether the stream is down for a reason only a fix can cure.
    transient_failures: int = 0
    permanent_failures: int = 0
    last_failure: str = ""
    failing_permanently: bool = False


T = TypeVar("T")


async def receive_within(receive: Awaitable[T], seconds: float) -> T:
    """`await receive`, or TimeoutError after `seconds`.

    Not `asyncio.wait_for`: on Python 3.11 it loses a cancellation that arrives
    in the same loop iteration as the result (CPython gh-86296), and a stream
    that missed its cancellation would run on forever and hang shutdown.
    """
    async with asyncio.timeout(seconds):
        return await receive


class EventStream:
    """Subscribes to the plan on one of `urls` and calls `deliver` with events and resyncs.

    `deliver` must not block: it is called from the read loop, and a reader
    that stalls becomes the slow subscriber the node cancels.
    """

    def __init__(
        self,
        urls: Sequence[str],
        deliver: Callable[[StreamSignal], None],
        *,
        plan: Sequence[Subscription] | None = None,
        settings: StreamSettings | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not urls:
            raise StreamError("no RPC URL configured", transient=False)
        self.urls = tuple(websocket_url(u) for u in urls)
        self._deliver = deliver
        self._plan = check_plan(plan if plan is not None else default_plan())
        self.settings = settings or StreamSettings()
        self._backoff = backoff if backoff is not None else JitteredBackoff()
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._ids = itertools.count(1)
        self._c = StreamCounters()
        self._rejections_logged: set[str] = set()
        self._url_index = 0
        self._ws: ClientConnection | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def counters(self) -> StreamCounters:
        return replace(self._c)

    def _signal(self, signal: StreamSignal) -> None:
        if isinstance(signal, Resync):
            self._c.resyncs += 1
            log.info("resync needed: %s", signal.reason)
        self._deliver(signal)

    def reconnect(self, reason: str) -> None:
        """Drop the current connection (if any); the loop reconnects, resubscribes and resyncs.

        For callers that learn the stream missed events it should have carried:
        a subscription the node dropped without a notice stays dead on this
        connection, and only a new connection is sure to be clean.
        """
        ws = self._ws
        if ws is None:
            return
        self._c.forced_reconnects += 1
        log.warning("reconnecting the event stream: %s", reason)
        task = asyncio.get_running_loop().create_task(ws.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def reject(self, error: FrameRejected) -> None:
        """Count a rejected frame; log the first of each kind as a warning, the rest at debug."""
        self._c.frames_rejected += 1
        if error.reason not in self._rejections_logged:
            self._rejections_logged.add(error.reason)
            log.warning(
                "dropping frame from %s: %s (more of this kind are only counted)",
                self._c.url,
                error,
            )
        else:
            log.debug("dropping frame: %s", error)

    async def run(self) -> NoReturn:
        """Connect and stream until cancelled; raises only for an invalid URL (permanent).

        Every failure of a connection is classified (`chainmonitor.faults`) and
        counted; none ends the stream.
        """
        while True:
            url = self.urls[self._url_index]
            self._c.url = url
            healthy = False
            permanent = False
            try:
                healthy = await self._connect_and_stream(url)
            except (StreamError, InvalidQuery, *TRANSPORT_ERRORS) as e:
                if isinstance(e, InvalidURI):
                    raise StreamError(f"invalid RPC URL {url}: {e}", transient=False) from e
                fault = classify(e)
                permanent = fault is not None and not fault.transient
                reason = self._describe(e)
                self._failed(reason, permanent=permanent)
                if permanent:
                    # A node refusing our subscriptions for good (a query it cannot
                    # parse) or a certificate we do not accept: another node may do;
                    # this one is asked again only at the slowest pace.
                    log.error("event stream from %s refused for good: %s", url, reason)
                else:
                    log.warning("event stream from %s lost: %s", url, reason)
            finally:
                self._c.connected = False
            if healthy:
                self._backoff.reset()
            # Fail over: the next attempt goes to the next configured node.
            self._url_index = (self._url_index + 1) % len(self.urls)
            delay = self._backoff.next_delay()
            if permanent and len(self.urls) == 1:
                delay = max(delay, _PERMANENT_RETRY)
            log.info("reconnecting to %s in %.2fs", self.urls[self._url_index], delay)
            await self._sleep(delay)

    def _failed(self, reason: str, *, permanent: bool) -> None:
        if permanent:
            self._c.permanent_failures += 1
        else:
            self._c.transient_failures += 1
        self._c.last_failure = reason
        self._c.failing_permanently = permanent

    def _describe(self, e: BaseException) -> str:
        if isinstance(e, ConnectionClosed):
            sent = e.sent
            if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
                limit = self.settings.max_frame_bytes
                self.reject(FrameRejected("oversized", f"over {limit} bytes"))
                return "a frame exceeded the size limit"
            rcvd = e.rcvd
            return f"closed ({rcvd.code} {rcvd.reason})" if rcvd else "connection closed"
        return str(e) or type(e).__name__

    async def _connect_and_stream(self, url: str) -> bool:
        """One connection's life. Returns whether it stayed healthy long enough to reset backoff."""
        s = self.settings
        try:
            ws = await connect(
                url,
                open_timeout=s.open_timeout,
                ping_interval=s.ping_interval,
                ping_timeout=s.ping_timeout,
                close_timeout=s.close_timeout,
                max_size=s.max_frame_bytes,
                max_queue=s.max_queue,
                compression=None,
                proxy=None,
                user_agent_header="ics-discovery chainmonitor",
            )
        except TRANSPORT_ERRORS as e:
            self._c.connect_failures += 1
            if isinstance(e, InvalidURI):
                raise
            fault = classify(e)
            transient = fault.transient if fault is not None else True
            raise StreamError(f"cannot connect: {self._describe(e)}", transient=transient) from e
        async with ws:
            self._ws = ws
            try:
                return await self._stream(ws)
            finally:
                self._ws = None

    async def _stream(self, ws: ClientConnection) -> bool:
        s = self.settings
        session = StreamSession(self._plan, self._ids, s.max_lag_growth)
        for action in session.start():
            await self._apply(ws, action)
        deadline = self._clock() + s.subscribe_timeout
        unacknowledged = f"subscriptions not acknowledged within {s.subscribe_timeout}s"
        live_since: float | None = None
        healthy = False
        while True:
            if session.live:
                timeout = s.silence_timeout
            else:
                timeout = deadline - self._clock()
                if timeout <= 0:
                    raise StreamError(unacknowledged)
            try:
                raw = await receive_within(ws.recv(), timeout)
            except TimeoutError as e:
                if not session.live:
                    raise StreamError(unacknowledged) from e
                self._c.silences += 1
                raise StreamError(f"no frame for {s.silence_timeout}s: silent stream") from e
            try:
                frame = parse_frame(raw, s.max_frame_bytes)
                actions = session.on_frame(frame, self._wall_clock())
            except FrameRejected as e:
                self.reject(e)
                continue
            for action in actions:
                if isinstance(action, Live):
                    live_since = self._clock()
                await self._apply(ws, action)
            up = self._clock() - live_since if live_since is not None else 0.0
            if not healthy and live_since is not None and up >= s.healthy_after:
                healthy = True
                self._backoff.reset()

    async def _apply(self, ws: ClientConnection, action: Action) -> None:
        if isinstance(action, Send):
            await ws.send(action.text)
        elif isinstance(action, Deliver):
            self._on_event(action.event, action.topic)
        elif isinstance(action, Live):
            first = self._c.connects == 0
            self._c.connected = True
            self._c.failing_permanently = False
            self._c.connects += 1
            self._c.reconnects += 0 if first else 1
            log.info("event stream live on %s (%d subscriptions)", self._c.url, len(self._plan))
            self._signal(Resync("connected" if first else "reconnected"))
        elif isinstance(action, ResyncNeeded):
            self._c.cancellations += 1
            self._signal(Resync(action.reason))
        elif isinstance(action, Broken):
            if action.kind == "gap":
                self._c.block_gaps += 1
            elif action.kind == "behind":
                self._c.fell_behind += 1
            raise StreamError(action.reason)
        elif isinstance(action, Ignored):
            log.debug("ignored frame: %s", action.reason)

    def _on_event(self, event: ChainEvent, topic: Topic | None) -> None:
        height = event.height if isinstance(event, TxCommitted | BlockCommitted) else None
        if isinstance(event, OtherEvent) and event.height is not None:
            height = event.height
        self._c.events += 1
        if height is not None and height > self._c.last_event_height:
            self._c.last_event_height = height
        log.debug("event on %s: %s", topic, event)
        self._signal(event)


__all__ = [
    "EventStream",
    "InvalidQuery",
    "Resync",
    "StreamCounters",
    "StreamSettings",
    "StreamSignal",
    "websocket_url",
]
