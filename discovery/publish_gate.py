"""When our own endpoint may be published on chain: hold-down, minimum interval, fee cap.

Every publication is an edit-validator transaction the operator pays for.
A LoadBalancer address that flaps must not cost a transaction per flap, so
`publish_refusal` (pure) lets a publication through only when

- the address has stayed the same for `hold_down` seconds (`address_since`,
  our monotonic clock, restarts whenever the LoadBalancer's ingress changes),
- `min_interval` seconds have passed since our last publication.

The third limit, the maximum fee, is checked where the fee is known (after
simulating the transaction, in `chainmonitor.publish`) and reported with the
reason `max_fee`. `RefusalLog` says once why publishing waits, not on every
wake-up: one log line and one count per change of the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

HOLD_DOWN: Final = "address_hold_down"
MIN_INTERVAL: Final = "min_interval"
MAX_FEE: Final = "max_fee"
REASONS: Final = (HOLD_DOWN, MIN_INTERVAL, MAX_FEE)


@dataclass(frozen=True)
class Refusal:
    """Why not now, and when to look again (None: not by itself, e.g. a fee cap)."""

    reason: str
    detail: str
    retry_at: float | None = None


def publish_refusal(
    *,
    now: float,
    address_since: float,
    last_published_at: float | None,
    hold_down: float,
    min_interval: float,
) -> Refusal | None:
    """None when a needed publication may be sent now; else why not and until when. Pure."""
    stable_at = address_since + hold_down
    if now < stable_at:
        return Refusal(
            HOLD_DOWN,
            f"the LoadBalancer address must stay unchanged for {hold_down:g}s "
            f"({stable_at - now:.0f}s to go)",
            stable_at,
        )
    if last_published_at is not None:
        allowed_at = last_published_at + min_interval
        if now < allowed_at:
            return Refusal(
                MIN_INTERVAL,
                f"the last publication was {now - last_published_at:.0f}s ago; at most one "
                f"every {min_interval:g}s ({allowed_at - now:.0f}s to go)",
                allowed_at,
            )
    return None


@dataclass
class RefusalLog:
    """The refusal last reported, so a refusal is logged and counted once per change."""

    current: str | None = None

    def changed(self, refusal: Refusal | None) -> bool:
        """Record `refusal` (None: publishing is not refused); True when it differs."""
        reason = refusal.reason if refusal is not None else None
        if reason == self.current:
            return False
        self.current = reason
        return refusal is not None
