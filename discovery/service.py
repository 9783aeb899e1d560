"""The discovery service: the level-triggered loop that keeps one validator's cluster current.

This is the composition root. It wires the chain monitor (provider snapshots),
lbmanager (LoadBalancer ports and EndpointSlices, consumer pod watch), the
appliers of `discovery.apply` (peers ConfigMaps, restarts, dials, operator node
resources, our own endpoint on chain), leader election, the gRPC API and the
metrics server. Anything that may have changed the world (a
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from kubernetes import client

from chainmonitor.backoff import JitteredBackoff
from chainmonitor.errors import ChainMonitorError
from chainmonitor.monitor import ChainMonitor, MonitorSettings
from chainmonitor.queries import ChainQueries, FallbackQueries, GrpcQueries, RestQueries
from chainmonitor.stream import EventStream, StreamSettings
from chainmonitor.types import ChainSnapshot
from discovery.api import ApiServer, TlsFiles
from discovery.apply.configmaps import ConfigMapApplier
from discovery.apply.dials import DialApplier
from discovery.apply.effects import Effects, ServiceStats, Wake
from discovery.apply.endpoint import EndpointPublisher
from discovery.apply.operators import OperatorApplier
from discovery.apply.restarts import WorkloadRestartApplier
from discovery.change_log import ChangeLog
from discovery.configmap_control import PeersConfigMapControl
from discovery.desired import DesiredCluster, desired_cluster
from discovery.errors import DiscoveryError, ServiceError
from discovery.faults import FaultLedger, Part, readiness
from discovery.logs import configure_logging
from discovery.metrics import Check, MetricsServer, ServiceMetrics
from discovery.nodekey import derive_node_key, secret_from_environment
from discovery.notify import NotifyError, PeerDialer, RestartNotifier
from discovery.operator_notify import OperatorNotifier
from discovery.operator_watch import NodeResourceWatch
from discovery.operators import TARGET_KINDS
from discovery.opsmetrics import PodCount, own_endpoint_matches
from discovery.own_endpoint import IngressWatch
from discovery.settings import Settings
from discovery.state import ChainView, DiscoveryState, StateStore
from discovery.types import NodeId, NotifyMode
from lbmanager import DesiredState as LbDesiredState
from lbmanager import LbManagerError, LbSettings, ReconcileReport
from lbmanager.consumer_pods import PodIndex, PodInfo
from lbmanager.kube import KubeRest, api_client_from_kubeconfig
from lbmanager.leader import LeaderElector, LeaseConfig, NotLeader
from lbmanager.reconciler import LoadBalancerController

log = logging.getLogger("discovery.service")

# Gauges copied from the chain monitor's counters this often (they change on their own).
_COUNTER_SYNC_SECONDS: Final = 2.0
_RETRY_INITIAL: Final = 0.5
_RETRY_MAX: Final = 30.0


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


def default_identity() -> str:
    """This replica's Lease identity: host name plus a random suffix (restarts are new holders)."""
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


def observed_state(
    state: DiscoveryState,
    outcomes: Mapping[str, str | None],
    write_problems: Mapping[str, str],
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
        extra = write_problems.get(view.chain_id, "")
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


class DiscoveryService:
    """One cluster's discovery service; `run()` until `stop()` (or SIGTERM via `main`).

    Wiring and the loop only: each effect on the world is an applier of
    `discovery.apply` with its own memory and error handling.
    """

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
            on_pods_changed=lambda _keys: self.wake(Wake.PODS),
        )
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
                on_change=lambda leading: self.wake(Wake.LEADERSHIP),
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
        self.stats = ServiceStats()
        # Permanent faults still standing, per part (for /readyz and one log line each).
        self.faults = FaultLedger()
        self.effects = Effects(self.metrics, self.stats, self.faults, clock, self.wake)

        # One applier per effect, in the order a round applies them.
        namespaces = self._peers_list_namespaces()
        self.configmaps = ConfigMapApplier(
            PeersConfigMapControl(self.rest), self.effects, namespaces, self._observe_latency
        )
        self.restarts = WorkloadRestartApplier(
            RestartNotifier(self.rest, settings.restart_scope()),
            settings.restart_hold_down,
            self.effects,
            self.policy.consumer_pod_labels,
        )
        self.dials = DialApplier(
            PeerDialer(settings.consumer_rpc_port), self.effects, lambda: self.leading
        )
        self.operators = OperatorApplier(
            OperatorNotifier(self.rest), self.effects, namespaces, settings.notify_resources
        )
        self.endpoint = EndpointPublisher(
            settings,
            self.effects,
            operator=self.operator,
            policy=self.endpoint_policy,
            node_id=self.own_node_id,
            ingress_watch=self.ingress_watch,
            leading=lambda: self.leading,
        )
        self.changes = ChangeLog(self.metrics)
        # Operator node resources in the served namespaces: an edit wakes the loop.
        self.node_watches = [
            NodeResourceWatch(self.rest, kind.path(namespace), self._node_resource_changed)
            for target in sorted(operator_targets(settings))
            for kind in TARGET_KINDS[target]
            for namespace in namespaces
        ]

        self._wake = asyncio.Event()
        self._reasons: set[Wake] = {Wake.START}
        self._full_pending = True
        self._leading = False
        self._stopping = asyncio.Event()
        self._retry = JitteredBackoff(initial=_RETRY_INITIAL, maximum=_RETRY_MAX, jitter=0.0)
        self._retry_handle: asyncio.TimerHandle | None = None
        self._snapshot_seen_at: dict[int, float] = {}
        # The LoadBalancer state last applied and what lbmanager said per chain.
        self._applied_lb: LbDesiredState | None = None
        self._lb_outcomes: dict[str, str | None] = {}
        # The round in flight, and whether it writes (a leader's round is cancelled
        # when leadership is lost).
        self._round: asyncio.Task[bool] | None = None
        self._round_leading = False
        # Every write through our Kubernetes clients is fenced by the Lease.
        self.rest.write_guard = self._fence
        self.lb.reconciler.rest.write_guard = self._fence

    # --- triggers ------------------------------------------------------------

    def wake(self, reason: Wake) -> None:
        """Something may have changed: recompute (never blocks; safe from loop callbacks)."""
        self._reasons.add(reason)
        if reason.full:
            self._full_pending = True
        self._wake.set()

    def _node_resource_changed(self) -> None:
        """An operator node resource changed: look at every one again (not a full resync)."""
        self.operators.recheck()
        self.wake(Wake.NODE_RESOURCE)

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
        self.endpoint.ingress_changed(ingress)
        self.wake(Wake.INGRESS)

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
        await self.endpoint.close()
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
            self.wake(Wake.CHAIN)

    async def _timer(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            self.wake(Wake.TIMER)

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
        self.wake(Wake.LEADERSHIP)
        try:
            await self.lb.run()
        finally:
            self.metrics.ops.leadership_changes.inc()
            self._leading = False
            self._forget_leader_work()
            self.wake(Wake.LEADERSHIP)
            # The pod watch feeds only the leader: stop it (apply starts it again).
            await self.lb.close()

    def _forget_leader_work(self) -> None:
        """Cancel leader work in flight and clear every per-leader memory."""
        if self._round is not None and self._round_leading and not self._round.done():
            self._round.cancel()
        self._applied_lb = None
        self._lb_outcomes = {}
        for applier in (self.configmaps, self.restarts, self.dials, self.operators, self.endpoint):
            applier.forget()

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
        part = Part.CONSUMER_NODES if isinstance(e, NotifyError) else Part.KUBERNETES
        self.effects.fault(part, e)
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

        def fire() -> None:
            self._retry_handle = None
            self.wake(Wake.RETRY)

        self._retry_handle = asyncio.get_running_loop().call_later(delay, fire)

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
                clean = await self._apply_lb(desired)
                # The pod watch may only now cover a new chain: decide with its pods.
                fresh = self._pods(desired)
                if fresh != pods:
                    pods, desired = fresh, self._desired(snapshot, fresh, leading=True)
            clean = await self.configmaps.apply(desired, full=full) and clean
            clean = await self._notify(desired, pods, full=full) and clean
            self.endpoint.maybe_publish(snapshot)
            outcomes = self._lb_outcomes
        else:
            outcomes = {}
        problems = dict(self.configmaps.problems)
        for chain_id, text in self.operators.problems.items():
            problems[chain_id] = f"{problems[chain_id]}; {text}" if chain_id in problems else text
        state = observed_state(desired.state, outcomes, problems)
        state = with_notify_views(
            state,
            {c.chain_id: c.notify.value for c in desired.chains},
            self.operators.nodes if leading else {},
        )
        self.metrics.ops.observe_pods(pod_counts(desired, pods) if leading else None)
        self._observe_own_endpoint(snapshot)
        self.changes.observe(desired)
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

    async def _apply_lb(self, desired: DesiredCluster) -> bool:
        """LoadBalancer ports and EndpointSlices (lbmanager); True when all applied."""
        report = await self.lb.apply(desired.lb)
        self.effects.count("loadbalancer", report.writes)
        self._applied_lb = desired.lb if report.ok else None
        if not report.ok or report.cleanup_errors:
            self.metrics.ops.kubernetes_write_errors.labels(resource="loadbalancer").inc()
        self._lb_outcomes = _lb_outcomes(report)
        for err in report.cleanup_errors:
            log.warning("LoadBalancer cleanup failed", extra={"error": err.message})
        return report.ok

    async def _notify(
        self, desired: DesiredCluster, pods: Mapping[str, Sequence[PodInfo]], *, full: bool = True
    ) -> bool:
        """Tell each chain's consumer nodes, by the chain's notify mode."""
        clean = True
        recheck = self.operators.take_recheck()
        self.operators.retain(c.chain_id for c in desired.chains)
        # Bounded memories: only chains still in restart mode, only pods that exist.
        self.restarts.retain(
            (cm.namespace, c.chain_id)
            for c in desired.chains
            if c.notify is NotifyMode.RESTART
            for cm in c.configmaps
        )
        self.dials.retain(pods)
        for chain in desired.chains:
            if chain.notify in (NotifyMode.COSMOS_OPERATOR, NotifyMode.COSMOPILOT):
                clean = await self.operators.apply(chain, full=full or recheck) and clean
            if chain.notify is NotifyMode.RESTART:
                clean = await self.restarts.apply(chain, self.configmaps.written) and clean
            elif chain.notify is NotifyMode.DIAL:
                served = [
                    p
                    for p in pods.get(chain.chain_id, ())
                    if chain.exposure.pods.allows_namespace(p.namespace)
                ]
                clean = await self.dials.apply(chain, served) and clean
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

    def _observe_own_endpoint(self, snapshot: ChainSnapshot) -> None:
        ours = snapshot.validator(self.operator)
        ingress = self.ingress_watch.ingress if self.ingress_watch is not None else None
        details = ours.description.details if ours is not None else None
        self.metrics.ops.observe_own_endpoint(
            own_endpoint_matches(ingress, details, self.endpoint_policy, self.own_node_id)
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
