"""Helpers for the chain monitor's and endpoint publication's tests against the real provider chain.

A running `ChainMonitor` bound to one node, signing keys exported from the
nodes' test keyrings into 0600 files, a chain variant with small event-bus
buffers (to provoke slow-subscriber cancellation), and a burst sender that
pushes many real `MsgEditValidator` txs quickly with pipelined sequences.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmpy.aerial.client import LedgerClient
from cosmpy.aerial.config import NetworkConfig
from cosmpy.aerial.tx import SigningCfg, Transaction, TxFee
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey

from chainmonitor.monitor import ChainMonitor, MonitorSettings
from chainmonitor.publish import edit_details_msg
from chainmonitor.queries import GrpcQueries
from chainmonitor.stream import EventStream, StreamSettings, StreamSignal
from chainmonitor.types import ChainSnapshot
from tests.support.chain import (
    ProviderChain,
    ProviderNode,
    ProviderValidator,
    update_toml,
)
from tests.support.polling import eventually

FAST_MONITOR = MonitorSettings(settle=0.01, resync_interval=3600.0)
FAST_STREAM = StreamSettings(ping_interval=5.0, silence_timeout=10.0, healthy_after=5.0)


@contextlib.asynccontextmanager
async def running_monitor(
    chain: ProviderChain,
    node: int = 0,
    *,
    settings: MonitorSettings = FAST_MONITOR,
    stream_settings: StreamSettings = FAST_STREAM,
    backoff: Any = None,
    rpc_url: str | None = None,
    observe: Callable[[StreamSignal], None] | None = None,
) -> AsyncIterator[ChainMonitor]:
    """A monitor streaming from and querying `chain.nodes[node]`, loaded before it is handed out.

    `rpc_url` replaces the node's RPC address for the event stream only;
    `observe` sees every stream signal before the monitor does.
    """
    n = chain.nodes[node]
    queries = GrpcQueries(n.grpc_address)

    def stream(deliver: Callable[[StreamSignal], None]) -> EventStream:
        def both(signal: StreamSignal) -> None:
            if observe is not None:
                observe(signal)
            deliver(signal)

        return EventStream([rpc_url or n.rpc_url], both, settings=stream_settings, backoff=backoff)

    monitor = ChainMonitor(queries, settings=settings, stream_factory=stream)
    task = asyncio.create_task(monitor.run(), name="monitor-under-test")
    try:
        async with asyncio.timeout(30):
            await monitor.wait_for(lambda s: bool(s.validators))
            # Live: subscribed, so no event of what the test does next is missed.
            await eventually(
                "stream live",
                lambda: monitor.counters.stream.connected,
                timeout=30,
                interval=0.02,
                in_thread=False,
            )
            # The resync the connection asks for is done too (alone, or merged with the
            # start's), so a test counting resyncs from here sees only its own.
            await eventually(
                "the connection's resync",
                lambda: "connected" in monitor.counters.last_resync_reason.split(", "),
                timeout=30,
                interval=0.02,
                in_thread=False,
            )
        yield monitor
    finally:
        task.cancel()
        # Bounded, so a cleanup that hangs fails here instead of eating the test timeout.
        async with asyncio.timeout(20):
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await queries.close()


async def snapshot_where(
    monitor: ChainMonitor, predicate: Callable[[ChainSnapshot], bool], within: float = 30
) -> ChainSnapshot:
    async with asyncio.timeout(within):
        return await monitor.wait_for(predicate)


def details_of(snapshot: ChainSnapshot, validator: ProviderValidator) -> str | None:
    v = snapshot.validator(validator.operator)
    return v.description.details if v else None


# ---- keys ------------------------------------------------------------------------


# ---- a chain whose event bus gives up on slow clients quickly --------------------


@dataclass
class TunedProviderChain(ProviderChain):
    """ProviderChain with extra config.toml settings merged (as data) after the test bed's own."""

    config_overrides: Mapping[str, Any] = field(default_factory=dict)

    def _render_config(self, node: ProviderNode) -> None:
        super()._render_config(node)
        update_toml(node.home / "config" / "config.toml", self.config_overrides)


# CometBFT's minimum subscription buffer (config.go: minSubscriptionBufferSize),
# and a write buffer no larger, so few events overflow a stalled subscriber.
SMALL_EVENT_BUFFERS: Mapping[str, Any] = {
    "rpc": {
        "experimental_subscription_buffer_size": 100,
        "experimental_websocket_write_buffer_size": 100,
    }
}


def start_tuned_chain(
    name: str, workdir: Path, size: int, config_overrides: Mapping[str, Any]
) -> TunedProviderChain:
    chain = TunedProviderChain(
        name=name, workdir=workdir, size=size, config_overrides=config_overrides
    )
    try:
        chain.start()
    except BaseException:
        chain.stop()
        raise
    return chain


# ---- many edits, fast ----------------------------------------------------------


@dataclass
class EditBurst:
    """Signs MsgEditValidator txs for one validator offline and broadcasts them back to back.

    The CLI needs ~0.5 s per tx; this sends hundreds per second by signing with
    consecutive sequence numbers (CheckTx accepts them in order) and a fixed gas.
    """

    chain: ProviderChain
    validator: ProviderValidator
    key_hex: str
    sent: list[str] = field(default_factory=list)

    def run(self, details: Sequence[str], gas: int = 200_000) -> list[str]:
        node = self.validator.node
        client = LedgerClient(
            NetworkConfig(
                chain_id=self.chain.chain_id,
                url=f"grpc+http://{node.grpc_address}",
                fee_minimum_gas_price=0,
                fee_denomination="stake",
                staking_denomination="stake",
            )
        )
        wallet = LocalWallet(PrivateKey(bytes.fromhex(self.key_hex)), prefix="cosmos")
        account = client.query_account(wallet.address())
        sequence = account.sequence
        for text in details:
            tx = Transaction()
            tx.add_message(edit_details_msg(self.validator.operator, text))
            tx.seal(SigningCfg.direct(wallet.public_key(), sequence), fee=TxFee(gas_limit=gas))
            tx.sign(wallet.signer(), self.chain.chain_id, account.number)
            tx.complete()
            submitted = client.broadcast_tx(tx)
            self.sent.append(str(submitted.tx_hash))
            sequence += 1
        return self.sent


# ---- a network path that can stall ----------------------------------------------


class StallingProxy:
    """A TCP relay to a node that can stop reading from it, as a stalled client would.

    The relay's socket towards the node has a small receive buffer and a small
    segment size (on loopback the 64 KiB MTU would otherwise let the node's
    kernel buffer a megabyte), so when it stops reading, the node's own write
    path fills within a few frames: the node then sees exactly what a slow
    subscriber looks like. Bytes are relayed unchanged; client and node are real.
    """

    def __init__(self, host: str, port: int, receive_buffer: int = 4096) -> None:
        self.target = (host, port)
        self.receive_buffer = receive_buffer
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1024)
        upstream.setblocking(False)
        await asyncio.get_running_loop().sock_connect(upstream, self.target)
        up_reader, up_writer = await asyncio.open_connection(sock=upstream, limit=2048)
        pumps = (
            self._pump(reader, up_writer, gated=False),
            self._pump(up_reader, writer, gated=True),
        )
        for pump in pumps:
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, gated: bool
    ) -> None:
        try:
            while True:
                if gated:
                    await self.flowing.wait()
                data = await source.read(2048)
                if not data:
                    break
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()
