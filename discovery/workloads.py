"""Consumer workloads (Deployments, StatefulSets): which run a chain, which may be rolled. Pure.

For chains in `restart` mode the peers hash goes on the pod template of the
consumer's Deployment or StatefulSet so Kubernetes rolls it
(`discovery.notify.RestartNotifier`). A validator's consumer node must never run
twice (two signers double-sign), so a Deployment whose rollout could start the
new pod before the old one stops is refused, not restarted.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from discovery.peers_configmap import PEERS_HASH_ANNOTATION
from lbmanager.consumer_pods import POD_KEY_ANNOTATION, POD_KEY_HASH_LABEL
from lbmanager.naming import key_hash
from lbmanager.types import RawObject

WORKLOAD_KINDS: tuple[str, ...] = ("Deployment", "StatefulSet")


@dataclass(frozen=True)
class WorkloadRef:
    kind: str  # "Deployment" or "StatefulSet"
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def runs_chain(obj: RawObject, chain_id: str, extra_labels: Mapping[str, str]) -> bool:
    """Whether a workload's pod template carries the consumer convention for `chain_id`. Pure."""
    template_meta = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    labels = template_meta.get("labels") or {}
    annotations = template_meta.get("annotations") or {}
    return (
        labels.get(POD_KEY_HASH_LABEL) == key_hash(chain_id)
        and annotations.get(POD_KEY_ANNOTATION) == chain_id
        and all(labels.get(k) == v for k, v in extra_labels.items())
    )


def _surge_is_zero(value: Any) -> bool:
    if isinstance(value, int):
        return value == 0
    return isinstance(value, str) and value.strip() in ("0", "0%")


def out_of_scope(ref: WorkloadRef, scope: frozenset[tuple[str, str, str]] | None) -> str | None:
    """Why `ref` may not be rolled under the restart_workloads scope; None when it may. Pure."""
    if scope is None or (ref.kind, ref.namespace, ref.name) in scope:
        return None
    return (
        "it runs the chain but is not named in restart_workloads (chart value "
        "consumers.restartWorkloads), so the service may not update it; add it there"
    )


def restart_refusal(kind: str, obj: RawObject) -> str | None:
    """Why rolling this workload would be unsafe or would do nothing; None when fine. Pure."""
    spec = obj.get("spec") or {}
    if kind == "Deployment":
        strategy = spec.get("strategy") or {}
        if strategy.get("type", "RollingUpdate") == "Recreate":
            return None
        surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
        if _surge_is_zero(surge):
            return None
        return (
            f"its RollingUpdate strategy (maxSurge {surge}) would run the new consumer node "
            "beside the old one, and two copies of a validator double-sign; use strategy "
            "Recreate or maxSurge 0"
        )
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return "its updateStrategy is OnDelete, so a template change would not restart the pod"
    return None


def with_peers_hash(obj: RawObject, peers_hash: str) -> RawObject | None:
    """A copy of the workload with the peers-hash on its pod template; None if already set. Pure."""
    template = (obj.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if annotations.get(PEERS_HASH_ANNOTATION) == peers_hash:
        return None
    updated = copy.deepcopy(obj)
    meta = updated.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
    meta.setdefault("annotations", {})[PEERS_HASH_ANNOTATION] = peers_hash
    return updated


@dataclass(frozen=True)
class NotifyReport:
    """What a restart notification did, per workload."""

    restarted: tuple[WorkloadRef, ...] = ()
    unchanged: tuple[WorkloadRef, ...] = ()
    refused: tuple[tuple[WorkloadRef, str], ...] = ()
    failed: tuple[tuple[WorkloadRef, str], ...] = field(default=())

    @property
    def found(self) -> int:
        return len(self.restarted) + len(self.unchanged) + len(self.refused) + len(self.failed)
