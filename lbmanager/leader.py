"""Leader election with a `coordination.k8s.io/v1` Lease, so two replicas never both write.

Running two replicas of the service keeps it available, but two writers would
fight over the same Service ports, EndpointSlices and ConfigMaps. This module
follows client-go's `leaderelection` protocol so it interoperates with (and is
as safe as) every Kubernetes controller: a candidate takes a Lease that is
free or that has not changed for `leaseDurationSeconds` of its *own* clock
(never comparing clocks across machines), renews it every `retry_period`
with optimistic concurrency (`resourceVersion`), and stops leading when it
could not renew within `renew_deadline`, which is shorter than the lease
duration, so it has stopped before anyone else may start. On graceful
shutdown it releases the Lease (empty holder, 1 s duration) so a successor
takes over at once instead of after the lease duration.

Decisions (`lease_record`, `takeover_allowed`, `lease_spec`) are pure; the
`LeaderElector` does the requests through `KubeRest` in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from .errors import KubernetesConflict, KubernetesRejected, LbManagerError
from .kube import KubeRest
from .paths import lease_path
from .types import RawObject

log = logging.getLogger(__name__)

# client-go's JitterFactor for acquire retries.
JITTER_FACTOR: Final = 1.2
# What client-go writes into a released Lease.
RELEASED_DURATION_SECONDS: Final = 1


def micro_time(moment: datetime) -> str:
    """Kubernetes MicroTime text (RFC 3339 with microseconds, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NotLeader(LbManagerError):
    """A write was refused because this replica does not hold the Lease now (transient)."""

    def __init__(self, lease: str, operation: str, problem: str) -> None:
        super().__init__(
            f"{operation} refused: not the leader of Lease {lease} ({problem})", transient=True
        )
        self.operation = operation


def lease_problem(
    *, leading: bool, now: float, last_renew: float, renew_deadline: float, lease_seconds: float
) -> str | None:
    """Why we may not write now, or None while the Lease is surely ours. Pure.

    `last_renew` is our monotonic time when the last successful renewal *started*
    (before the request left), so `last_renew + lease_seconds` is no later than
    the expiry anyone else can measure from the renewTime we wrote. We stop at
    the renew deadline, which comes before that expiry.
    """
    if not leading:
        return "not holding it"
    if now >= last_renew + lease_seconds:
        return f"it expired {now - last_renew - lease_seconds:.1f}s ago"
    if now - last_renew >= renew_deadline:
        return f"not renewed for {now - last_renew:.1f}s (renew deadline {renew_deadline:g}s)"
    return None


class LeaseError(LbManagerError):
    """Leader election cannot work (for example RBAC forbids the Lease); permanent."""

    def __init__(self, lease: str, problem: str) -> None:
        super().__init__(f"leader election on Lease {lease}: {problem}", transient=False)
        self.lease = lease
        self.problem = problem


@dataclass(frozen=True)
class LeaseConfig:
    """Where the Lease is, who we are, and the timing (seconds), as client-go names it."""

    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise LeaseError(self.name, "the identity must not be empty")
        if not 0 < self.retry_period * JITTER_FACTOR < self.renew_deadline < self.lease_duration:
            raise LeaseError(
                self.name,
                "timing must satisfy 0 < retry_period*1.2 < renew_deadline < lease_duration "
                f"(got {self.retry_period:g}, {self.renew_deadline:g}, {self.lease_duration:g})",
            )

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant part of a Lease's spec, plus its resourceVersion."""

    holder: str
    lease_duration_seconds: int
    acquire_time: str
    renew_time: str
    transitions: int
    resource_version: str = ""

    def content(self) -> tuple[str, int, str, str, int]:
        """What must change for the holder to count as alive (resourceVersion aside)."""
        return (
            self.holder,
            self.lease_duration_seconds,
            self.acquire_time,
            self.renew_time,
            self.transitions,
        )


def lease_record(obj: RawObject) -> LeaseRecord:
    """Read a Lease object; missing fields read as a free lease. Pure."""
    spec: dict[str, Any] = obj.get("spec") or {}
    meta: dict[str, Any] = obj.get("metadata") or {}
    duration = spec.get("leaseDurationSeconds")
    transitions = spec.get("leaseTransitions")
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=duration if isinstance(duration, int) else 0,
        acquire_time=str(spec.get("acquireTime") or ""),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=transitions if isinstance(transitions, int) else 0,
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def takeover_allowed(record: LeaseRecord, identity: str, observed_at: float, now: float) -> bool:
    """Whether `identity` may write the Lease now. Pure.

    Free and own leases may always be written. Another holder's lease may be
    taken only after it has not changed for its duration, measured from when
    *we* first saw its current content (`observed_at`, our monotonic clock).
    """
    if not record.holder or record.holder == identity:
        return True
    return observed_at + record.lease_duration_seconds <= now


def lease_spec(config: LeaseConfig, previous: LeaseRecord | None, now: datetime) -> dict[str, Any]:
    """The spec that makes `config.identity` the holder (renewal or takeover). Pure."""
    stamp = micro_time(now)
    renewing = previous is not None and previous.holder == config.identity
    return {
        "holderIdentity": config.identity,
        "leaseDurationSeconds": max(1, math.ceil(config.lease_duration)),
        "acquireTime": previous.acquire_time if renewing and previous else stamp,
        "renewTime": stamp,
        "leaseTransitions": (
            previous.transitions
            if renewing and previous
            else (previous.transitions + 1 if previous else 0)
        ),
    }


def released_spec(previous: LeaseRecord, now: datetime) -> dict[str, Any]:
    """The spec client-go writes on release: no holder, shortest duration. Pure."""
    stamp = micro_time(now)
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": RELEASED_DURATION_SECONDS,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": previous.transitions,
    }


class LeaderElector:
    """Campaigns for one Lease and runs the leader's work only while it holds it."""

    def __init__(
        self,
        rest: KubeRest,
        config: LeaseConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        on_change: Callable[[bool], None] | None = None,
        release_on_exit: bool = True,
    ) -> None:
        self.rest = rest
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.on_change = on_change
        # client-go's ReleaseOnCancel; False leaves the Lease to expire (as a crash would).
        self.release_on_exit = release_on_exit
        self._path = lease_path(config.namespace, config.name)
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._leading = False
        self._last_renew = -math.inf
        self.leader_since: float | None = None

    # --- state -------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while we hold the Lease and renewed it within the renew deadline.

        Checked by the writing work before each write: it turns False on its own
        when renewals stall, even before the campaign loop notices.
        """
        return self._problem() is None

    def _problem(self) -> str | None:
        held = self._observed.lease_duration_seconds if self._observed else 0
        seconds = min(self.config.lease_duration, held) if held else self.config.lease_duration
        return lease_problem(
            leading=self._leading,
            now=self.clock(),
            last_renew=self._last_renew,
            renew_deadline=self.config.renew_deadline,
            lease_seconds=seconds,
        )

    def fence(self, operation: str) -> None:
        """Raise `NotLeader` unless the Lease is surely ours now (call just before a write)."""
        problem = self._problem()
        if problem is not None:
            raise NotLeader(self.config.where, operation, problem)

    @property
    def observed_holder(self) -> str:
        """The holder we last saw in the Lease ("" when free or never read)."""
        return self._observed.holder if self._observed else ""

    def _observe(self, record: LeaseRecord, now: float) -> None:
        if self._observed is None or record.content() != self._observed.content():
            self._observed_at = now
        self._observed = record

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        self.leader_since = self.clock() if leading else None
        log.info(
            "leadership changed",
            extra={"lease": self.config.where, "identity": self.config.identity, "leader": leading},
        )
        if self.on_change is not None:
            self.on_change(leading)

    # --- one attempt -------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One attempt to take or renew the Lease; True when we hold it afterwards.

        Transient API failures count as a failed attempt; a refusal (RBAC, bad
        request) raises `LeaseError`.
        """
        started = self.clock()
        try:
            held = await asyncio.to_thread(self._attempt, started)
        except KubernetesRejected as e:
            raise LeaseError(self.config.where, e.message) from e
        except LbManagerError as e:
            log.warning("lease attempt failed", extra={"lease": self.config.where, "error": str(e)})
            held = False
        if held:
            self._last_renew = started
        return held

    def _attempt(self, started: float) -> bool:
        obj = self.rest.get(self._path)
        if obj is None:
            body: RawObject = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": lease_spec(self.config, None, self.wall_clock()),
            }
            try:
                created = self.rest.create(lease_path(self.config.namespace), body)
            except KubernetesConflict:
                return False  # another candidate created it first
            self._observe(lease_record(created), self.clock())
            return True
        record = lease_record(obj)
        self._observe(record, self.clock())
        if not takeover_allowed(record, self.config.identity, self._observed_at, self.clock()):
            return False
        spec = lease_spec(self.config, record, self.wall_clock())
        obj["spec"] = {**(obj.get("spec") or {}), **spec}
        try:
            updated = self.rest.replace(self._path, obj)
        except KubernetesConflict:
            return False  # someone wrote in between: decide again from a fresh read
        self._observe(lease_record(updated), self.clock())
        if record.holder != self.config.identity:
            log.info(
                "took over lease",
                extra={"lease": self.config.where, "from": record.holder or "(free)"},
            )
        return True

    async def release(self) -> bool:
        """Give the Lease up if we hold it, so a successor need not wait; True if released."""
        was_leading = self._leading
        self._set_leading(False)
        if not was_leading:
            return False
        try:
            return await asyncio.to_thread(self._release)
        except LbManagerError as e:
            log.warning("lease release failed", extra={"lease": self.config.where, "error": str(e)})
            return False

    def _release(self) -> bool:
        obj = self.rest.get(self._path)
        if obj is None:
            return False
        record = lease_record(obj)
        if record.holder != self.config.identity:
            return False
        obj["spec"] = {**(obj.get("spec") or {}), **released_spec(record, self.wall_clock())}
        try:
            self.rest.replace(self._path, obj)
        except KubernetesConflict:
            return False
        return True

    # --- the campaign ------------------------------------------------------

    def _acquire_wait(self) -> float:
        return self.config.retry_period * (1 + self.rng.random() * JITTER_FACTOR)

    async def _acquire(self) -> None:
        # Polling is the protocol: nothing notifies a candidate when a Lease expires.
        while True:
            if await self.try_acquire_or_renew():
                break
            await asyncio.sleep(self._acquire_wait())
        self._set_leading(True)

    async def _keep(self, work: asyncio.Task[None]) -> bool:
        """Renew until the work ends (True) or a renewal misses its deadline (False)."""
        while True:
            done, _ = await asyncio.wait({work}, timeout=self.config.retry_period)
            if done:
                return True
            deadline = self._last_renew + self.config.renew_deadline
            while not await self.try_acquire_or_renew():
                remaining = deadline - self.clock()
                if remaining <= 0:
                    log.warning(
                        "lost leadership: could not renew within the deadline",
                        extra={"lease": self.config.where, "holder": self.observed_holder},
                    )
                    return False
                await asyncio.sleep(min(self.config.retry_period, remaining))

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; run `lead()` in a task while leading, cancel it on loss.

        Returns when `lead()` returns (after releasing the Lease); re-raises what
        `lead()` raises. Cancel `run` for a graceful shutdown: the work is
        cancelled first, then the Lease is released.
        """
        try:
            while True:
                await self._acquire()
                work: asyncio.Task[None] = asyncio.ensure_future(lead())
                try:
                    finished = await self._keep(work)
                finally:
                    if not work.done():
                        work.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
                if finished:
                    return
                self._set_leading(False)
        finally:
            if self.release_on_exit:
                await self.release()
            else:
                self._set_leading(False)
