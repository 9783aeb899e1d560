"""The metrics the shipped alerts and dashboard watch, beside `discovery.metrics`' own.

Each alert of `helm/ics-validator/files/alerts.rules.yaml` needs a series that
says, per chain where it matters, whether something is wrong: a chain opted in
to and launched but not exposed, an exposed chain with no ready consumer pod,
our published endpoint differing from our LoadBalancer address, how long ago
the stream and the registry last spoke, and what failed (publishing, writes,
consumer notifications, leadership changes). Per-chain gauges are computed by
pure functions from the state and the pod cache and swapped in whole, like
`discovery.metrics.StateGauges`, so a chain that goes away leaves no series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from discovery.endpoints import EndpointPolicy
from discovery.errors import DiscoveryError
from discovery.own_endpoint import chosen_host, endpoint_update
from discovery.peers import LeftOutReason
from discovery.state import DiscoveryState
from discovery.types import NodeId

NAMESPACE: Final = "ics_discovery"
# The `part` label values of ics_discovery_faults_total (discovery.faults.Part).
FAULT_PARTS: Final = (
    "provider_stream",
    "provider_queries",
    "kubernetes",
    "consumer_nodes",
    "publishing",
)


@dataclass(frozen=True)
class ChainGauge:
    """What the per-chain gauges say about one consumer chain."""

    chain_id: str
    consumer_id: str
    phase: str
    opted_in: bool
    exposed: bool
    problem: bool
    # Validators that belong in its peer list: the peers, and those left out for a
    # reason other than the `max_peers` cap (a capped list is as it should be);
    # None: no list.
    validators: int | None


def chain_gauges(state: DiscoveryState) -> tuple[ChainGauge, ...]:
    """One row per chain ID the API serves (the first consumer of a shared chain ID). Pure."""
    rows: list[ChainGauge] = []
    for chain in state.chains:
        if state.chain(chain.chain_id) is not chain:
            continue
        validators = None
        if chain.peers is not None:
            validators = len(chain.peers.peers) + sum(
                1 for x in chain.peers.left_out if x.reason != LeftOutReason.OVER_MAX_PEERS
            )
        rows.append(
            ChainGauge(
                chain_id=chain.chain_id,
                consumer_id=chain.consumer_id,
                phase=chain.phase,
                opted_in=chain.opted_in,
                exposed=chain.exposed,
                problem=bool(chain.problem),
                validators=validators,
            )
        )
    return tuple(rows)


@dataclass(frozen=True)
class PodCount:
    """Consumer pods of one exposed chain in the served namespaces."""

    ready: int = 0
    total: int = 0


def own_endpoint_matches(
    ingress: Sequence[str] | None,
    details: str | None,
    policy: EndpointPolicy,
    node_id: NodeId | None = None,
) -> bool | None:
    """Whether the chain shows our LoadBalancer address (and node ID); None if unknowable. Pure.

    Unknowable: the Service's ingress is not known yet or holds no acceptable
    address, or our validator is not in the registry (`details` None).
    """
    if ingress is None or details is None or chosen_host(ingress, policy) is None:
        return None
    try:
        return endpoint_update(ingress, details, policy, node_id) is None
    except DiscoveryError:
        # Our text leaves no room for the endpoint: it is not (and cannot be) published.
        return False


@dataclass
class _Current:
    chains: tuple[ChainGauge, ...] = ()
    pods: Mapping[str, PodCount] = field(default_factory=dict)
    own_endpoint: bool | None = None


class _Collector(Collector):
    def __init__(self) -> None:
        self.current = _Current()

    def collect(self) -> Iterable[Metric]:
        c = self.current
        opted_in = GaugeMetricFamily(
            f"{NAMESPACE}_chain_opted_in",
            "1 when our validator is opted in to the consumer chain, with its phase.",
            labels=["chain_id", "consumer_id", "phase"],
        )
        exposed = GaugeMetricFamily(
            f"{NAMESPACE}_chain_exposed",
            "1 while this cluster exposes the consumer chain (ports, slices, peers).",
            labels=["chain_id", "consumer_id"],
        )
        problem = GaugeMetricFamily(
            f"{NAMESPACE}_chain_problem",
            "1 while something keeps the chain from being served as it should "
            "(`ics-discovery status` says what).",
            labels=["chain_id", "consumer_id"],
        )
        validators = GaugeMetricFamily(
            f"{NAMESPACE}_expected_peers",
            "Validators that belong in a chain's peer list: its peers plus those left out "
            "for a reason other than the max_peers cap.",
            labels=["chain_id"],
        )
        for row in c.chains:
            opted_in.add_metric([row.chain_id, row.consumer_id, row.phase], int(row.opted_in))
            exposed.add_metric([row.chain_id, row.consumer_id], int(row.exposed))
            problem.add_metric([row.chain_id, row.consumer_id], int(row.problem))
            if row.validators is not None:
                validators.add_metric([row.chain_id], row.validators)
        pods = GaugeMetricFamily(
            f"{NAMESPACE}_consumer_pods",
            "Consumer pods of an exposed chain in the served namespaces, by readiness "
            "(reported by the leader, which watches them).",
            labels=["chain_id", "ready"],
        )
        for chain_id, count in sorted(c.pods.items()):
            pods.add_metric([chain_id, "true"], count.ready)
            pods.add_metric([chain_id, "false"], count.total - count.ready)
        own = GaugeMetricFamily(
            f"{NAMESPACE}_own_endpoint_matches",
            "1 when our endpoint on chain carries our LoadBalancer address, 0 when it differs; "
            "absent while either is unknown.",
        )
        if c.own_endpoint is not None:
            own.add_metric([], int(c.own_endpoint))
        return [opted_in, exposed, problem, validators, pods, own]


class OperationsMetrics:
    """The alerting metrics of one service, registered in its `ServiceMetrics` registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self._collector = _Collector()
        r.register(self._collector)
        self.last_event_time = Gauge(
            f"{NAMESPACE}_last_event_timestamp_seconds",
            "When (Unix time) the provider stream last delivered an event with a new height.",
            registry=r,
        )
        self.last_resync_time = Gauge(
            f"{NAMESPACE}_last_resync_timestamp_seconds",
            "When (Unix time) the registry and consumer chains were last read in full.",
            registry=r,
        )
        self.query_failures = Counter(
            f"{NAMESPACE}_chain_query_failures",
            "Provider queries (gRPC or REST) that failed.",
            registry=r,
        )
        self.endpoint_publications = Counter(
            f"{NAMESPACE}_endpoint_publications",
            "Attempts to publish our LoadBalancer address on chain, by outcome (sent, failed).",
            ["outcome"],
            registry=r,
        )
        self.kubernetes_write_errors = Counter(
            f"{NAMESPACE}_kubernetes_write_errors",
            "Kubernetes writes that failed, by resource.",
            ["resource"],
            registry=r,
        )
        self.notifications = Counter(
            f"{NAMESPACE}_consumer_notifications",
            "Consumer nodes told of new peers, by mode (restart, dial) and outcome "
            "(done, failed, refused: a restart suppressed as unsafe, waiting: node not ready).",
            ["chain_id", "mode", "outcome"],
            registry=r,
        )
        self.leadership_changes = Counter(
            f"{NAMESPACE}_leadership_changes",
            "Times this replica gained or lost the leader Lease.",
            registry=r,
        )
        self.faults = Counter(
            f"{NAMESPACE}_faults",
            "Failures of a part of the service (provider_stream, provider_queries, kubernetes, "
            "consumer_nodes, publishing) by kind: transient (retried with backoff) or permanent "
            "(needs a fix; /readyz names the part while it stands).",
            ["part", "kind"],
            registry=r,
        )
        self.part_failed = Gauge(
            f"{NAMESPACE}_part_failed_permanently",
            "1 while a part of the service has a permanent fault standing (it needs a fix; "
            "/readyz names it), 0 otherwise.",
            ["part"],
            registry=r,
        )
        for part in FAULT_PARTS:
            self.part_failed.labels(part=part).set(0)
            for kind in ("transient", "permanent"):
                self.faults.labels(part=part, kind=kind)
        self.restarts_suppressed = Counter(
            f"{NAMESPACE}_restarts_suppressed",
            "Restarts of consumer workloads for new peers that had to wait, by chain and "
            "reason (hold_down: rolled again too soon; configmap_not_written: the peers "
            "ConfigMap with them is not written yet); counted once per peers hash and reason.",
            ["chain_id", "reason"],
            registry=r,
        )
        self.restarts_coalesced = Counter(
            f"{NAMESPACE}_restarts_coalesced",
            "Peers changes folded into a later restart of the consumer workloads (a waiting "
            "restart replaced by one with newer peers), by chain.",
            ["chain_id"],
            registry=r,
        )
        self.endpoint_publication_refusals = Counter(
            f"{NAMESPACE}_endpoint_publication_refusals",
            "Times publishing our endpoint was refused, by reason (address_hold_down, "
            "min_interval, max_fee); counted once per change of the refusal.",
            ["reason"],
            registry=r,
        )
        for outcome in ("sent", "failed"):
            self.endpoint_publications.labels(outcome=outcome)
        for reason in ("address_hold_down", "min_interval", "max_fee"):
            self.endpoint_publication_refusals.labels(reason=reason)
        for resource in ("loadbalancer", "configmaps", "workloads"):
            self.kubernetes_write_errors.labels(resource=resource)
        self._event_height = 0
        self._resyncs = 0
        self._query_failures = 0

    def observe_standing_faults(self, parts: Iterable[str]) -> None:
        """Which parts have a permanent fault standing now (the others are set to 0)."""
        failed = set(parts)
        for part in FAULT_PARTS:
            self.part_failed.labels(part=part).set(1 if part in failed else 0)

    def observe_state(self, state: DiscoveryState) -> None:
        self._collector.current.chains = chain_gauges(state)

    def observe_pods(self, pods: Mapping[str, PodCount] | None) -> None:
        """Pod counts per exposed chain; None on a follower (it does not watch pods)."""
        self._collector.current.pods = dict(pods or {})

    def observe_own_endpoint(self, matches: bool | None) -> None:
        self._collector.current.own_endpoint = matches

    def observe_progress(
        self, *, event_height: int, resyncs: int, query_failures: int, now: float
    ) -> None:
        """Stamp `now` when the stream height or the full-read count moved since the last call."""
        if event_height > self._event_height:
            self._event_height = event_height
            self.last_event_time.set(now)
        if resyncs > self._resyncs:
            self._resyncs = resyncs
            self.last_resync_time.set(now)
        if query_failures > self._query_failures:
            self.query_failures.inc(query_failures - self._query_failures)
            self._query_failures = query_failures
