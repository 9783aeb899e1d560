"""Restart mode: when to roll a chain's consumer workloads, and the applier that does it.

A restart is what a consumer node pays for new peers: its pods are replaced.
So the decision (`restart_step`, pure) makes three promises:

- **Only after the ConfigMap.** A workload is rolled for a peers hash only
  once the peers ConfigMap with that hash has been written (the new pod must
  read the new peers). A restart waiting for its ConfigMap is made as soon as a
  later round writes it.
- **Until it is made.** The hash is remembered as made only when every matching
  workload carries it; a failure leaves it pending, and every round tries again.
- **Hold-down.** After a restart of a chain's workloads in one namespace, they
  are not rolled again for `hold_down` seconds. Peers that change within that
  time are written to the ConfigMap at once, and the workloads are rolled once
  when the hold-down ends, with the latest peers. A validator that flips its
  published address every few blocks thus costs every other validator at most
  one restart per hold-down.

The decisions here are pure. `discovery.apply.restarts.RestartApplier` owns
this memory (per leader: `reset()` on every leadership change) and the I/O
through `RestartNotifier`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final

from discovery.errors import KubernetesWriteError
from discovery.workloads import NotifyReport

# Keys: (namespace, chain ID): the chain's consumer workloads in one namespace.
RestartKey = tuple[str, str]

CONFIGMAP_NOT_WRITTEN: Final = "configmap_not_written"
HOLD_DOWN: Final = "hold_down"


class Action(enum.StrEnum):
    NOTHING = "nothing"  # the workloads already carry the hash
    WAIT = "wait"  # not now: `reason` says why, `due` (if any) when to look again
    RESTART = "restart"


@dataclass(frozen=True)
class RestartMemory:
    """What the current leader knows about one key."""

    made: str | None = None  # peers hash every workload carries (None: unknown)
    made_at: float | None = None  # monotonic time of the last roll this leader made
    pending: str | None = None  # hash wanted and not made yet
    waiting: str = ""  # why `pending` waits ("" when it does not)


@dataclass(frozen=True)
class RestartStep:
    """The decision for one key in one round."""

    action: Action
    memory: RestartMemory  # the memory with the new wish recorded
    reason: str = ""
    due: float | None = None
    coalesced: bool = False  # a pending, never-made hash was replaced by this one
    newly_waiting: bool = False  # this wait (hash, reason) was not reported before


def restart_step(
    memory: RestartMemory,
    wanted: str,
    *,
    configmap_written: bool,
    now: float,
    hold_down: float,
) -> RestartStep:
    """What to do for one key now that its peers hash is `wanted`. Pure."""
    if memory.made == wanted:
        return RestartStep(Action.NOTHING, replace(memory, pending=None, waiting=""))
    coalesced = memory.pending is not None and memory.pending != wanted
    if not configmap_written:
        reason, due = CONFIGMAP_NOT_WRITTEN, None
    elif memory.made_at is not None and now < memory.made_at + hold_down:
        reason, due = HOLD_DOWN, memory.made_at + hold_down
    else:
        return RestartStep(
            Action.RESTART, replace(memory, pending=wanted, waiting=""), coalesced=coalesced
        )
    fresh = memory.pending != wanted or memory.waiting != reason
    return RestartStep(
        Action.WAIT,
        replace(memory, pending=wanted, waiting=reason),
        reason=reason,
        due=due,
        coalesced=coalesced,
        newly_waiting=fresh,
    )


def after_restart(
    memory: RestartMemory, wanted: str, report: NotifyReport, now: float
) -> RestartMemory:
    """The memory once a roll for `wanted` was attempted with `report` as the result. Pure.

    Made only when no workload failed; the hold-down starts when a workload
    was actually rolled (one that already carried the hash cost nothing).
    """
    made_at = now if report.restarted else memory.made_at
    if report.failed:
        return replace(memory, made_at=made_at)
    return RestartMemory(made=wanted, made_at=made_at)


@dataclass
class RestartResult:
    """What one `apply` did for one key (for logs and metrics)."""

    chain_id: str
    namespace: str
    step: RestartStep
    report: NotifyReport | None = None
    error: KubernetesWriteError | None = None

    @property
    def clean(self) -> bool:
        """Nothing left to retry soon (a hold-down wait is scheduled, not a failure)."""
        if self.error is not None:
            return False
        if self.step.action is Action.WAIT:
            return self.step.reason == HOLD_DOWN
        return self.report is None or not self.report.failed
