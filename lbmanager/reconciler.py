"""The one entry point: make the LoadBalancer Service(s) and EndpointSlices match a DesiredState.

Why concurrent writers are safe (optimistic concurrency, not server-side apply).
Each reconcile reads the shard Services, computes a plan in a pure function and
writes every Service that differs with a full replace carrying the
resourceVersion it read. If anyone else wrote that Service in between, the API
server answers 409 and nothing of ours is stored; the reconcile then re-reads
and re-plans from the fresh object. So every successful write was computed
from exactly the state it replaces: no other writer's change can be
overwritten. What a reconciler may change is limited by its owner id: the
Service's ownership annotation records, per owner, which ports it created (for
which key), and a plan only adds or removes entries of its own owner, copying
every other owner's ports and entries and every foreign port through
unchanged. Two reconcilers with different owner ids and different chains
therefore converge to the union: each round at least one of them succeeds
(the first write to land wins; the loser retries on the winner's result), and
no round removes the other's ports. The same key desired by two owners is
refused for the second (`KeyExposedByOtherOwner`) rather than fought over.
Reconcilers sharing one owner id are one logical writer: run one at a time
(the service uses leader election), or give each its own id. Server-side apply
was not chosen because it writes (a no-op apply is still a request) where we
must write nothing, its per-field conflicts cannot refuse one chain while
applying the others, and `placeholder` and foreign-port rules need the whole
list anyway.

EndpointSlices are per owner (label) and per (Service, key) (name), so
different owners never write the same slice; updates still carry the
resourceVersion and deletes uid/resourceVersion preconditions.

`LoadBalancerController` is the asyncio face used by the service: full
reconciles on demand, and a pod watch that re-syncs only the affected chains'
slices within milliseconds of a pod change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kubernetes import client

from .consumer_pods import PodIndex, PodInfo, PodScope, pod_scope, selector_matches
from .endpointslice_builder import DesiredSlice, ServiceRef, build_slices, slice_key
from .endpointslice_control import read_slices, sync_slices
from .errors import (
    ChainRefused,
    EndpointsNotApplied,
    LbManagerError,
)
from .kube import KubeRest, retry_on_conflict
from .pods import PodChange, PodWatcher, list_pods
from .service_builder import ServicePlan, ingress_addresses, plan_services, validate_chain
from .service_control import apply_service_plan, read_shards
from .types import (
    ChainExposure,
    ChainKey,
    ChainOutcome,
    DesiredState,
    LbSettings,
    RawObject,
    ReconcileReport,
    ServiceOutcome,
)

log = logging.getLogger(__name__)

# The first pause after a Service write conflict (doubling, capped at 0.5 s).
_CONFLICT_PAUSE = 0.01

# Given a scope, the cached pods covering it, or None to make the reconciler list.
PodSource = Callable[[PodScope], Sequence[PodInfo] | None]


@dataclass(frozen=True)
class _Exposed:
    chain: ChainExposure
    service: ServiceRef


def _scope_for(chains: Iterable[ChainExposure]) -> PodScope | None:
    return pod_scope([c for c in chains if validate_chain(c) is None])


class LoadBalancerReconciler:
    """Synchronous reconciler (blocking I/O: call it from a thread in async code)."""

    def __init__(
        self,
        api: client.ApiClient,
        settings: LbSettings | None = None,
        *,
        pod_source: PodSource | None = None,
    ) -> None:
        self.settings = settings or LbSettings()
        self.rest = KubeRest(api, timeout=self.settings.request_timeout_seconds)
        self.pod_source = pod_source
        self._lock = threading.Lock()
        self._exposed: dict[str, _Exposed] = {}
        self._by_label: dict[tuple[str, str], list[str]] = {}

    # ---- full reconcile -------------------------------------------------

    def reconcile(self, desired: DesiredState) -> ReconcileReport:
        """Make the cluster match `desired`; per-chain problems are in the report.

        Raises LbManagerError only when nothing sensible can be done this round
        (API unreachable, access denied, unreadable ownership record, endless
        conflicts); the error says whether retrying may help.
        """
        s = self.settings
        with self._lock:
            writes0 = self.rest.writes
            conflicts = 0

            def attempt(n: int) -> tuple[ServicePlan, dict[int, RawObject]]:
                # Each attempt re-reads the shards and plans again from what it read.
                nonlocal conflicts
                conflicts = n
                observed = read_shards(self.rest, s)
                plan = plan_services(
                    observed,
                    desired.chains,
                    owner=s.owner,
                    base_name=s.service_name,
                    max_ports=s.max_ports_per_service,
                )
                return plan, apply_service_plan(self.rest, s, observed, plan)

            plan, services = retry_on_conflict(
                f"Service {s.namespace}/{s.service_name}",
                attempt,
                attempts=s.conflict_attempts,
                base=_CONFLICT_PAUSE,
            )

            refs = {i: _service_ref(raw, s.namespace) for i, raw in services.items()}
            by_key = {c.key: c for c in desired.chains}
            exposed: dict[str, _Exposed] = {}
            for p in plan.chains:
                if p.status == "exposed" and p.index is not None:
                    exposed[p.key] = _Exposed(by_key[p.key], refs[p.index])
            pods = PodIndex(self._pods([e.chain for e in exposed.values()]))

            desired_slices: list[DesiredSlice] = []
            slice_errors: dict[str, LbManagerError] = {}
            for key, ex in sorted(exposed.items()):
                try:
                    desired_slices.extend(
                        build_slices(ex.service, ex.chain, pods.matching(ex.chain.pods), s.owner)
                    )
                except ChainRefused as refused:
                    slice_errors[key] = refused
            keep = {p.key for p in plan.chains if p.status != "exposed"} | set(slice_errors)
            sync = sync_slices(
                self.rest,
                s.namespace,
                desired_slices,
                read_slices(self.rest, s.namespace, s.owner),
                keep_keys=keep,
                owner=s.owner,
                concurrency=s.write_concurrency,
                attempts=s.conflict_attempts,
            )
            slice_errors.update(sync.errors)
            self._remember(exposed)

            names_by_key: dict[str, list[str]] = {}
            for d in desired_slices:
                names_by_key.setdefault(d.key, []).append(d.name)
            outcomes: list[ChainOutcome] = []
            for p in plan.chains:
                err: LbManagerError | None = p.error
                if err is None and p.key in slice_errors:
                    cause = slice_errors[p.key]
                    err = (
                        cause
                        if isinstance(cause, ChainRefused)
                        else EndpointsNotApplied(p.key, cause)
                    )
                outcomes.append(
                    ChainOutcome(
                        key=p.key,
                        status=p.status,
                        service=refs[p.index].name
                        if p.index is not None and p.index in refs
                        else None,
                        port_names=p.port_names,
                        slices=tuple(sorted(names_by_key.get(p.key, ()))),
                        error=err,
                    )
                )
            return ReconcileReport(
                chains=tuple(outcomes),
                services=tuple(
                    ServiceOutcome(refs[i].name, refs[i].uid, ingress_addresses(raw))
                    for i, raw in sorted(services.items())
                ),
                removed=plan.removed,
                writes=self.rest.writes - writes0,
                conflicts=conflicts,
                cleanup_errors=tuple(e for k, e in sorted(slice_errors.items()) if k not in by_key),
            )

    # ---- pod-driven refresh ------------------------------------------------

    def refresh_endpoints(self, keys: Iterable[str]) -> ReconcileReport:
        """Re-sync only the slices of `keys` (exposed by the last reconcile) from pods."""
        s = self.settings
        with self._lock:
            writes0 = self.rest.writes
            todo = sorted(set(keys) & self._exposed.keys())
            exposed = [self._exposed[k] for k in todo]
            outcomes: list[ChainOutcome] = []
            pods = PodIndex(self._pods([e.chain for e in exposed]) if exposed else ())
            # Many keys at once (a relist after a long disconnect): one list, not one each.
            bulk: dict[str, list[RawObject]] | None = None
            if len(exposed) > 16:
                bulk = {}
                for item in read_slices(self.rest, s.namespace, s.owner):
                    k = slice_key(item)
                    if k is not None:
                        bulk.setdefault(k, []).append(item)
            for e in exposed:
                key = e.chain.key
                err: LbManagerError | None = None
                names: tuple[str, ...] = ()
                try:
                    desired = build_slices(e.service, e.chain, pods.matching(e.chain.pods), s.owner)
                    names = tuple(sorted(d.name for d in desired))
                    sync = sync_slices(
                        self.rest,
                        s.namespace,
                        desired,
                        bulk.get(key, [])
                        if bulk is not None
                        else read_slices(self.rest, s.namespace, s.owner, key),
                        keep_keys=(),
                        owner=s.owner,
                        concurrency=1,
                        attempts=s.conflict_attempts,
                    )
                    if sync.errors:
                        cause = next(iter(sync.errors.values()))
                        err = (
                            cause
                            if isinstance(cause, ChainRefused)
                            else EndpointsNotApplied(key, cause)
                        )
                except ChainRefused as refused:
                    err = refused
                except LbManagerError as failure:
                    err = EndpointsNotApplied(key, failure)
                outcomes.append(ChainOutcome(key, "exposed", e.service.name, (), names, err))
            return ReconcileReport(
                chains=tuple(outcomes),
                services=(),
                removed=(),
                writes=self.rest.writes - writes0,
                conflicts=0,
            )

    def affected_keys(self, changes: Iterable[PodChange]) -> set[ChainKey]:
        """Exposed chains whose pods a change may concern (before or after it)."""
        exposed, by_label = self._exposed, self._by_label  # consistent pair of references
        out: set[ChainKey] = set()
        for ch in changes:
            for pod in (ch.old, ch.new):
                if pod is None:
                    continue
                for kv in pod.labels.items():
                    for key in by_label.get(kv, ()):
                        e = exposed.get(key)
                        if e is not None and selector_matches(e.chain.pods, pod):
                            out.add(ChainKey(key))
        return out

    # ---- helpers --------------------------------------------------------------

    def _remember(self, exposed: dict[str, _Exposed]) -> None:
        by_label: dict[tuple[str, str], list[str]] = {}
        for key, e in exposed.items():
            first = next(iter(e.chain.pods.labels.items()))
            by_label.setdefault(first, []).append(key)
        self._exposed, self._by_label = exposed, by_label

    def _pods(self, chains: Sequence[ChainExposure]) -> Sequence[PodInfo]:
        scope = _scope_for(chains)
        if scope is None:
            return ()
        if self.pod_source is not None:
            cached = self.pod_source(scope)
            if cached is not None:
                return cached
        pods, _ = list_pods(self.rest, scope)
        return pods


def _service_ref(raw: RawObject, namespace: str) -> ServiceRef:
    meta = raw.get("metadata") or {}
    return ServiceRef(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or namespace),
        uid=str(meta.get("uid") or ""),
    )


class LoadBalancerController:
    """Asyncio face: `apply` a desired state; `run` keeps slices following pods.

    Blocking Kubernetes calls run in worker threads (`asyncio.to_thread`); the
    pod watch runs in its own thread and hands changed chain keys to the event
    loop, which coalesces a burst of changes (`debounce_seconds`) into one refresh.
    """

    def __init__(
        self,
        api: client.ApiClient,
        settings: LbSettings | None = None,
        *,
        debounce_seconds: float = 0.05,
        retry_seconds: float = 1.0,
        sync_timeout_seconds: float = 10.0,
        on_pods_changed: Callable[[set[ChainKey]], None] | None = None,
    ) -> None:
        self.reconciler = LoadBalancerReconciler(api, settings, pod_source=self._cached_pods)
        # Called on the event loop with the keys whose pods changed (after the
        # slices are queued for refresh), for callers that derive more from pods.
        self.on_pods_changed = on_pods_changed
        self.debounce_seconds = debounce_seconds
        self.retry_seconds = retry_seconds
        self.sync_timeout_seconds = sync_timeout_seconds
        self.watcher: PodWatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Chains whose pods changed since the last refresh. A set, not a queue: only
        # "something changed for this chain" matters, so it never holds more than
        # the exposed chains, however many pod events arrive while nobody reads it.
        self.pending: set[ChainKey] = set()
        self._pending_event: asyncio.Event | None = None
        self._apply_lock = asyncio.Lock()  # one apply (and watcher switch) at a time
        self.refreshes = 0

    def _ensure_loop(self) -> asyncio.Event:
        if self._pending_event is None:
            self._loop = asyncio.get_running_loop()
            self._pending_event = asyncio.Event()
        return self._pending_event

    def _mark(self, keys: set[ChainKey]) -> None:
        """On the event loop: remember `keys` as changed (coalesced) and wake `run`."""
        self.pending |= keys
        if self._pending_event is not None:
            self._pending_event.set()

    def _cached_pods(self, scope: PodScope) -> Sequence[PodInfo] | None:
        w = self.watcher
        if w is None or w.scope != scope:
            return None
        return w.snapshot()

    def _on_pods_changed(self, changes: Sequence[PodChange]) -> None:
        keys = self.reconciler.affected_keys(changes)
        loop = self._loop
        if keys and loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self._mark, keys)
                if self.on_pods_changed is not None:
                    loop.call_soon_threadsafe(self.on_pods_changed, set(keys))

    async def _watch_scope(self, scope: PodScope | None) -> None:
        self._ensure_loop()
        old = self.watcher
        if old is not None and old.scope == scope:
            return
        if old is not None:
            self.watcher = None
            await asyncio.to_thread(old.stop)
        if scope is None:
            return
        w = PodWatcher(self.reconciler.rest, scope, self._on_pods_changed, backoff_max=5.0)
        w.start()
        self.watcher = w
        if not await asyncio.to_thread(w.wait_synced, self.sync_timeout_seconds):
            log.warning("pod cache not synced yet (%s); listing pods directly", scope.describe())

    async def apply(self, desired: DesiredState) -> ReconcileReport:
        """Full reconcile of `desired`, watching the pods it needs from now on."""
        async with self._apply_lock:
            await self._watch_scope(_scope_for(desired.chains))
            return await asyncio.to_thread(self.reconciler.reconcile, desired)

    async def run(self) -> None:
        """Refresh slices of chains whose pods changed, until cancelled."""
        event = self._ensure_loop()
        loop = asyncio.get_running_loop()
        while True:
            await event.wait()
            await asyncio.sleep(self.debounce_seconds)
            event.clear()
            keys, self.pending = self.pending, set()
            if not keys:
                continue
            retry: set[ChainKey] = set()
            try:
                report = await asyncio.to_thread(self.reconciler.refresh_endpoints, keys)
                self.refreshes += 1
                for c in report.chains:
                    if c.error is not None:
                        log.warning("endpoints of %r not refreshed: %s", c.key, c.error)
                        if c.error.transient:
                            retry.add(c.key)
            except LbManagerError as e:
                log.warning("endpoint refresh failed: %s", e)
                if e.transient:
                    retry = keys
            if retry:
                loop.call_later(self.retry_seconds, self._mark, retry)

    async def close(self) -> None:
        """Stop the pod watch and forget pending changes (`apply` starts it again)."""
        async with self._apply_lock:
            w, self.watcher = self.watcher, None
            self.pending.clear()
            if w is not None:
                await asyncio.to_thread(w.stop)
