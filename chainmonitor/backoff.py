"""Reconnect delays: jittered exponential backoff that tests can drive deterministically.

Many validators restart their nodes at the same moment (an upgrade height), so
clients must not reconnect in lockstep: each delay is drawn from the upper part
of an exponentially growing window. The window resets once a connection has
stayed healthy for a while, so one flap after days of uptime costs a short wait.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Backoff(Protocol):
    """What the stream needs from a backoff policy."""

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt (grows with consecutive failures)."""
        ...

    def reset(self) -> None:
        """Forget past failures (called after a healthy period)."""
        ...


@dataclass
class JitteredBackoff:
    """delay_n = uniform((1 - jitter) * w, w) with w = min(maximum, initial * factor**n)."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    rng: Callable[[], float] = field(default=random.random, repr=False)
    failures: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum) or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("need 0 < initial <= maximum, factor >= 1, 0 <= jitter <= 1")

    def window(self, failures: int) -> float:
        # Cap the exponent so a long outage cannot overflow the float.
        return min(self.maximum, self.initial * self.factor ** min(failures, 64))

    def next_delay(self) -> float:
        w = self.window(self.failures)
        self.failures += 1
        return w * (1 - self.jitter * self.rng())

    def reset(self) -> None:
        self.failures = 0
