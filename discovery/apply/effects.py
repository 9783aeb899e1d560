"""What every applier may do besides its own I/O: count, record faults, wake the loop."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from discovery.faults import FaultLedger, Part, fault_of
from discovery.metrics import ServiceMetrics

log = logging.getLogger("discovery.service")


class Wake(enum.StrEnum):
    """Why the loop runs a round. The service's triggers only wake the loop."""

    START = "start"
    CHAIN = "chain"  # a new provider snapshot
    PODS = "pods"  # a consumer pod changed
    TIMER = "timer"  # the resync interval passed
    LEADERSHIP = "leadership"  # gained or lost
    RETRY = "retry"  # a failed round's backoff ended
    HOLD_DOWN = "hold-down"  # a restart hold-down ended
    NODE_RESOURCE = "node-resource"  # an operator node resource changed
    INGRESS = "ingress"  # our LoadBalancer's address changed (or publishing retries)
    PUBLISH = "publish"  # a publishing refusal's wait ended

    @property
    def full(self) -> bool:
        """Whether this reason re-applies everything, not only what changed."""
        return self in _FULL


_FULL = frozenset({Wake.START, Wake.TIMER, Wake.LEADERSHIP, Wake.RETRY})

_WAKE_LATE = 0.05


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


class Effects:
    """The service's shared reporting, handed to every applier."""

    def __init__(
        self,
        metrics: ServiceMetrics,
        stats: ServiceStats,
        faults: FaultLedger,
        clock: Callable[[], float],
        wake: Callable[[Wake], None],
    ) -> None:
        self.metrics = metrics
        self.stats = stats
        self.faults = faults
        self.clock = clock
        self.wake = wake

    def fault(self, part: Part, error: BaseException, key: str = "") -> None:
        """Count a fault; log a permanent one once (until it is cleared by a success)."""
        fault = fault_of(error)
        self.metrics.ops.faults.labels(part=part.value, kind=fault.kind).inc()
        if self.faults.record(part, fault, key):
            log.error(
                "part failed permanently; needs a fix",
                extra={"part": part.value, "what": key, "error": fault.reason},
            )

    def count(self, resource: str, writes: int, verb: str = "write") -> None:
        """Writes made to `resource` (stats and the writes metric)."""
        if writes:
            self.stats.writes[resource] += writes
            self.metrics.count_writes(resource, verb, writes)

    def notified(self, chain_id: str, mode: str, outcome: str, count: int = 1) -> None:
        """Consumer node notifications by mode and outcome."""
        if count:
            self.metrics.ops.notifications.labels(
                chain_id=chain_id, mode=mode, outcome=outcome
            ).inc(count)

    def wake_later(self, delay: float, reason: Wake) -> asyncio.TimerHandle:
        """Wake the loop after `delay` seconds (cancel the handle to call it off)."""
        return asyncio.get_running_loop().call_later(max(0.0, delay), self.wake, reason)

    def delay_until(self, due: float) -> float:
        """Seconds until the monotonic time `due`, a little late rather than early: the
        decision that set `due` compares with the same clock when the loop wakes."""
        return max(0.0, due - self.clock()) + _WAKE_LATE
