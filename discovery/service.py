"""The discovery service: the level-triggered loop that keeps one validator's cluster current.

This is the composition root. It wires the chain monitor (provider snapshots),
lbmanager (LoadBalancer ports and EndpointSlices, consumer pod watch), peer
publication (ConfigMaps, restart or dial notification), leader election, the
gRPC API and the metrics server. Anything that may have changed the world (a
new chain snapshot, a consumer pod change, the resync timer, gaining
leadership) only wakes the loop; the loop then recomputes the whole desired
state from the latest snapshot (`discovery.desired`, pure) and applies the
differences, so a missed wake-up costs latency, never correctness, and a
resync of an unchanged world writes nothing. Only the Lease holder writes; a
follower computes the same state and serves it read-only. Every blocking call
(Kubernetes, HTTP to consumer nodes, signing) runs in a worker thread. Logs
are one line per event that matters: a chain exposed or withdrawn, peers
changed, an object written, a failure, leadership; never one per wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from kubernetes import client

from chainmonitor.errors import ChainMonitorError, ChainUnavailable, FeeTooHigh, InsufficientFees
from chainmonitor.monitor import ChainMonitor, MonitorSettings
from chainmonitor.queries import ChainQueries, FallbackQueries, GrpcQueries, RestQueries
from chainmonitor.stream import EventStream, StreamSettings
from chainmonitor.types import ChainSnapshot
from discovery.api import ApiServer, TlsFiles
from discovery.configmap_control import Outcome, PeersConfigMapControl
from discovery.desired import DesiredChain, DesiredCluster, desired_cluster
from discovery.errors import DiscoveryError, KubernetesWriteError
from discovery.faults import FaultLedger, Part, fault_of, publish_retry_delay, readiness
from discovery.logs import configure_logging
from discovery.metrics import Check, MetricsServer, ServiceMetrics
from discovery.nodekey import derive_node_key, secret_from_environment
from discovery.notify import DialOutcome, NotifyError, PeerDialer, RestartNotifier
from discovery.operator_notify import OperatorNotifier, OperatorNotifyError, ResourceOutcome
from discovery.operator_watch import NodeResourceWatch
from discovery.operators import TARGET_KINDS
from discovery.opsmetrics import PodCount, own_endpoint_matches
from discovery.own_endpoint import IngressWatch, endpoint_update
from discovery.peers_configmap import PeersConfigMap
from discovery.publish_gate import MAX_FEE, Refusal, RefusalLog, publish_refusal
from discovery.restarts import Action, RestartApplier, RestartResult
from discovery.settings import Settings
from discovery.state import ChainView, DiscoveryState, StateStore
from discovery.types import NodeId, NotifyMode, OperatorAddress
from lbmanager import LbManagerError, LbSettings, ReconcileReport
from lbmanager.consumer_pods import PodIndex, PodInfo
from lbmanager.kube import KubeRest, api_client_from_kubeconfig
from lbmanager.leader import LeaderElector, LeaseConfig, NotLeader
from lbmanager.reconciler import LoadBalancerController

if TYPE_CHECKING:
    from chainmonitor.publish import ChainConnection

log = logging.getLogger("discovery.service")

# Gauges copied from the chain monitor's counters this often (they change on their own).
_COUNTER_SYNC_SECONDS: Final = 2.0
_RETRY_INITIAL: Final = 0.5
_RETRY_MAX: Final = 30.0


class ServiceError(DiscoveryError):
    """The service cannot start with these settings (permanent)."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"setting {setting}: {problem}")


class PartEnded(DiscoveryError):
    """A part of the service that runs until cancelled returned on its own (a bug; permanent)."""

    def __init__(self, part: str) -> None:
        self.part = part
        super().__init__(f"service part {part} ended unexpectedly")


def chain_queries(settings: Settings) -> ChainQueries:
    """Provider queries: every gRPC endpoint, then every REST one, in failover order."""
    sources: list[ChainQueries] = []
    for target in settings.grpc_targets():
        sources.append(GrpcQueries(target))
    for url in settings.provider_rest_urls:
        sources.append(RestQueries(url))
    if not sources:
        raise ServiceError(
            "provider_grpc_urls",
            "the registry and consumer queries need a gRPC (or provider_rest_urls) endpoint",
        )
    return sources[0] if len(sources) == 1 else FallbackQueries(*sources)


def publication_latency(now: float, block_time: float | None, since_snapshot: float) -> float:
    """Seconds from the block that committed a change to its publication here. Pure.

    `now` and `block_time` are seconds since the epoch (the block's time is the
    chain's BFT time); without a block time, or when clocks disagree so far that
    the block seems to come from our future or to be older than our own wait
    can explain by a minute, the time since we received the snapshot is all we
    can vouch for.
    """
    if block_time is None:
        return since_snapshot
    elapsed = now - block_time
    if elapsed < since_snapshot or elapsed > since_snapshot + 60.0:
        return since_snapshot
    return elapsed


def operator_targets(settings: Settings) -> set[str]:
    """The operator notify targets some chain uses (their node resources are watched)."""
    modes = {settings.notify_default, *settings.notify_modes.values()}
    return {m.value for m in modes if m in (NotifyMode.COSMOS_OPERATOR, NotifyMode.COSMOPILOT)}


def own_node_id(settings: Settings, environ: Mapping[str, str]) -> NodeId | None:
    """The node ID to publish with our endpoint: configured, derived from the secret, or None."""
    if not settings.publish_endpoint:
        return None
    if settings.publish_node_id is not None:
        return NodeId(settings.publish_node_id)
    if settings.node_key_secret_env:
        secret = secret_from_environment(environ.get(settings.node_key_secret_env, ""))
        try:
            return derive_node_key(secret).node_id
        except DiscoveryError as e:
            raise ServiceError("node_key_secret_env", str(e)) from e
    return None


def publish_connections(settings: Settings) -> list[ChainConnection]:
    """How to reach each provider gRPC endpoint to sign through, in the configured order."""
    from chainmonitor.publish import ChainConnection  # cosmpy: imported only when publishing

    return [
        ChainConnection(
            grpc_url=target,
            fee_denom=settings.publish_fee_denom,
            gas_price=settings.publish_gas_price,
            gas_adjustment=settings.publish_gas_adjustment,
            max_fee=settings.publish_max_fee,
        )
        for target in settings.grpc_targets()
    ]


def default_identity() -> str:
    """This replica's Lease identity: host name plus a random suffix (restarts are new holders)."""
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


def observed_state(
    state: DiscoveryState,
    outcomes: Mapping[str, str | None],
    publish_problems: Mapping[str, str],
) -> DiscoveryState:
    """`state` with what applying it did: per chain ID, None (exposed) or why not. Pure.

    Chains absent from `outcomes` keep the desired view (a follower, or a
    chain lbmanager has not reported on yet).
    """
    chains: list[ChainView] = []
    for view in state.chains:
        if not view.exposed:
            chains.append(view)
            continue
        problem = view.problem
        exposed = True
        if view.chain_id in outcomes and outcomes[view.chain_id] is not None:
            exposed, problem = False, str(outcomes[view.chain_id])
        extra = publish_problems.get(view.chain_id, "")
        if extra:
            problem = f"{problem}; {extra}" if problem else extra
        chains.append(replace(view, exposed=exposed, problem=problem))
    return replace(state, chains=tuple(chains))


def with_notify_views(
    state: DiscoveryState,
    modes: Mapping[str, str],
    nodes: Mapping[str, tuple[str, bool]],
) -> DiscoveryState:
    """`state` with each exposed chain's notify mode and, for the operator modes, the node
    resources written and whether they carry the current peers (from `nodes`). Pure."""
    chains = []
    for view in state.chains:
        if not view.exposed or view.chain_id not in modes:
            chains.append(view)
            continue
        resources, current = nodes.get(view.chain_id, ("", False))
        chains.append(
            replace(
                view,
                notify=modes[view.chain_id],
                node_resources=resources,
                node_peers_current=current,
            )
        )
    return replace(state, chains=tuple(chains))


def pod_counts(
    desired: DesiredCluster, pods: Mapping[str, Sequence[PodInfo]]
) -> dict[str, PodCount]:
    """Ready and all consumer pods in the served namespaces, per exposed chain (0 if none). Pure."""
    out: dict[str, PodCount] = {}
    for chain in desired.chains:
        served = [
            p
            for p in pods.get(chain.chain_id, ())
            if chain.exposure.pods.allows_namespace(p.namespace)
        ]
        out[chain.chain_id] = PodCount(ready=sum(1 for p in served if p.ready), total=len(served))
    return out


def live_dial_memory(
    dialed: Mapping[str, str], pods: Mapping[str, Sequence[PodInfo]]
) -> dict[str, str]:
    """The dial memory (pod UID -> peers hash) of the pods that exist now. Pure."""
    live = {p.uid for found in pods.values() for p in found}
    return {uid: h for uid, h in dialed.items() if uid in live}


def _lb_outcomes(report: ReconcileReport) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for c in report.chains:
        if c.error is not None:
            out[c.key] = str(c.error.message)
        elif c.status != "exposed":
            out[c.key] = f"not exposed ({c.status})"
        else:
            out[c.key] = None
    return out


@dataclass
class _Retry:
    """Exponential delay for the next retry after failures; reset by a clean round."""

    failures: int = 0

    def next_delay(self) -> float:
        delay: float = min(_RETRY_MAX, _RETRY_INITIAL * 2.0 ** min(self.failures, 16))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


@dataclass
class ServiceStats:
    """What the loop did, for tests, benches and `/readyz`."""

    reconciles: int = 0
    full_reconciles: int = 0
    failures: int = 0
    last_error: str = ""
    # Monotonic time of the first successful reconcile.
    ready_at: float | None = None
    writes: Counter[str] = field(default_factory=Counter)
    last_published_height: int = 0


class DiscoveryService:
    """One cluster's discovery service; `run()` until `stop()` (or SIGTERM via `main`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        api_client: client.ApiClient | None = None,
        queries: ChainQueries | None = None,
        identity: str | None = None,
        monitor_settings: MonitorSettings | None = None,
        stream_settings: StreamSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.operator = settings.operator_address
        self.clock = clock
        self.wall_clock = wall_clock
        self.policy = settings.exposure_policy()
        self.endpoint_policy = settings.endpoint_policy()
        self.own_node_id = own_node_id(settings, os.environ)
        self.api_client = api_client or api_client_from_kubeconfig(
            str(settings.kubeconfig) if settings.kubeconfig else None
        )
        self.rest = KubeRest(self.api_client)
        self.lb = LoadBalancerController(
            self.api_client,
            LbSettings(namespace=settings.service_namespace, service_name=settings.service_name),
            on_pods_changed=lambda _keys: self.wake("pods"),
        )
        self.configmaps = PeersConfigMapControl(self.rest)
        self.restarts = RestartNotifier(self.rest, settings.restart_scope())
        self.restart_applier = RestartApplier(self.restarts, settings.restart_hold_down)
        self.dialer = PeerDialer(settings.consumer_rpc_port)
        self.operators = OperatorNotifier(self.rest)
        self.queries = queries if queries is not None else chain_queries(settings)
        urls = settings.websocket_urls()
        self.monitor = ChainMonitor(
            self.queries,
            settings=monitor_settings or MonitorSettings(resync_interval=settings.resync_interval),
            stream_factory=lambda deliver: EventStream(urls, deliver, settings=stream_settings),
        )
        self.elector: LeaderElector | None = None
        if settings.leader_election:
            self.elector = LeaderElector(
                KubeRest(self.api_client),
                LeaseConfig(
                    namespace=settings.effective_lease_namespace(),
                    name=settings.lease_name,
                    identity=identity or settings.leader_identity or default_identity(),
                    lease_duration=settings.lease_duration,
                    renew_deadline=settings.renew_deadline,
                    retry_period=settings.retry_period,
                ),
                on_change=lambda leading: self.wake("leadership"),
            )
        self.identity = self.elector.config.identity if self.elector else (identity or "")
        self.store = StateStore()
        self.metrics = ServiceMetrics()
        tls = None
        if settings.grpc_tls_cert_file is not None and settings.grpc_tls_key_file is not None:
            tls = TlsFiles(
                settings.grpc_tls_cert_file,
                settings.grpc_tls_key_file,
                settings.grpc_tls_client_ca_file,
            )
        self.api = ApiServer(
            self.store,
            settings.grpc_listen,
            tls=tls,
            reflection=settings.grpc_reflection,
            max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
            max_streams=settings.grpc_max_streams,
            registry=self.metrics.registry,
        )
        self.http = MetricsServer(
            self.metrics, settings.metrics_listen, live=self._live, ready=self._ready
        )
        if settings.publish_endpoint and not settings.provider_grpc_urls:
            raise ServiceError(
                "provider_grpc_urls", "publish_endpoint needs a gRPC endpoint to sign through"
            )
        # Watched publishing or not: the metrics compare it with what the chain shows.
        self.ingress_watch: IngressWatch | None = IngressWatch(
            self.rest,
            settings.service_namespace,
            settings.service_name,
            self._ingress_changed,
        )
        # Operator node resources in the served namespaces: an edit wakes the loop.
        self.node_watches = [
            NodeResourceWatch(self.rest, kind.path(namespace), self._node_resource_changed)
            for target in sorted(operator_targets(settings))
            for kind in TARGET_KINDS[target]
            for namespace in self._peers_list_namespaces()
        ]
        self.stats = ServiceStats()

        self._wake = asyncio.Event()
        self._reasons: set[str] = {"start"}
        self._full_pending = True
        self._leading = False
        self._stopping = asyncio.Event()
        self._retry = _Retry()
        self._retry_handle: asyncio.TimerHandle | None = None
        self._snapshot_seen_at: dict[int, float] = {}
        # What the last rounds did (to write and log only differences).
        self._applied_lb: Any = None
        self._lb_outcomes: dict[str, str | None] = {}
        self._applied_configmaps: dict[tuple[str, str], PeersConfigMap] = {}
        self._publish_problems: dict[str, str] = {}
        # Pod UID -> peers hash dialled (pruned to the pods that exist).
        self._dialed: dict[str, str] = {}
        # When the earliest restart hold-down ends, and the wake-up set for it.
        self._hold_down_wake: tuple[float, asyncio.TimerHandle] | None = None
        # The round in flight, and whether it writes (a leader's round is cancelled
        # when leadership is lost).
        self._round: asyncio.Task[bool] | None = None
        self._round_leading = False
        # Operator node resources: peers hash written per chain, and what status shows.
        self._operator_written: dict[str, str] = {}
        self._operator_problems: dict[str, str] = {}
        self._operator_nodes: dict[str, tuple[str, bool]] = {}
        self._operator_recheck = False
        self._last: DesiredCluster | None = None
        self._logged_problems: frozenset[str] = frozenset()
        # Compat mode: validators whose moniker-derived node ID was logged and counted.
        self._moniker_node_ids_seen: set[OperatorAddress] = set()
        self._publishing: asyncio.Task[None] | None = None
        self._publish_retry_at = 0.0
        self._publish_failures = 0
        # Permanent faults still standing, per part (for /readyz and one log line each).
        self.faults = FaultLedger()
        # Publishing limits: the ingress seen and since when, the last publication sent,
        # and the refusal last reported (logged and counted once per change).
        self._ingress_seen: tuple[str, ...] | None = None
        self._ingress_since = 0.0
        self._last_published_at: float | None = None
        self._refusals = RefusalLog()
        self._publish_wake: asyncio.TimerHandle | None = None
        # Every write through our Kubernetes clients is fenced by the Lease.
        self.rest.write_guard = self._fence
        self.lb.reconciler.rest.write_guard = self._fence

    # --- triggers ------------------------------------------------------------

    def wake(self, reason: str) -> None:
        """Something may have changed: recompute (never blocks; safe from loop callbacks)."""
        self._reasons.add(reason)
        if reason in ("start", "timer", "leadership", "retry"):
            self._full_pending = True
        self._wake.set()

    def _node_resource_changed(self) -> None:
        """An operator node resource changed: look at every one again (not a full resync)."""
        self._operator_recheck = True
        self.wake("node-resource")

    def stop(self) -> None:
        """Ask `run()` to shut down gracefully."""
        self._stopping.set()

    @property
    def leading(self) -> bool:
        """Whether this replica may write now."""
        if self.elector is None:
            return True
        return self._leading and self.elector.is_leader

    def _fence(self, operation: str) -> None:
        """Just before each Kubernetes write (in whatever thread makes it): refuse it unless
        this replica leads and its Lease, by its own expiry, is surely still held."""
        if self.elector is None:
            return
        if not self._leading:
            raise NotLeader(self.elector.config.where, operation, "leadership given up")
        self.elector.fence(operation)

    def _ingress_changed(self, ingress: tuple[str, ...]) -> None:
        if ingress != self._ingress_seen:
            self._ingress_seen, self._ingress_since = ingress, self.clock()
        self.wake("ingress")

    # --- health ----------------------------------------------------------------

    def _live(self) -> Check:
        # Answering at all proves the event loop runs.
        return Check(True)

    def _ready(self) -> Check:
        ok, detail = readiness(
            computed=self.stats.ready_at is not None,
            stopping=self._stopping.is_set(),
            standing=self.standing_faults(),
            height=self.store.current.height,
        )
        return Check(ok, detail)

    def standing_faults(self) -> dict[Part, str]:
        """Each part that failed permanently and has not worked since, with why."""
        standing = self.faults.standing()
        counters = self.monitor.counters
        if counters.failing_permanently:
            standing[Part.PROVIDER_QUERIES] = counters.last_query_failure
        if counters.stream.failing_permanently:
            standing[Part.PROVIDER_STREAM] = counters.stream.last_failure
        return {part: standing[part] for part in Part if part in standing}

    def _fault(self, part: Part, error: BaseException, key: str = "") -> None:
        """Count a fault; log a permanent one once (until it is cleared by a success)."""
        fault = fault_of(error)
        self.metrics.ops.faults.labels(part=part.value, kind=fault.kind).inc()
        if self.faults.record(part, fault, key):
            log.error(
                "part failed permanently; needs a fix",
                extra={"part": part.value, "what": key, "error": fault.reason},
            )

    # --- running ---------------------------------------------------------------

    async def run(self) -> None:
        """Serve until `stop()`; then release the Lease and stop every part, in order."""
        await self.api.start()
        await self.http.start()
        log.info(
            "discovery service started",
            extra={
                "operator": self.operator,
                "identity": self.identity,
                "grpc_port": self.api.port,
                "metrics_port": self.http.port,
                "leader_election": self.elector is not None,
                "service": f"{self.settings.service_namespace}/{self.settings.service_name}",
            },
        )
        tasks = [
            asyncio.create_task(self.monitor.run(), name="chain-monitor"),
            asyncio.create_task(self._follow_chain(), name="follow-chain"),
            asyncio.create_task(self._timer(), name="resync-timer"),
            asyncio.create_task(self._loop(), name="reconcile-loop"),
            asyncio.create_task(self._sync_counters(), name="counters"),
            asyncio.create_task(self._campaign(), name="leadership"),
        ]
        if self.ingress_watch is not None:
            self.ingress_watch.start()
        for node_watch in self.node_watches:
            node_watch.start()
        stopping = asyncio.create_task(self._stopping.wait(), name="stop")
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is stopping or task.cancelled():
                    continue
                # Every part runs until cancelled: one that ends, even quietly, is a fault.
                failure = task.exception() or PartEnded(task.get_name())
                log.error(
                    "service part failed; shutting down",
                    extra={"part": task.get_name(), "error": str(failure)},
                )
        finally:
            await self._shutdown([stopping, *tasks])
        if failure is not None:
            raise failure

    async def _shutdown(self, tasks: Sequence[asyncio.Task[Any]]) -> None:
        self._stopping.set()
        await self.api.set_serving(False)
        # The leadership task goes first: cancelling it releases the Lease, so a
        # standby replica takes over at once instead of after the lease time.
        for task in reversed(tasks):
            task.cancel()
        for task in reversed(tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._publishing
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        if self.ingress_watch is not None:
            await self.ingress_watch.stop()
        for node_watch in self.node_watches:
            await node_watch.stop()
        await self.lb.close()
        await self.api.stop()
        await self.http.stop()
        self.store.close()
        with contextlib.suppress(ChainMonitorError):
            await self.queries.close()
        log.info("discovery service stopped", extra={"identity": self.identity})

    async def _follow_chain(self) -> None:
        async for snapshot in self.monitor.subscribe():
            self._snapshot_seen_at.setdefault(snapshot.height, self.clock())
            self.wake("chain")

    async def _timer(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            self.wake("timer")

    async def _campaign(self) -> None:
        if self.elector is None:
            await self._lead()
            return
        await self.elector.run(self._lead)

    async def _lead(self) -> None:
        """The leader's own work: follow pods into EndpointSlices (the loop does the rest).

        Leadership changing either way cancels the round in flight and clears every
        memory of what "we" wrote: another leader may have written since.
        """
        self._forget_leader_work()
        self._leading = True
        self.metrics.ops.leadership_changes.inc()
        self.wake("leadership")
        try:
            await self.lb.run()
        finally:
            self.metrics.ops.leadership_changes.inc()
            self._leading = False
            self._forget_leader_work()
            self.wake("leadership")
            # The pod watch feeds only the leader: stop it (apply starts it again).
            await self.lb.close()

    def _forget_leader_work(self) -> None:
        """Cancel leader work in flight and clear every per-leader memory."""
        if self._round is not None and self._round_leading and not self._round.done():
            self._round.cancel()
        if self._publishing is not None and not self._publishing.done():
            self._publishing.cancel()
        for handle in (self._publish_wake, self._hold_down_wake and self._hold_down_wake[1]):
            if handle:
                handle.cancel()
        self._publish_wake = self._hold_down_wake = None
        self._applied_lb = None
        self._lb_outcomes = {}
        self._applied_configmaps.clear()
        self._publish_problems = {}
        self.restart_applier.reset()
        self._dialed.clear()
        self._operator_written.clear()
        self._operator_problems.clear()
        self._operator_nodes.clear()
        self._publish_retry_at = 0.0
        self._refusals = RefusalLog()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            snapshot = self.monitor.snapshot
            if snapshot is None:
                continue
            reasons, self._reasons = self._reasons, set()
            full, self._full_pending = self._full_pending, False
            started = self.clock()
            # A task of its own, so losing the Lease can cancel it (`_forget_leader_work`).
            round_task = asyncio.create_task(self._reconcile(snapshot, full=full), name="round")
            self._round, self._round_leading = round_task, self.leading
            try:
                await asyncio.wait({round_task})
            finally:
                if not round_task.done():
                    round_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await round_task
                self._round = None
                self.metrics.reconcile_duration.observe(self.clock() - started)
            if round_task.cancelled():
                # Leadership changed mid-round; that change already asked for a full round.
                log.info("round cancelled: leadership changed")
                continue
            try:
                clean = round_task.result()
            except (DiscoveryError, LbManagerError) as e:
                clean = False
                self._failed(e)
            else:
                self.stats.reconciles += 1
                self.stats.full_reconciles += int(full)
            if clean:
                self._retry.reset()
                # Every write and every consumer node worked this round.
                self.faults.clear(Part.KUBERNETES)
                self.faults.clear(Part.CONSUMER_NODES)
                if self.stats.last_error:
                    log.info("reconcile recovered", extra={"after": self.stats.last_error})
                    self.stats.last_error = ""
            else:
                self._schedule_retry()
            log.debug("reconciled", extra={"reasons": ",".join(sorted(reasons)), "full": full})

    def _failed(self, e: DiscoveryError | LbManagerError) -> None:
        transient = bool(getattr(e, "transient", False))
        self._fault(Part.CONSUMER_NODES if isinstance(e, NotifyError) else Part.KUBERNETES, e)
        self.stats.failures += 1
        self.metrics.reconcile_errors.labels(kind="transient" if transient else "permanent").inc()
        text = str(e)
        if text != self.stats.last_error:
            log.warning(
                "reconcile failed; will retry",
                extra={"error": text, "transient": transient},
            )
        self.stats.last_error = text

    def _schedule_retry(self) -> None:
        if self._retry_handle is not None and not self._retry_handle.cancelled():
            return
        delay = self._retry.next_delay()
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._retry_handle = None
            self.wake("retry")

        self._retry_handle = loop.call_later(delay, fire)

    # --- one round -------------------------------------------------------------

    def _pods(self, desired: DesiredCluster) -> dict[str, tuple[PodInfo, ...]]:
        """Consumer pods per exposed chain ID, from the pod watch's cache ({} before it syncs)."""
        watcher = self.lb.watcher
        pods = watcher.snapshot() if watcher is not None else None
        if pods is None:
            return {}
        index = PodIndex(p for p in pods if not p.terminating)
        # Every matching pod, wherever it runs: the decision reports the ones outside
        # the served namespaces, and only served ones are dialled (`_notify`).
        return {
            c.chain_id: index.matching(replace(c.exposure.pods, namespaces=frozenset()))
            for c in desired.chains
        }

    def _desired(
        self, snapshot: ChainSnapshot, pods: Mapping[str, Sequence[PodInfo]], *, leading: bool
    ) -> DesiredCluster:
        namespaces = {chain: [p.namespace for p in found] for chain, found in pods.items()}
        return desired_cluster(
            snapshot,
            self.operator,
            self.policy,
            self.endpoint_policy,
            namespaces,
            pods_known=leading,
        )

    async def _reconcile(self, snapshot: ChainSnapshot, *, full: bool) -> bool:
        """One round; True when everything was applied (False: retry later)."""
        leading = self.leading
        pods = self._pods(self._desired(snapshot, {}, leading=leading)) if leading else {}
        desired = self._desired(snapshot, pods, leading=leading)
        clean = True
        if leading:
            if full or desired.lb != self._applied_lb:
                report = await self.lb.apply(desired.lb)
                self._count("loadbalancer", report.writes)
                self._applied_lb = desired.lb if report.ok else None
                if not report.ok or report.cleanup_errors:
                    self.metrics.ops.kubernetes_write_errors.labels(resource="loadbalancer").inc()
                clean = report.ok
                self._lb_outcomes = _lb_outcomes(report)
                for err in report.cleanup_errors:
                    log.warning("LoadBalancer cleanup failed", extra={"error": err.message})
                # The pod watch may only now cover a new chain: decide with its pods.
                fresh = self._pods(desired)
                if fresh != pods:
                    pods, desired = fresh, self._desired(snapshot, fresh, leading=True)
            clean = await self._publish(desired, full=full) and clean
            clean = await self._notify(desired, pods, full=full) and clean
            self._maybe_publish_own_endpoint(snapshot)
            outcomes = self._lb_outcomes
        else:
            outcomes = {}
        problems = dict(self._publish_problems)
        for chain_id, text in self._operator_problems.items():
            problems[chain_id] = f"{problems[chain_id]}; {text}" if chain_id in problems else text
        state = observed_state(desired.state, outcomes, problems)
        state = with_notify_views(
            state,
            {c.chain_id: c.notify.value for c in desired.chains},
            self._operator_nodes if leading else {},
        )
        self.metrics.ops.observe_pods(pod_counts(desired, pods) if leading else None)
        self._observe_own_endpoint(snapshot)
        self._log_changes(desired)
        self._note_moniker_node_ids(desired)
        self._last = desired
        if self.store.update(state) or self.stats.ready_at is None:
            self.metrics.observe_state(state)
        if self.stats.ready_at is None:
            # Serving first: a round cancelled at this await tries again next round.
            await self.api.set_serving(True)
            self.stats.ready_at = self.clock()
        self._snapshot_seen_at = {
            h: t for h, t in self._snapshot_seen_at.items() if h > snapshot.height
        }
        return clean

    def _observe_own_endpoint(self, snapshot: ChainSnapshot) -> None:
        ours = snapshot.validator(self.operator)
        ingress = self.ingress_watch.ingress if self.ingress_watch is not None else None
        details = ours.description.details if ours is not None else None
        self.metrics.ops.observe_own_endpoint(
            own_endpoint_matches(ingress, details, self.endpoint_policy, self.own_node_id)
        )

    def _count(self, resource: str, writes: int, verb: str = "write") -> None:
        if writes:
            self.stats.writes[resource] += writes
            self.metrics.count_writes(resource, verb, writes)

    # --- peers ConfigMaps --------------------------------------------------------

    async def _publish(self, desired: DesiredCluster, *, full: bool) -> bool:
        clean = True
        problems: dict[str, str] = {}
        wanted = {(cm.namespace, cm.name): cm for cm in desired.configmaps()}
        for key, cm in sorted(wanted.items()):
            if not full and self._applied_configmaps.get(key) == cm:
                continue
            before = Counter(self.configmaps.writes)
            try:
                outcome = await self.configmaps.apply(cm)
            except KubernetesWriteError as e:
                clean = False
                self.metrics.ops.kubernetes_write_errors.labels(resource="configmaps").inc()
                self._fault(Part.KUBERNETES, e, f"configmap {cm.namespace}/{cm.name}")
                problems[cm.chain_id] = str(e)
                self._applied_configmaps.pop(key, None)
                if self._publish_problems.get(cm.chain_id) != str(e):
                    log.warning(
                        "peers ConfigMap not written",
                        extra={"chain_id": cm.chain_id, "error": str(e), "transient": e.transient},
                    )
                continue
            self._applied_configmaps[key] = cm
            self.faults.clear(Part.KUBERNETES, f"configmap {cm.namespace}/{cm.name}")
            for verb, n in (Counter(self.configmaps.writes) - before).items():
                self._count("configmaps", n, verb)
            if outcome in (Outcome.CREATED, Outcome.UPDATED):
                self._observe_latency(desired.height)
                log.info(
                    f"peers ConfigMap {outcome.value}",
                    extra={
                        "chain_id": cm.chain_id,
                        "configmap": f"{cm.namespace}/{cm.name}",
                        "peer_count": cm.data["peer_count"],
                        "peers_hash": cm.peers_hash[:12],
                        "height": desired.height,
                    },
                )
        self._publish_problems = problems
        self.stats.last_published_height = desired.height
        if full or set(wanted) != set(self._applied_configmaps):
            clean = await self._remove_stale(desired, wanted) and clean
        return clean

    async def _remove_stale(
        self, desired: DesiredCluster, wanted: Mapping[tuple[str, str], PeersConfigMap]
    ) -> bool:
        held = desired.held_configmap_names()
        try:
            existing = []
            for namespace in self._peers_list_namespaces():
                existing += await self.configmaps.list_managed(namespace)
        except KubernetesWriteError as e:
            log.warning("listing peers ConfigMaps failed", extra={"error": str(e)})
            return False
        clean = True
        for cm in existing:
            key = (cm.namespace, cm.name)
            if key in wanted or cm.name in held:
                continue
            try:
                outcome = await self.configmaps.delete(cm.namespace, cm.name)
            except KubernetesWriteError as e:
                clean = False
                self.metrics.ops.kubernetes_write_errors.labels(resource="configmaps").inc()
                log.warning(
                    "stale peers ConfigMap not deleted",
                    extra={"configmap": f"{cm.namespace}/{cm.name}", "error": str(e)},
                )
                continue
            self._applied_configmaps.pop(key, None)
            if outcome is Outcome.DELETED:
                self._count("configmaps", 1, "delete")
                log.info(
                    "peers ConfigMap deleted",
                    extra={"chain_id": cm.chain_id, "configmap": f"{cm.namespace}/{cm.name}"},
                )
        return clean

    def _observe_latency(self, height: int) -> None:
        seen = self._snapshot_seen_at.get(height)
        if seen is not None:
            self.metrics.publication_latency.observe(
                publication_latency(
                    self.wall_clock(),
                    # Looked up now: the header may have come after the snapshot.
                    self.monitor.block_time(height),
                    self.clock() - seen,
                )
            )

    # --- telling consumer nodes ------------------------------------------------

    async def _notify(
        self, desired: DesiredCluster, pods: Mapping[str, Sequence[PodInfo]], *, full: bool = True
    ) -> bool:
        clean = True
        recheck, self._operator_recheck = self._operator_recheck, False
        current = {c.chain_id for c in desired.chains}
        for chain_id in (set(self._operator_nodes) | set(self._operator_problems)) - current:
            self._operator_problems.pop(chain_id, None)
            self._operator_nodes.pop(chain_id, None)
            self._operator_written.pop(chain_id, None)
        # Bounded memories: only chains still in restart mode, only pods that exist.
        self.restart_applier.retain(
            (cm.namespace, c.chain_id)
            for c in desired.chains
            if c.notify is NotifyMode.RESTART
            for cm in c.configmaps
        )
        self._dialed = live_dial_memory(self._dialed, pods)
        for chain in desired.chains:
            if chain.notify in (NotifyMode.COSMOS_OPERATOR, NotifyMode.COSMOPILOT):
                clean = await self._notify_operator(chain, full=full or recheck) and clean
            if chain.notify is NotifyMode.RESTART:
                clean = await self._restart(chain) and clean
            elif chain.notify is NotifyMode.DIAL:
                served = [
                    p
                    for p in pods.get(chain.chain_id, ())
                    if chain.exposure.pods.allows_namespace(p.namespace)
                ]
                clean = await self._dial(chain, served) and clean
        return clean

    async def _restart(self, chain: DesiredChain) -> bool:
        """Roll the chain's consumer workloads for its peers: only once the ConfigMap with
        them is written, retried until made, at most once per hold-down (`restarts`)."""
        clean = True
        for cm in chain.configmaps:
            before = sum(self.restarts.writes.values())
            result = await self.restart_applier.apply(
                chain.chain_id,
                cm.namespace,
                cm.peers_hash,
                configmap_written=self._applied_configmaps.get((cm.namespace, cm.name)) == cm,
                now=self.clock(),
                extra_labels=dict(self.policy.consumer_pod_labels),
            )
            self._count("workloads", sum(self.restarts.writes.values()) - before)
            self._report_restart(result, cm.peers_hash)
            clean = result.clean and clean
        return clean

    def _report_restart(self, result: RestartResult, peers_hash: str) -> None:
        chain_id, step = result.chain_id, result.step
        ops = self.metrics.ops
        if step.coalesced:
            ops.restarts_coalesced.labels(chain_id=chain_id).inc()
        if step.action is Action.WAIT and step.newly_waiting:
            ops.restarts_suppressed.labels(chain_id=chain_id, reason=step.reason).inc()
            log.info(
                "consumer restart waits",
                extra={
                    "chain_id": chain_id,
                    "namespace": result.namespace,
                    "reason": step.reason,
                    "peers_hash": peers_hash[:12],
                    "due_in": "" if step.due is None else f"{step.due - self.clock():.1f}",
                },
            )
        if step.due is not None:
            self._wake_at(step.due)
        if result.error is not None:
            self._fault(Part.KUBERNETES, result.error, f"workloads {result.namespace}/{chain_id}")
            log.warning(
                "consumer restart not requested",
                extra={"chain_id": chain_id, "error": str(result.error)},
            )
            ops.kubernetes_write_errors.labels(resource="workloads").inc()
            self._notified_metric(chain_id, "restart", "failed")
        report = result.report
        if report is None:
            return
        self._notified_metric(chain_id, "restart", "done", len(report.restarted))
        self._notified_metric(chain_id, "restart", "refused", len(report.refused))
        self._notified_metric(chain_id, "restart", "failed", len(report.failed))
        for ref in report.restarted:
            log.info(
                "consumer workload restarted for new peers",
                extra={"chain_id": chain_id, "workload": str(ref), "peers_hash": peers_hash[:12]},
            )
        for ref, reason in (*report.refused, *report.failed):
            log.warning(
                "consumer workload not restarted",
                extra={"chain_id": chain_id, "workload": str(ref), "reason": reason},
            )

    def _wake_at(self, due: float) -> None:
        """Wake the loop when a restart hold-down ends (one timer: the earliest)."""
        if self._hold_down_wake is not None:
            at, handle = self._hold_down_wake
            if at <= due and not handle.cancelled():
                return
            handle.cancel()

        def fire() -> None:
            self._hold_down_wake = None
            self.wake("hold-down")

        # A little late rather than early: the decision compares with the same clock.
        delay = max(0.0, due - self.clock()) + 0.05
        self._hold_down_wake = (due, asyncio.get_running_loop().call_later(delay, fire))

    async def _notify_operator(self, chain: DesiredChain, *, full: bool) -> bool:
        """Write the chain's peers into its operator node resource(s); True when they carry them."""
        target, chain_id = chain.notify.value, chain.chain_id
        if not full and self._operator_written.get(chain_id) == chain.peers_hash:
            return True
        before = self.operators.patches
        try:
            report = await self.operators.notify(
                target,
                chain_id,
                list(chain.peers.entries()),
                self._peers_list_namespaces(),
                self.settings.notify_resources.get(chain_id),
            )
        except (OperatorNotifyError, DiscoveryError) as e:
            self._operator_written.pop(chain_id, None)
            self._operator_nodes[chain_id] = ("", False)
            if self._operator_problems.get(chain_id) != str(e):
                log.warning(
                    "operator node resource not written",
                    extra={"chain_id": chain_id, "target": target, "error": str(e)},
                )
            self._operator_problems[chain_id] = str(e)
            self._notified_metric(chain_id, target, "failed")
            return False
        self._count(target, self.operators.patches - before, "patch")
        if report.missing:
            self._operator_written.pop(chain_id, None)
            self._operator_nodes[chain_id] = ("", False)
            if self._operator_problems.get(chain_id) != report.missing:
                log.warning(
                    "operator node resource missing",
                    extra={"chain_id": chain_id, "target": target, "problem": report.missing},
                )
                self._notified_metric(chain_id, target, "missing")
            self._operator_problems[chain_id] = report.missing
            return False
        failed = [r for r in report.results if r.outcome is ResourceOutcome.FAILED]
        for r in report.results:
            if r.outcome is ResourceOutcome.PATCHED:
                self._notified_metric(chain_id, target, "done")
                log.info(
                    "operator node resource given new peers",
                    extra={
                        "chain_id": chain_id,
                        "target": target,
                        "resource": r.resource,
                        "peer_count": len(chain.peers.peers),
                        "peers_hash": chain.peers_hash[:12],
                    },
                )
            elif r.outcome is ResourceOutcome.FAILED:
                self._notified_metric(chain_id, target, "failed")
                self.metrics.ops.kubernetes_write_errors.labels(resource=target).inc()
                log.warning(
                    "operator node resource not written",
                    extra={
                        "chain_id": chain_id,
                        "target": target,
                        "resource": r.resource,
                        "error": r.detail,
                    },
                )
        self._operator_nodes[chain_id] = (report.resources(), not failed)
        if failed:
            self._operator_written.pop(chain_id, None)
            self._operator_problems[chain_id] = "; ".join(
                f"{r.resource}: {r.detail}" for r in failed
            )
            return False
        self._operator_problems.pop(chain_id, None)
        self._operator_written[chain_id] = chain.peers_hash
        return True

    def _notified_metric(self, chain_id: str, mode: str, outcome: str, count: int = 1) -> None:
        if count:
            self.metrics.ops.notifications.labels(
                chain_id=chain_id, mode=mode, outcome=outcome
            ).inc(count)

    async def _dial(self, chain: DesiredChain, pods: Sequence[PodInfo]) -> bool:
        clean = True
        entries = list(chain.peers.entries())
        for pod in pods:
            if not pod.ready or not pod.ips or self._dialed.get(pod.uid) == chain.peers_hash:
                continue
            where = f"pod {pod.namespace}/{pod.name}"
            if not self.leading:  # dial_peers is a write too: only while the Lease is ours
                return False
            try:
                result = await self.dialer.dial(pod.ips[0], chain.chain_id, entries)
            except (NotifyError, DiscoveryError) as e:
                self._fault(Part.CONSUMER_NODES, e, where)
                log.warning(
                    "consumer node not dialed",
                    extra={
                        "chain_id": chain.chain_id,
                        "pod": f"{pod.namespace}/{pod.name}",
                        "error": str(e),
                    },
                )
                self._notified_metric(chain.chain_id, "dial", "failed")
                clean = False
                continue
            self.faults.clear(Part.CONSUMER_NODES, where)
            if result.outcome is DialOutcome.DIALED:
                self._notified_metric(chain.chain_id, "dial", "done")
                self._dialed[pod.uid] = chain.peers_hash
                log.info(
                    "consumer node dialed its peers",
                    extra={
                        "chain_id": chain.chain_id,
                        "pod": f"{pod.namespace}/{pod.name}",
                        "peer_count": len(entries),
                    },
                )
            elif entries:
                # Catching up or not answering for this chain: try again later.
                self._notified_metric(chain.chain_id, "dial", "waiting")
                clean = False
            else:
                self._dialed[pod.uid] = chain.peers_hash
        return clean

    # --- our own endpoint ------------------------------------------------------------

    def _maybe_publish_own_endpoint(self, snapshot: ChainSnapshot) -> None:
        watch = self.ingress_watch
        if not self.settings.publish_endpoint or watch is None or watch.ingress is None:
            return
        if watch.ingress != self._ingress_seen:  # seen before its callback ran
            self._ingress_seen, self._ingress_since = watch.ingress, self.clock()
        if self._publishing is not None and not self._publishing.done():
            return
        if self.clock() < self._publish_retry_at:
            return
        ours = snapshot.validator(self.operator)
        if ours is None:
            return
        try:
            details = endpoint_update(
                watch.ingress, ours.description.details, self.endpoint_policy, self.own_node_id
            )
        except DiscoveryError as e:
            self.metrics.ops.endpoint_publications.labels(outcome="failed").inc()
            log.warning("our endpoint cannot be published", extra={"error": str(e)})
            self._publish_retry_at = self.clock() + self.settings.resync_interval
            return
        if details is None:
            self._refusals.changed(None)
            return
        s = self.settings
        refusal = publish_refusal(
            now=self.clock(),
            address_since=self._ingress_since,
            last_published_at=self._last_published_at,
            hold_down=s.publish_hold_down,
            min_interval=s.publish_min_interval,
        )
        if refusal is not None:
            self._refuse(refusal)
            if refusal.retry_at is not None:
                if self._publish_wake is not None:
                    self._publish_wake.cancel()
                self._publish_wake = asyncio.get_running_loop().call_later(
                    max(0.0, refusal.retry_at - self.clock()) + 0.05, self.wake, "publish"
                )
            return
        self._publishing = asyncio.create_task(
            self._publish_own_endpoint(watch.ingress), name="publish-endpoint"
        )
        self._publishing.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        """An error no layer classified (a bug) still fails publishing, with backoff, loudly."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        assert error is not None
        self._publish_failures += 1
        self._publish_retry_at = self.clock() + publish_retry_delay(
            self._publish_failures, transient=False, resync_interval=self.settings.resync_interval
        )
        self.metrics.ops.endpoint_publications.labels(outcome="failed").inc()
        self._fault(Part.PUBLISHING, error)

    def _refuse(self, refusal: Refusal) -> None:
        """Report a refusal to publish: one log line and one count per change of reason."""
        if self._refusals.changed(refusal):
            self.metrics.ops.endpoint_publication_refusals.labels(reason=refusal.reason).inc()
            log.info(
                "our endpoint not published yet",
                extra={"reason": refusal.reason, "detail": refusal.detail},
            )

    async def _publish_own_endpoint(self, ingress: tuple[str, ...]) -> None:
        from chainmonitor.keys import load_signing_key
        from chainmonitor.publish import EndpointPublisher

        s = self.settings
        policy = self.endpoint_policy
        node_id = self.own_node_id

        def decide(current: Any) -> str | None:
            # Runs in the signing thread just before the transaction is built: a
            # replica that lost the Lease meanwhile sends nothing.
            if not self.leading:
                return None
            return endpoint_update(ingress, current.details, policy, node_id)

        try:
            key = await asyncio.to_thread(
                load_signing_key, file=s.publish_key_file, env=s.publish_key_env
            )
            if s.publish_authz_granter is not None and key.controls(self.operator):
                raise ServiceError(
                    "publish_authz_granter",
                    "is set, but the signing key is the operator's own key: unset it, or "
                    "give the service the grantee key",
                )
            outcome = None
            last: ChainUnavailable | None = None
            # Each gRPC endpoint in turn while they are unreachable; any other error is
            # the chain's answer and would be the same on every node.
            for connection in publish_connections(s):
                try:
                    outcome = await asyncio.to_thread(
                        EndpointPublisher(connection, key).publish_details, self.operator, decide
                    )
                    break
                except ChainUnavailable as e:
                    last = e
            if outcome is None:
                raise last or ChainUnavailable("no provider gRPC endpoint")
        except FeeTooHigh as e:
            # Permanent for these settings: refused (once), tried again only at a resync.
            self._publish_retry_at = self.clock() + s.resync_interval
            self._refuse(Refusal(MAX_FEE, str(e)))
            return
        except (ChainMonitorError, DiscoveryError) as e:
            self._publish_failures += 1
            delay = publish_retry_delay(
                self._publish_failures,
                transient=bool(getattr(e, "transient", False)),
                resync_interval=s.resync_interval,
            )
            self._publish_retry_at = self.clock() + delay
            self._fault(Part.PUBLISHING, e)
            error = str(e)
            if isinstance(e, InsufficientFees):
                error += (
                    f" (publish_gas_price is {s.publish_gas_price:g}{s.publish_fee_denom}: "
                    "raise it to the provider nodes' minimum-gas-prices)"
                )
            self.metrics.ops.endpoint_publications.labels(outcome="failed").inc()
            log.warning(
                "publishing our endpoint failed",
                extra={"error": error, "transient": e.transient, "retry_in": round(delay, 1)},
            )
            asyncio.get_running_loop().call_later(delay, self.wake, "ingress")
            return
        self._publish_failures = 0
        self.faults.clear(Part.PUBLISHING)
        self._refusals.changed(None)
        if outcome.sent:
            self._last_published_at = self.clock()
            self.metrics.ops.endpoint_publications.labels(outcome="sent").inc()
            log.info(
                "published our endpoint on chain",
                extra={
                    "tx_hash": outcome.tx_hash,
                    "height": outcome.height,
                    "ingress": ",".join(ingress),
                },
            )

    # --- logs and metrics --------------------------------------------------------------

    def _log_changes(self, desired: DesiredCluster) -> None:
        before = {c.chain_id: c for c in self._last.chains} if self._last else {}
        after = {c.chain_id: c for c in desired.chains}
        for chain_id in sorted(after.keys() - before.keys()):
            c = after[chain_id]
            log.info(
                "chain exposed",
                extra={
                    "chain_id": chain_id,
                    "consumer_id": c.consumer_id,
                    "p2p_port": c.allocation.ports.p2p,
                    "peer_count": len(c.peers.peers),
                },
            )
        for chain_id in sorted(before.keys() - after.keys()):
            log.info("chain withdrawn", extra={"chain_id": chain_id})
        for chain_id in sorted(after.keys() & before.keys()):
            old, new = before[chain_id], after[chain_id]
            if old.peers != new.peers:
                left = ",".join(
                    sorted(
                        {
                            f"{x.moniker or x.operator_address}:{x.reason}"
                            for x in new.peers.left_out
                        }
                    )
                )
                log.info(
                    "peers changed",
                    extra={
                        "chain_id": chain_id,
                        "peer_count": len(new.peers.peers),
                        "peers_hash": new.peers_hash[:12],
                        "left_out": left,
                        "height": desired.height,
                    },
                )
        problems = frozenset(desired.problems)
        for p in sorted(problems - self._logged_problems):
            log.warning("problem", extra={"problem": p})
        self._logged_problems = problems

    def _note_moniker_node_ids(self, desired: DesiredCluster) -> None:
        """Compat mode: log and count, once per validator, a node ID derived from a moniker."""
        monikers = {v.operator_address: v.moniker for v in desired.state.validators}
        for chain in desired.chains:
            for operator in chain.moniker_node_ids:
                if operator in self._moniker_node_ids_seen:
                    continue
                self._moniker_node_ids_seen.add(operator)
                self.metrics.moniker_node_ids.inc()
                log.warning(
                    "INSECURE: peer node ID derived from the validator's public moniker "
                    "(it publishes no node=; compat ics-operator)",
                    extra={
                        "operator": operator,
                        "moniker": monikers.get(operator, ""),
                        "chain_id": chain.chain_id,
                    },
                )

    def _peers_list_namespaces(self) -> list[str | None]:
        """Where managed peers ConfigMaps may be: one namespace, the listed ones, or all (None)."""
        p = self.policy
        if p.consumer_namespace is not None:
            return [p.consumer_namespace]
        listed: list[str | None] = [*sorted(p.peers_namespaces)]
        return listed or [None]

    async def _sync_counters(self) -> None:
        while True:
            self.metrics.observe_counters(self.monitor.counters, leading=self.leading)
            self.metrics.ops.observe_standing_faults(p.value for p in self.standing_faults())
            await asyncio.sleep(_COUNTER_SYNC_SECONDS)


# --- entry point --------------------------------------------------------------------


async def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; 0 after a graceful stop, 1 when a part failed."""
    try:
        service = DiscoveryService(settings)
    except (DiscoveryError, LbManagerError, ChainMonitorError) as e:
        log.error("cannot start", extra={"error": str(e)})
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop)
    try:
        await service.run()
    except (DiscoveryError, LbManagerError, ChainMonitorError) as e:
        log.error("stopped after a failure", extra={"error": str(e)})
        return 1
    return 0


def main(settings: Settings) -> int:
    """`ics-discovery run`: configure logging and serve."""
    configure_logging(settings.log_level, settings.log_format)
    log.info(
        "starting",
        extra={"pid": os.getpid(), "operator": settings.operator_address},
    )
    return asyncio.run(serve(settings))
