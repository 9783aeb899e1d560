"""/metrics, /healthz and /readyz over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest

from chainmonitor.monitor import MonitorCounters
from discovery.metrics import Check, HttpError, MetricsServer, ServiceMetrics, sample_value
from tests.support.discovery_states import build_state


class Readiness:
    def __init__(self) -> None:
        self.ready = Check(False, "no chain snapshot yet")

    def __call__(self) -> Check:
        return self.ready


@pytest.fixture
async def server() -> AsyncIterator[tuple[MetricsServer, Readiness]]:
    ready = Readiness()
    metrics = ServiceMetrics()
    srv = MetricsServer(metrics, "127.0.0.1:0", ready=ready)
    await srv.start()
    yield srv, ready
    await srv.stop()


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(url, method=method)  # noqa: S310 - http on loopback
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - http on loopback
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


Answer = tuple[int, dict[str, str], bytes]
Served = tuple[MetricsServer, Readiness]


async def get(srv: MetricsServer, path: str, method: str = "GET") -> Answer:
    return await asyncio.to_thread(_get, f"http://127.0.0.1:{srv.port}{path}", method)


async def test_metrics_show_the_observed_state(server: Served) -> None:
    srv, _ = server
    srv.metrics.observe_state(build_state())
    srv.metrics.websocket_connected.set(1)
    status, headers, body = await get(srv, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert sample_value(text, "ics_discovery_registry_validators") == 4
    assert sample_value(text, "ics_discovery_websocket_connected") == 1
    reason = {"reason": "forbidden-address"}
    assert sample_value(text, "ics_discovery_endpoints_invalid", reason) == 1
    assert sample_value(text, "ics_discovery_peers", {"chain_id": "consumer-a"}) == 2


async def test_stream_counters_are_exported_as_they_grow(server: Served) -> None:
    srv, _ = server
    counters = MonitorCounters(resyncs_done=3)
    counters.stream.connected = True
    counters.stream.frames_rejected = 2
    counters.stream.reconnects = 1
    counters.stream.resyncs = 1
    srv.metrics.observe_counters(counters, leading=True)
    counters.stream.frames_rejected = 5
    srv.metrics.observe_counters(counters, leading=True)
    srv.metrics.observe_counters(counters, leading=False)
    text = (await get(srv, "/metrics"))[2].decode()
    assert sample_value(text, "ics_discovery_websocket_frames_rejected_total") == 5
    assert sample_value(text, "ics_discovery_websocket_reconnects_total") == 1
    assert sample_value(text, "ics_discovery_resyncs_total", {"trigger": "stream"}) == 1
    assert sample_value(text, "ics_discovery_resyncs_total", {"trigger": "start_or_timer"}) == 2
    assert sample_value(text, "ics_discovery_websocket_connected") == 1
    assert sample_value(text, "ics_discovery_leader") == 0


async def test_readiness_follows_the_service_and_liveness_the_loop(
    server: Served,
) -> None:
    srv, ready = server
    assert (await get(srv, "/healthz"))[0] == 200
    status, _, body = await get(srv, "/readyz")
    assert (status, body) == (503, b"no chain snapshot yet\n")
    ready.ready = Check(True)
    assert (await get(srv, "/readyz"))[:3:2] == (200, b"ok\n")


async def test_other_requests_get_plain_http_errors(server: Served) -> None:
    srv, _ = server
    assert (await get(srv, "/nope"))[0] == 404
    assert (await get(srv, "/metrics", method="POST"))[0] == 405
    status, headers, body = await get(srv, "/metrics", method="HEAD")
    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) > 0
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"NONSENSE\r\n\r\n")
    await writer.drain()
    assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
    writer.close()


async def test_oversized_request_is_dropped_without_an_answer(
    server: Served,
) -> None:
    srv, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 20000 + b"\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    # The server still answers others.
    assert (await get(srv, "/healthz"))[0] == 200


async def test_a_taken_port_is_a_clear_error(server: Served) -> None:
    srv, _ = server
    with pytest.raises(HttpError, match="in use"):
        await MetricsServer(ServiceMetrics(), f"127.0.0.1:{srv.port}").start()
