"""A subscription the node cancels because the client was slow is renewed, and the state resynced.

The chain runs with CometBFT's smallest event buffers (100 events per
subscription, 100 frames per connection). The client's network path stalls
(a relay stops reading, as a frozen process would) while hundreds of real
`MsgEditValidator` txs are committed, so the node cancels the edit
subscription ("internal subscription event buffer is out of capacity").

The node sends that notice without waiting and drops it if the connection's
write buffer is still full, and then keeps the dead query on its books, so
the client has three ways to find out, each tested here to end in the same
place (state right, edits arriving as events again; which way wins a given run
depends on timing, and the unit tests of the session pin each one down):
- the notice arrives: unsubscribe, subscribe again, resync, same connection;
- the lag check: block headers arrive much later than before, so reconnect;
- neither: the periodic resync finds an edit no event reported, so reconnect.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainmonitor.events import TxCommitted
from chainmonitor.monitor import MonitorSettings
from chainmonitor.queries import GrpcQueries
from chainmonitor.stream import StreamSettings, StreamSignal
from tests.support.chain import export_key_hex
from tests.support.chain_fixtures import stop_and_verify
from tests.support.chainmonitor_support import (
    SMALL_EVENT_BUFFERS,
    EditBurst,
    StallingProxy,
    TunedProviderChain,
    details_of,
    running_monitor,
    snapshot_where,
    start_tuned_chain,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.chain

BURST = 400
# Long enough for the burst to overflow both buffers, well under the 10 s after
# which CometBFT would give up writing to the connection and close it instead.
STALL_SECONDS = 7.0


@pytest.fixture(scope="module")
def small_buffer_chain(testbed_dir: Path) -> Iterator[TunedProviderChain]:
    chain = start_tuned_chain("slowsub", testbed_dir / "slowsub", 1, SMALL_EVENT_BUFFERS)
    try:
        yield chain
    finally:
        stop_and_verify(chain)


@pytest.mark.parametrize("lag_check", [True, False], ids=["late-headers", "notice-or-timer"])
async def test_cancelled_subscription_is_recovered_and_the_state_resynced(
    small_buffer_chain: TunedProviderChain, lag_check: bool
) -> None:
    chain = small_buffer_chain
    (validator,) = chain.validators
    burst = EditBurst(chain, validator, export_key_hex(chain, validator))
    token = secrets.token_hex(3)
    texts = [f"burst {token} {i} - p2p=10.0.{i // 250}.{i % 250 + 1}" for i in range(BURST)]
    # The stall must not look like a dead peer: pings wait, silence is tolerated.
    # With the lag check, headers later than usual by half the stall mean "fell
    # behind"; without it, the notice or the periodic resync must do.
    patient = StreamSettings(
        ping_interval=5.0,
        ping_timeout=60.0,
        silence_timeout=60.0,
        max_lag_growth=STALL_SECONDS / 2 if lag_check else 0.0,
    )
    timer = MonitorSettings(settle=0.01, resync_interval=3600.0 if lag_check else 3.0)
    events: list[str] = []

    def observe(signal: StreamSignal) -> None:
        if isinstance(signal, TxCommitted):
            events.append(signal.tx_hash)

    proxy = await StallingProxy("127.0.0.1", chain.nodes[0].ports.rpc).start()
    try:
        async with running_monitor(
            chain, rpc_url=proxy.url, settings=timer, stream_settings=patient, observe=observe
        ) as monitor:
            connects = monitor.counters.stream.connects
            proxy.stall()
            sender = asyncio.create_task(asyncio.to_thread(burst.run, texts))
            stalled_at = time.monotonic()
            await asyncio.sleep(STALL_SECONDS)
            proxy.resume()
            stall = time.monotonic() - stalled_at
            await sender
            snap = await snapshot_where(monitor, lambda s: details_of(s, validator) == texts[-1])

            # An edit after the stall is seen, by event or (dead subscription) by the timer.
            probe = f"probe {token} - p2p=10.0.9.8"
            probe_tx = await asyncio.to_thread(chain.edit_validator, validator, details=probe)
            await snapshot_where(monitor, lambda s: details_of(s, validator) == probe)
            s = monitor.counters.stream
            if lag_check:
                # Late headers, or (when the node's notice got through before them) the
                # cancellation notice: which one comes first depends on timing.
                late = s.fell_behind + s.block_gaps
                assert late + s.cancellations >= 1, f"{stall:.1f}s stall unnoticed: {s}"
                if late:
                    assert s.reconnects >= 1, f"fell behind without reconnecting: {s}"
            elif probe_tx.txhash.upper() not in events:
                # The node dropped the subscription and its notice: the timer's
                # resync found the edit, which must make the stream reconnect.
                await eventually(
                    "the periodic resync to repair the stream (a new connection)",
                    lambda: (
                        monitor.counters.stream.forced_reconnects >= 1
                        and monitor.counters.stream.connects > connects
                    ),
                    timeout=30,
                    interval=0.02,
                    in_thread=False,
                )
            # else: renewed after the notice (cancellations >= 1), or, on a slow
            # machine, the burst did not overflow; either way events flow.
            await eventually(
                "stream live",
                lambda: monitor.counters.stream.connected,
                timeout=30,
                interval=0.02,
                in_thread=False,
            )

            # Repaired: the next edit arrives as an event for its own tx.
            final = f"after the burst {token} - p2p=10.0.9.9"
            tx = await asyncio.to_thread(chain.edit_validator, validator, details=final)
            snap = await snapshot_where(monitor, lambda s: details_of(s, validator) == final)
            assert snap.height >= tx.height
            assert tx.txhash.upper() in events, f"no event for the edit after recovery: {s}"
            assert monitor.counters.stream.frames_rejected == 0
    finally:
        await proxy.close()

    truth = GrpcQueries(chain.nodes[0].grpc_address)
    try:
        assert snap.validators == (await truth.validators(snap.height)).value
    finally:
        await truth.close()
