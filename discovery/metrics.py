"""Prometheus metrics and the small HTTP server for /metrics, /healthz and /readyz.

An operator must see, without reading logs, whether the service hears the
chain (WebSocket connected, last event height), what it makes of the registry
(validators, endpoints rejected by reason), what it exposes (chains, peers
per chain) and what it costs (reconcile duration, Kubernetes writes, time from
an on-chain change to its publication). Gauges that describe the current state
are computed by one pure function from the `DiscoveryState` and swapped in
whole, so a scrape never sees a half-updated set and a chain that goes away
leaves no stale series. The HTTP server runs on the service's own event loop:
a `/healthz` answer therefore also proves the loop is not blocked. Each
service owns its registry (no process-wide globals), so tests can run several.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from chainmonitor.monitor import MonitorCounters
from discovery.endpoints import EndpointRejection, RejectReason
from discovery.errors import DiscoveryError
from discovery.opsmetrics import OperationsMetrics
from discovery.settings import parse_host_port
from discovery.state import DiscoveryState

log = logging.getLogger(__name__)

NAMESPACE: Final = "ics_discovery"

# Reconciles touch the API server a few times: tens of ms to seconds.
_RECONCILE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Target: within one block interval (~1-6 s) + 250 ms of the committing block.
_LATENCY_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 60.0)


@dataclass(frozen=True)
class StateGauges:
    """The gauges that follow from one `DiscoveryState`."""

    validators: int = 0
    endpoints_invalid: Mapping[str, int] = field(default_factory=dict)
    chains_exposed: int = 0
    peers: Mapping[str, int] = field(default_factory=dict)
    left_out: Mapping[tuple[str, str], int] = field(default_factory=dict)


def state_gauges(state: DiscoveryState) -> StateGauges:
    """Count what the gauges show; every rejection reason appears, 0 included. Pure."""
    invalid: dict[str, int] = {reason.value: 0 for reason in RejectReason}
    for v in state.validators:
        if isinstance(v.endpoint, EndpointRejection):
            invalid[v.endpoint.reason.value] += 1
    peers: dict[str, int] = {}
    left_out: Tally[tuple[str, str]] = Tally()
    for chain in state.chains:
        if chain.peers is None:
            continue
        # Several consumers may share a chain ID; the labels name the one the API serves.
        if state.chain(chain.chain_id) is not chain:
            continue
        peers[chain.chain_id] = len(chain.peers.peers)
        for item in chain.peers.left_out:
            left_out[(chain.chain_id, item.reason)] += 1
    return StateGauges(
        validators=len(state.validators),
        endpoints_invalid=dict(sorted(invalid.items())),
        chains_exposed=sum(1 for c in state.chains if c.exposed),
        peers=dict(sorted(peers.items())),
        left_out=dict(sorted(left_out.items())),
    )


class _StateCollector(Collector):
    """Renders the latest `StateGauges`; swapped by assignment, so a scrape sees one whole set."""

    def __init__(self) -> None:
        self.gauges = StateGauges()

    def collect(self) -> Iterable[Metric]:
        g = self.gauges
        validators = GaugeMetricFamily(
            f"{NAMESPACE}_registry_validators", "Validators in the provider registry."
        )
        validators.add_metric([], g.validators)
        invalid = GaugeMetricFamily(
            f"{NAMESPACE}_endpoints_invalid",
            "Validators whose published endpoint was not accepted, by reason.",
            labels=["reason"],
        )
        for reason, count in g.endpoints_invalid.items():
            invalid.add_metric([reason], count)
        exposed = GaugeMetricFamily(
            f"{NAMESPACE}_chains_exposed", "Consumer chains this cluster exposes."
        )
        exposed.add_metric([], g.chains_exposed)
        peers = GaugeMetricFamily(
            f"{NAMESPACE}_peers",
            "Persistent peers listed for a consumer chain.",
            labels=["chain_id"],
        )
        for chain_id, count in g.peers.items():
            peers.add_metric([chain_id], count)
        left_out = GaugeMetricFamily(
            f"{NAMESPACE}_left_out_validators",
            "Opted-in validators left out of a chain's peers, by reason.",
            labels=["chain_id", "reason"],
        )
        for (chain_id, reason), count in g.left_out.items():
            left_out.add_metric([chain_id, reason], count)
        return [validators, invalid, exposed, peers, left_out]


class ServiceMetrics:
    """Every metric of one service, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.websocket_connected = Gauge(
            f"{NAMESPACE}_websocket_connected",
            "1 while the provider WebSocket is connected and subscribed.",
            registry=r,
        )
        self.websocket_reconnects = Counter(
            f"{NAMESPACE}_websocket_reconnects", "Provider WebSocket reconnections.", registry=r
        )
        self.websocket_frames_rejected = Counter(
            f"{NAMESPACE}_websocket_frames_rejected",
            "Provider WebSocket frames refused as malformed or hostile (the stream carries on; "
            "the first of each kind is logged).",
            registry=r,
        )
        self.resyncs = Counter(
            f"{NAMESPACE}_resyncs",
            "Full re-reads of chain state, by trigger (start, timer, reconnect, gap).",
            ["trigger"],
            registry=r,
        )
        self.last_event_height = Gauge(
            f"{NAMESPACE}_last_event_height",
            "Provider height of the last WebSocket event received.",
            registry=r,
        )
        self.snapshot_height = Gauge(
            f"{NAMESPACE}_snapshot_height",
            "Provider height of the chain snapshot the current state was computed from.",
            registry=r,
        )
        self.reconcile_duration = Histogram(
            f"{NAMESPACE}_reconcile_duration_seconds",
            "Time to recompute the desired state and apply the differences.",
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            f"{NAMESPACE}_reconcile_errors",
            "Reconciles that failed, by whether a retry can help (transient, permanent).",
            ["kind"],
            registry=r,
        )
        self.kubernetes_writes = Counter(
            f"{NAMESPACE}_kubernetes_writes",
            "Write requests sent to the Kubernetes API, by resource and verb.",
            ["resource", "verb"],
            registry=r,
        )
        self.publication_latency = Histogram(
            f"{NAMESPACE}_publication_latency_seconds",
            "Time from the block that committed an on-chain change to its publication "
            "in this cluster's peers ConfigMaps (from the snapshot's arrival when the "
            "block's time is unknown or the clocks disagree).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.leader = Gauge(
            f"{NAMESPACE}_leader", "1 while this replica holds the leader Lease.", registry=r
        )
        self.moniker_node_ids = Counter(
            f"{NAMESPACE}_insecure_moniker_node_ids",
            "Validators listed as peers with a node ID derived from their public moniker "
            "(compat ics-operator, for validators that publish no node=; INSECURE: anyone "
            "can compute that key), counted once per validator.",
            registry=r,
        )
        self._state = _StateCollector()
        r.register(self._state)
        # What the shipped alerts and dashboard watch (discovery.opsmetrics).
        self.ops = OperationsMetrics(r)
        self._counters_seen: dict[str, int] = {}
        for kind in ("transient", "permanent"):
            self.reconcile_errors.labels(kind=kind)

    def observe_counters(
        self, monitor: MonitorCounters, *, leading: bool, now: float | None = None
    ) -> None:
        """Copy the chain monitor's running totals into the gauges and counters.

        The monitor counts from its start; Prometheus counters only go up, so
        only what grew since the last call is added.
        """
        s = monitor.stream
        self.ops.observe_progress(
            event_height=s.last_event_height,
            resyncs=monitor.resyncs_done,
            query_failures=monitor.query_failures,
            now=time.time() if now is None else now,
        )
        self.websocket_connected.set(1 if s.connected else 0)
        self.last_event_height.set(s.last_event_height)
        self.leader.set(1 if leading else 0)
        for name, value, inc in (
            ("reconnects", s.reconnects, self.websocket_reconnects.inc),
            ("frames_rejected", s.frames_rejected, self.websocket_frames_rejected.inc),
            ("stream", s.resyncs, self.resyncs.labels(trigger="stream").inc),
            (
                "other",
                monitor.resyncs_done - s.resyncs,
                self.resyncs.labels(trigger="start_or_timer").inc,
            ),
            (
                "stream_transient",
                s.transient_failures,
                self.ops.faults.labels(part="provider_stream", kind="transient").inc,
            ),
            (
                "stream_permanent",
                s.permanent_failures,
                self.ops.faults.labels(part="provider_stream", kind="permanent").inc,
            ),
            (
                "queries_transient",
                monitor.query_failures - monitor.permanent_query_failures,
                self.ops.faults.labels(part="provider_queries", kind="transient").inc,
            ),
            (
                "queries_permanent",
                monitor.permanent_query_failures,
                self.ops.faults.labels(part="provider_queries", kind="permanent").inc,
            ),
        ):
            delta = value - self._counters_seen.get(name, 0)
            if delta > 0:
                inc(delta)
                self._counters_seen[name] = value

    def observe_state(self, state: DiscoveryState) -> None:
        """Replace every state-derived gauge at once."""
        self._state.gauges = state_gauges(state)
        self.ops.observe_state(state)
        self.snapshot_height.set(state.height)

    def count_writes(self, resource: str, verb: str, count: int = 1) -> None:
        if count:
            self.kubernetes_writes.labels(resource=resource, verb=verb).inc(count)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition body and content type for an `Accept` header."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


# --- HTTP --------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """A health verdict and a one-line reason."""

    ok: bool
    detail: str = "ok"


HealthCheck = Callable[[], Check]


def always_ok() -> Check:
    return Check(True)


class HttpError(DiscoveryError):
    """The metrics/health server cannot bind its address (permanent)."""

    def __init__(self, listen: str, problem: str) -> None:
        self.listen = listen
        self.problem = problem
        super().__init__(f"metrics server on {listen}: {problem}")


_HEAD_LIMIT: Final = 8192
_READ_TIMEOUT: Final = 5.0
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]


def parse_request_head(head: bytes) -> Request | None:
    """Method, path (without query) and lower-cased headers; None when malformed. Pure."""
    # latin-1 decodes every byte sequence: header values are opaque bytes in HTTP/1.1.
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    return Request(parts[0], parts[1].split("?", 1)[0], headers)


def _response(status: int, body: bytes, content_type: str, head_only: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1") + (b"" if head_only else body)


class MetricsServer:
    """HTTP/1.1 on the event loop: /metrics, /healthz (liveness), /readyz (readiness)."""

    def __init__(
        self,
        metrics: ServiceMetrics,
        listen: str,
        *,
        live: HealthCheck = always_ok,
        ready: HealthCheck = always_ok,
    ) -> None:
        self.metrics = metrics
        self.listen = listen
        self.live = live
        self.ready = ready
        self.port = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Bind and serve; returns the bound port."""
        try:
            host, port = parse_host_port(self.listen, allow_empty_host=True)
        except ValueError as e:
            raise HttpError(self.listen, str(e)) from e
        try:
            self._server = await asyncio.start_server(
                self._serve, host or None, port, limit=_HEAD_LIMIT
            )
        except OSError as e:
            raise HttpError(self.listen, e.strerror or str(e)) from e
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("metrics and health listening", extra={"address": self.listen, "port": self.port})
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            writer.write(self.respond(parse_request_head(head[:-4])))
            await writer.drain()
        except (
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            pass  # a client that sends no complete request within limits gets nothing
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    def respond(self, request: Request | None) -> bytes:
        """The full response for one request."""
        text = "text/plain; charset=utf-8"
        if request is None:
            return _response(400, b"bad request\n", text, False)
        head_only = request.method == "HEAD"
        if request.method not in ("GET", "HEAD"):
            return _response(405, b"method not allowed\n", text, False)
        if request.path == "/metrics":
            # Rendering is in-memory and small (well under a millisecond for our
            # series), so it runs on the loop rather than in a thread.
            body, content_type = self.metrics.render(request.headers.get("accept", ""))
            return _response(200, body, content_type, head_only)
        checks: Mapping[str, HealthCheck] = {"/healthz": self.live, "/readyz": self.ready}
        check = checks.get(request.path)
        if check is None:
            return _response(404, b"not found\n", text, head_only)
        verdict = check()
        status = 200 if verdict.ok else 503
        return _response(status, (verdict.detail + "\n").encode(), text, head_only)


def sample_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The value of one sample in exposition text (for tests and `status`); None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    want = dict(labels or {})
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and dict(sample.labels) == want:
                return float(sample.value)
    return None
