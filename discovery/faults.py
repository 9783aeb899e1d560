"""What failed, where, and for how long: the service's fault bookkeeping, and what /readyz says.

Each I/O layer classifies its own failures (`chainmonitor.faults` for provider,
consumer-node and signing transports, `lbmanager.kube` for the Kubernetes API)
into errors that say whether a retry can help. The service counts every fault
by part and kind (`ics_discovery_faults_total{part,kind}`), retries transient
ones with backoff, and remembers the permanent ones still standing: while a
part has one, /readyz answers 503 and names it, and the error is logged once,
not on every retry. A later success of the same thing clears it. Everything
here is pure or plain memory; the service does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from chainmonitor.faults import Fault, classify
from discovery.errors import DiscoveryError
from lbmanager.errors import LbManagerError

_REASON_LIMIT: Final = 300


class Part(StrEnum):
    """The parts of the service that talk to something outside it (the metric's `part`)."""

    PROVIDER_STREAM = "provider_stream"
    PROVIDER_QUERIES = "provider_queries"
    KUBERNETES = "kubernetes"
    CONSUMER_NODES = "consumer_nodes"
    PUBLISHING = "publishing"


PARTS: Final = tuple(Part)
KINDS: Final = ("transient", "permanent")


def fault_of(error: BaseException) -> Fault:
    """The fault an error of any layer stands for; an unknown one counts as permanent."""
    if isinstance(error, DiscoveryError | LbManagerError):
        return Fault(bool(getattr(error, "transient", False)), str(error)[:_REASON_LIMIT])
    fault = classify(error)
    if fault is not None:
        return fault
    return Fault(False, f"{type(error).__name__}: {error}"[:_REASON_LIMIT])


@dataclass
class FaultLedger:
    """Permanent faults still standing, per part and per thing (a pod, a ConfigMap, "")."""

    _standing: dict[Part, dict[str, str]] = field(default_factory=dict)

    def record(self, part: Part, fault: Fault, key: str = "") -> bool:
        """Note a fault; True when it is a permanent one not standing with that reason already.

        A transient fault leaves a standing permanent one of the same thing in place:
        only a success proves it fixed.
        """
        if fault.transient:
            return False
        standing = self._standing.setdefault(part, {})
        new = standing.get(key) != fault.reason
        standing[key] = fault.reason
        return new

    def clear(self, part: Part, key: str | None = None) -> bool:
        """The thing (or, with no key, the whole part) works again; True if a fault stood."""
        standing = self._standing.get(part)
        if not standing:
            return False
        if key is None:
            standing.clear()
            return True
        return standing.pop(key, None) is not None

    def keep_only(self, part: Part, keys: set[str]) -> None:
        """Forget the faults of things that no longer exist (a deleted pod, a withdrawn chain)."""
        standing = self._standing.get(part)
        if standing:
            for key in set(standing) - keys:
                del standing[key]

    def standing(self) -> dict[Part, str]:
        """Per part with a permanent fault standing: the reason (of its first thing, sorted)."""
        out: dict[Part, str] = {}
        for part in PARTS:
            faults = self._standing.get(part)
            if faults:
                key = sorted(faults)[0]
                more = f" (and {len(faults) - 1} more)" if len(faults) > 1 else ""
                where = f"{key}: " if key else ""
                out[part] = f"{where}{faults[key]}{more}"
        return out


def readiness(
    *, computed: bool, stopping: bool, standing: Mapping[Part, str], height: int
) -> tuple[bool, str]:
    """Whether /readyz says ready, and its one line. Pure."""
    if not computed:
        return False, "no state computed yet"
    if stopping:
        return False, "shutting down"
    if standing:
        failed = "; ".join(
            f"{part.value} failed permanently: {why}" for part, why in standing.items()
        )
        return False, failed.replace("\n", " ")
    return True, f"state at height {height}"


# Publishing our endpoint: the pace of retries after failures.
PUBLISH_TRANSIENT_FIRST: Final = 60.0
# Below the alerts' failureWindow (5m), so a failure that persists shows in every window.
PUBLISH_TRANSIENT_MAX: Final = 240.0
PUBLISH_PERMANENT_FIRST: Final = 600.0
PUBLISH_PERMANENT_MAX: Final = 3600.0


def publish_retry_delay(failures: int, *, transient: bool, resync_interval: float) -> float:
    """Seconds before publishing is tried again after `failures` (>= 1) failures in a row. Pure.

    Transient failures start at the resync interval (at most a minute) and double
    to four minutes; a permanent one (a signer cosmpy cannot use, a missing grant)
    needs a fix, so it is tried again only every ten minutes, doubling to an hour,
    instead of on every wake-up.
    """
    n = max(0, min(failures, 32) - 1)
    if transient:
        first = min(PUBLISH_TRANSIENT_FIRST, resync_interval)
        return float(min(PUBLISH_TRANSIENT_MAX, first * 2.0**n))
    return float(min(PUBLISH_PERMANENT_MAX, PUBLISH_PERMANENT_FIRST * 2.0**n))
