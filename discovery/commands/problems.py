"""The "problems" section of `ics-discovery status`: what the shipped alerts watch, in words.

The API's answers say which chains are opted in, exposed, short of peers or
leave validators out; the service's own /metrics say the rest (provider
stream, last full read, consumer pods, our endpoint on chain, failures,
leadership). `find_problems` turns both into a short list, each item with what
to do, by the same rules and default thresholds as the alerts of
helm/ics-validator/files/alerts.rules.yaml (docs/operations.md explains each).
It is pure; reading /metrics is `read_metrics`, which never raises: a service
whose metrics cannot be read gets a problem saying which checks were skipped.
Counters are totals since the service started (the alerts look at a window).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb
from discovery.peers import LeftOutReason

# The chart's default thresholds (metrics.prometheusRule.thresholds).
STREAM_STALE_SECONDS = 300.0
STATE_STALE_SECONDS = 1200.0
PEERS_MIN_RATIO = 0.6
OVER_MAX_PEERS = LeftOutReason.OVER_MAX_PEERS.value
ACTION_REASONS = ("duplicate-node-id", "duplicate-address", "unknown-validator")
LEADERSHIP_CHANGES_MAX = 4
LAUNCHED = "CONSUMER_PHASE_LAUNCHED"


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class MetricsView:
    """The samples of one /metrics answer, or why there are none."""

    samples: tuple[Sample, ...] = ()
    error: str = ""

    def values(self, name: str, **labels: str) -> list[Sample]:
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float | None:
        found = self.values(name, **labels)
        return found[0].value if found else None

    def total(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.values(name, **labels))


def parse_metrics(text: str) -> MetricsView:
    """The samples of exposition text (malformed text: a view with the parse error)."""
    try:
        samples = tuple(
            Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        )
    except ValueError as e:
        return MetricsView(error=f"unreadable metrics: {e}")
    return MetricsView(samples)


def metrics_url(listen: str) -> str:
    """/metrics URL for a listen address (":9401" and "0.0.0.0:9401" mean this host)."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]"):  # noqa: S104 - a listen address, not a bind
        host = "127.0.0.1"
    return f"http://{host}:{port}/metrics"


def read_metrics(listen: str, timeout: float) -> MetricsView:
    """GET /metrics from the service (blocking); never raises."""
    url = metrics_url(listen)
    if not url.startswith("http://"):
        return MetricsView(error=f"not an HTTP address: {listen}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http only
            text = resp.read(4 * 1024 * 1024).decode("utf-8", errors="replace")
    except (OSError, urllib.error.URLError, ValueError) as e:
        return MetricsView(error=f"cannot read {url}: {e}")
    return parse_metrics(text)


@dataclass(frozen=True)
class Problem:
    """One thing wrong, in words, and what to do about it."""

    what: str
    todo: str
    chain_id: str = ""


def _chain_problems(
    consumers: pb.ListConsumersResponse, peers: Mapping[str, pb.PeerSet]
) -> list[Problem]:
    out: list[Problem] = []
    seen: set[str] = set()
    for c in consumers.consumers:
        if c.chain_id in seen:
            continue
        seen.add(c.chain_id)
        if c.opted_in and c.phase == LAUNCHED and not c.exposed:
            out.append(
                Problem(
                    f"chain {c.chain_id} is launched and we are opted in, but it is not exposed"
                    + (f": {c.problem}" if c.problem else ""),
                    "fix what the PROBLEM column says (port taken, Service refused, write "
                    "failing); the service retries by itself",
                    c.chain_id,
                )
            )
        elif c.exposed and c.problem:
            out.append(
                Problem(
                    f"chain {c.chain_id}: {c.problem}",
                    "see the service's warnings for this chain; it retries by itself",
                    c.chain_id,
                )
            )
        ps = peers.get(c.chain_id)
        # Validators that belong in the list: a cap of max_peers leaves others out rightly.
        capped = sum(1 for x in ps.left_out if x.reason == OVER_MAX_PEERS) if ps else 0
        expected = c.peer_count + c.left_out_count - capped
        if c.exposed and c.peer_count < PEERS_MIN_RATIO * expected:
            out.append(
                Problem(
                    f"chain {c.chain_id} has {c.peer_count} peers of the {expected} validators "
                    "that belong in its peer list",
                    "the left-out list says why; ask those validators to publish "
                    "'p2p=HOST node=ID' in their details, or loosen endpointPolicy if it "
                    "refuses them wrongly",
                    c.chain_id,
                )
            )
        if ps is None:
            continue
        for reason in ACTION_REASONS:
            who = sorted(
                x.moniker or x.operator_address or x.consensus_address
                for x in ps.left_out
                if x.reason == reason
            )
            if who:
                out.append(
                    Problem(
                        f"chain {c.chain_id}: {len(who)} validator(s) left out for {reason} "
                        f"({', '.join(who)})",
                        "two validators publish the same node or address, or an opted-in key "
                        "matches no validator: tell their operators",
                        c.chain_id,
                    )
                )
    return out


def _metric_problems(
    consumers: pb.ListConsumersResponse, metrics: MetricsView, now: float
) -> list[Problem]:
    out: list[Problem] = []
    m = metrics
    connected = m.value("ics_discovery_websocket_connected")
    if connected == 0:
        out.append(
            Problem(
                "no WebSocket to the provider chain: changes arrive only at the next resync",
                "check that the nodes of provider.rpcUrls are up, synced and reachable",
            )
        )
    last_event = m.value("ics_discovery_last_event_timestamp_seconds")
    if connected == 1 and last_event is not None and now - last_event > STREAM_STALE_SECONDS:
        out.append(
            Problem(
                f"the provider stream is connected but silent for {now - last_event:.0f}s",
                "the node may be halted or stuck: compare its height with other nodes",
            )
        )
    last_read = m.value("ics_discovery_last_resync_timestamp_seconds")
    if last_read is not None and now - last_read > STATE_STALE_SECONDS:
        out.append(
            Problem(
                f"registry and consumer chains last read in full {now - last_read:.0f}s ago",
                "provider queries fail: check provider.grpcUrls / restUrls and the log",
            )
        )
    for s in m.values("ics_discovery_consumer_pods", ready="true"):
        if s.value < 1:
            chain_id = s.labels.get("chain_id", "")
            out.append(
                Problem(
                    f"chain {chain_id} is exposed but has no ready consumer pod",
                    "start or fix the consumer node's pod (events, logs, its chain label)",
                    chain_id,
                )
            )
    if m.value("ics_discovery_own_endpoint_matches") == 0:
        out.append(
            Problem(
                "our endpoint on chain differs from our LoadBalancer address",
                "with publishing on, see the publishing errors; without it, publish "
                "'p2p=ADDRESS node=ID' in the validator's details",
            )
        )
    failed = m.total("ics_discovery_endpoint_publications_total", outcome="failed")
    if failed:
        out.append(
            Problem(
                f"publishing our endpoint failed {failed:.0f} time(s) since start",
                "the 'publishing our endpoint failed' log line says why (fees, key, grant)",
            )
        )
    writes = m.total("ics_discovery_kubernetes_write_errors_total") + m.total(
        "ics_discovery_reconcile_errors_total"
    )
    if writes:
        out.append(
            Problem(
                f"{writes:.0f} Kubernetes write(s) or reconcile(s) failed since start",
                "check the service's warnings, its RBAC and objects it does not own",
            )
        )
    changes = m.value("ics_discovery_leadership_changes_total")
    if changes is not None and changes > LEADERSHIP_CHANGES_MAX:
        out.append(
            Problem(
                f"this replica gained or lost the leader Lease {changes:.0f} times since start",
                "Lease renewals are slow: check API server latency and CPU throttling",
            )
        )
    chain_ids = {c.chain_id for c in consumers.consumers}
    for outcome, todo in (
        ("failed", "check the workload (restart) or the node's RPC and dial_peers (dial)"),
        ("refused", "restart the node by hand when safe, or notify that chain by dial"),
    ):
        for s in m.values("ics_discovery_consumer_notifications_total", outcome=outcome):
            chain_id = s.labels.get("chain_id", "")
            if s.value and chain_id in chain_ids:
                out.append(
                    Problem(
                        f"chain {chain_id}: telling consumer nodes by {s.labels.get('mode')} "
                        f"{outcome} {s.value:.0f} time(s) since start",
                        todo,
                        chain_id,
                    )
                )
    return out


def find_problems(
    consumers: pb.ListConsumersResponse,
    peers: Mapping[str, pb.PeerSet],
    metrics: MetricsView | None,
    now: float,
) -> list[Problem]:
    """Everything the alerts would flag, from the API's answers and the metrics. Pure."""
    out = _chain_problems(consumers, peers)
    if metrics is None:
        return out
    if metrics.error:
        out.append(
            Problem(
                f"metrics not read ({metrics.error}): stream, pods, own endpoint, failures "
                "and leadership not checked",
                "pass --metrics-address (the service's metrics_listen), or --no-metrics",
            )
        )
        return out
    return out + _metric_problems(consumers, metrics, now)
