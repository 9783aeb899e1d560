"""Applies `restart` mode for the service: rolls each chain's workloads, reports, wakes.

The per-key decision is `discovery.restarts.restart_step` (pure); `RestartApplier`
keeps its memory per (namespace, chain ID) and makes the rolls;
`WorkloadRestartApplier` wraps it for a whole chain, turns each result into
one log line and metric per event, and wakes the loop when the earliest
hold-down ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from discovery.apply.effects import Effects, Wake
from discovery.desired import DesiredChain
from discovery.errors import KubernetesWriteError
from discovery.faults import Part
from discovery.notify import RestartNotifier
from discovery.peers_configmap import PeersConfigMap
from discovery.restarts import (
    Action,
    RestartKey,
    RestartMemory,
    RestartResult,
    after_restart,
    restart_step,
)

log = logging.getLogger("discovery.service")


@dataclass
class RestartApplier:
    """Rolls consumer workloads for new peers: after the ConfigMap, retried, held down."""

    notifier: RestartNotifier
    hold_down: float
    memory: dict[RestartKey, RestartMemory] = field(default_factory=dict)
    generation: int = 0

    def reset(self) -> None:
        """Forget everything (leadership changed: another leader may have rolled since)."""
        self.memory.clear()
        self.generation += 1

    def retain(self, keys: Iterable[RestartKey]) -> None:
        """Forget keys no longer wanted (chains withdrawn): the memory stays bounded."""
        keep = set(keys)
        for key in [k for k in self.memory if k not in keep]:
            del self.memory[key]

    async def apply(
        self,
        chain_id: str,
        namespace: str,
        wanted: str,
        *,
        configmap_written: bool,
        now: float,
        extra_labels: dict[str, str] | None = None,
    ) -> RestartResult:
        key = (namespace, chain_id)
        step = restart_step(
            self.memory.get(key, RestartMemory()),
            wanted,
            configmap_written=configmap_written,
            now=now,
            hold_down=self.hold_down,
        )
        self.memory[key] = step.memory
        result = RestartResult(chain_id, namespace, step)
        if step.action is not Action.RESTART:
            return result
        generation = self.generation
        try:
            report = await self.notifier.notify(
                chain_id, wanted, namespace=namespace, extra_labels=extra_labels
            )
        except KubernetesWriteError as e:
            result.error = e
            return result
        result.report = report
        # Leadership may have changed while the roll ran (reset): remember nothing then.
        if generation == self.generation and key in self.memory:
            self.memory[key] = after_restart(self.memory[key], wanted, report, now)
        return result


class WorkloadRestartApplier:
    """Rolls consumer workloads for new peers, once their ConfigMap is written."""

    def __init__(
        self,
        notifier: RestartNotifier,
        hold_down: float,
        effects: Effects,
        extra_labels: Mapping[str, str],
    ) -> None:
        self.keys = RestartApplier(notifier, hold_down)
        self.effects = effects
        self.extra_labels = dict(extra_labels)
        # When the earliest hold-down ends, and the wake-up set for it.
        self.hold_down_wake: tuple[float, asyncio.TimerHandle] | None = None

    def forget(self) -> None:
        """Leadership changed: forget every key and the pending wake-up."""
        if self.hold_down_wake is not None:
            self.hold_down_wake[1].cancel()
        self.hold_down_wake = None
        self.keys.reset()

    def retain(self, keys: Iterable[RestartKey]) -> None:
        """Keep memory only for (namespace, chain ID) still in restart mode."""
        self.keys.retain(keys)

    async def apply(self, chain: DesiredChain, written: Callable[[PeersConfigMap], bool]) -> bool:
        """Roll the chain's consumer workloads for its peers: only once the ConfigMap with
        them is `written`, retried until made, at most once per hold-down."""
        clean = True
        for cm in chain.configmaps:
            before = sum(self.keys.notifier.writes.values())
            result = await self.keys.apply(
                chain.chain_id,
                cm.namespace,
                cm.peers_hash,
                configmap_written=written(cm),
                now=self.effects.clock(),
                extra_labels=self.extra_labels,
            )
            self.effects.count("workloads", sum(self.keys.notifier.writes.values()) - before)
            self._report(result, cm.peers_hash)
            clean = result.clean and clean
        return clean

    def _report(self, result: RestartResult, peers_hash: str) -> None:
        chain_id, step = result.chain_id, result.step
        ops = self.effects.metrics.ops
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
                    "due_in": "" if step.due is None else f"{step.due - self.effects.clock():.1f}",
                },
            )
        if step.due is not None:
            self._wake_at(step.due)
        if result.error is not None:
            self.effects.fault(
                Part.KUBERNETES, result.error, f"workloads {result.namespace}/{chain_id}"
            )
            log.warning(
                "consumer restart not requested",
                extra={"chain_id": chain_id, "error": str(result.error)},
            )
            ops.kubernetes_write_errors.labels(resource="workloads").inc()
            self.effects.notified(chain_id, "restart", "failed")
        report = result.report
        if report is None:
            return
        self.effects.notified(chain_id, "restart", "done", len(report.restarted))
        self.effects.notified(chain_id, "restart", "refused", len(report.refused))
        self.effects.notified(chain_id, "restart", "failed", len(report.failed))
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
        if self.hold_down_wake is not None:
            at, handle = self.hold_down_wake
            if at <= due and not handle.cancelled():
                return
            handle.cancel()

        def fire() -> None:
            self.hold_down_wake = None
            self.effects.wake(Wake.HOLD_DOWN)

        delay = self.effects.delay_until(due)
        self.hold_down_wake = (due, asyncio.get_running_loop().call_later(delay, fire))
