"""A TCP proxy of the tests' own that passes bytes through, or breaks the connection on purpose.

Placed between the service and a real server on 127.0.0.1 (a provider node's
RPC WebSocket, gRPC or REST port, the kube-apiserver, a consumer node's RPC),
it forwards bytes both ways untouched (TLS passes through as bytes) until a
test switches it to a fault:

- `cut`: the server's answer stops after `after_bytes` more bytes and the
  connection is closed (a node restarting mid-response);
- `garbage`: the server's next bytes are replaced by bytes that are no
  protocol at all, then the connection is closed;
- `stall`: connections are accepted (and kept) but no byte moves either way;
- `refuse`: the listening socket is closed (connection refused) and every
  open connection is dropped.

Switching back to `pass` ends the fault: held bytes flow again, the port
listens again (the same port). Each fault applies to open connections from
the moment it is set and to every new one. The proxy runs its own event loop
in a thread, so a test that blocks does not stall it; `stop()` closes every
socket it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

GARBAGE: Final = b"\x16\x03\x00garbage \xff\xfe not a protocol\r\n\r\n\x00\x01\x02" * 4
_CHUNK: Final = 65536


class Fault(StrEnum):
    PASS = "pass"
    CUT = "cut"
    GARBAGE = "garbage"
    STALL = "stall"
    REFUSE = "refuse"


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    # Bytes of the server's answer forwarded since the current fault was set.
    answered: int = 0
    generation: int = 0

    def abort(self) -> None:
        for w in (self.client, self.upstream):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.transport.abort()

    def close(self) -> None:
        for w in (self.client, self.upstream):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.close()


@dataclass
class ProxyStats:
    """What the proxy did (for tests to prove that the fault was really met)."""

    connections: int = 0
    cut: int = 0
    garbage: int = 0
    stalled: int = 0
    # Chunks of bytes that waited for a stall to end.
    held: int = 0
    upstream_failures: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    by_fault: dict[str, int] = field(default_factory=dict)


class FaultProxy:
    """`127.0.0.1:<port>` forwarding to `upstream_host:upstream_port`, with switchable faults."""

    def __init__(self, upstream_host: str, upstream_port: int, *, name: str = "proxy") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.name = name
        self.port = _free_port()
        self.stats = ProxyStats()
        self._fault = Fault.PASS
        self._after_bytes = 0
        self._generation = 0
        self._conns: set[_Conn] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._started = False

    # --- control (from any thread) ----------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def fault(self) -> Fault:
        return self._fault

    def start(self) -> FaultProxy:
        self._thread.start()
        self._started = True
        self._call(self._init())
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(Exception):
            self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def set_fault(self, fault: Fault, *, after_bytes: int = 0) -> None:
        """Switch to `fault` now (for `cut`: after `after_bytes` more bytes of each answer)."""
        self._call(self._set(fault, after_bytes))

    def heal(self) -> None:
        self.set_fault(Fault.PASS)

    @contextlib.contextmanager
    def faulty(self, fault: Fault, *, after_bytes: int = 0) -> Iterator[FaultProxy]:
        self.set_fault(fault, after_bytes=after_bytes)
        try:
            yield self
        finally:
            self.heal()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    # --- the proxy's own loop ------------------------------------------------------

    async def _init(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def _set(self, fault: Fault, after_bytes: int) -> None:
        assert self._flowing is not None
        self._fault = fault
        self._after_bytes = after_bytes
        self._generation += 1
        self.stats.by_fault[fault.value] = self.stats.by_fault.get(fault.value, 0) + 1
        if fault is Fault.STALL:
            self._flowing.clear()
        else:
            self._flowing.set()
        if fault is Fault.REFUSE:
            server, self._server = self._server, None
            if server is not None:
                server.close()
                await server.wait_closed()
            for conn in list(self._conns):
                conn.abort()
        else:
            await self._listen()

    async def _close_all(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self._conns):
            conn.abort()
        if self._flowing is not None:
            self._flowing.set()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        conn = _Conn(writer, generation=self._generation)
        self._conns.add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self.stats.connections += 1
        try:
            if not self._flowing.is_set():
                self.stats.stalled += 1
            # Accept and hold: nothing moves while the fault is `stall`.
            await self._flowing.wait()
            if self._fault is Fault.GARBAGE:
                await self._send_garbage(conn, reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                self.stats.upstream_failures += 1
                conn.abort()
                return
            conn.upstream = up_writer
            await asyncio.gather(
                self._pump(conn, reader, up_writer, answer=False),
                self._pump(conn, up_reader, writer, answer=True),
                return_exceptions=True,
            )
        finally:
            conn.close()
            self._conns.discard(conn)

    async def _send_garbage(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        # Let the client say something first (an HTTP request, a TLS hello).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await reader.read(_CHUNK)
        self.stats.garbage += 1
        with contextlib.suppress(Exception):
            conn.client.write(GARBAGE)
            await conn.client.drain()
        conn.close()

    async def _pump(
        self,
        conn: _Conn,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        *,
        answer: bool,
    ) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await src.read(_CHUNK)
                if not data:
                    break
                if not self._flowing.is_set():
                    self.stats.held += 1
                    await self._flowing.wait()
                if answer:
                    if conn.generation != self._generation:
                        conn.generation, conn.answered = self._generation, 0
                    if self._fault is Fault.GARBAGE:
                        self.stats.garbage += 1
                        dst.write(GARBAGE)
                        with contextlib.suppress(Exception):
                            await dst.drain()
                        conn.close()
                        return
                    if self._fault is Fault.CUT:
                        left = self._after_bytes - conn.answered
                        if left <= len(data):
                            self.stats.cut += 1
                            if left > 0:
                                dst.write(data[:left])
                                with contextlib.suppress(Exception):
                                    await dst.drain()
                            conn.close()
                            return
                    conn.answered += len(data)
                    self.stats.bytes_down += len(data)
                else:
                    self.stats.bytes_up += len(data)
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # One side ended: end the other (half-open connections would hang clients).
            conn.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
