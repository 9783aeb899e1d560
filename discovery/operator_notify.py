"""Writing a chain's peers into the operator's node resource (the thin I/O shell).

For a chain in `cosmos-operator` or `cosmopilot` notify mode the service finds
the node resources that run the chain in the served namespaces (by chain ID,
or the one named in `notify_resources`), computes each one's merge patch with
`discovery.operators.plan_peers` and sends it when there is one. The patch
names the resourceVersion it was computed from: when another writer (the
operator updating its own fields, a person editing) got there first, the API
answers with a conflict and the resource is read again and planned anew.
When no resource is found, nothing is written: the report says so, and the
service shows it in `status` and counts it. The operator then renders the
peers into its nodes' `config.toml` and rolls its pods its own way.
Kubernetes I/O runs in a worker thread through `lbmanager.kube.KubeRest`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from discovery.errors import DiscoveryError
from discovery.operators import (
    TARGET_KINDS,
    ResourceKind,
    candidates,
    kind_by_name,
    plan_peers,
    resource_name,
)
from lbmanager.errors import (
    ConflictRetriesExhausted,
    KubernetesError,
    KubernetesNotFound,
    KubernetesUnavailable,
)
from lbmanager.kube import KubeRest, retry_on_conflict


class OperatorNotifyError(DiscoveryError):
    """A node resource could not be read or written; `transient` says whether to retry."""

    def __init__(self, what: str, problem: str, *, transient: bool) -> None:
        self.what = what
        self.problem = problem
        self.transient = transient  # type: ignore[misc]
        super().__init__(f"{what}: {problem}")


class ResourceOutcome(StrEnum):
    PATCHED = "patched"
    CURRENT = "current"
    FAILED = "failed"


@dataclass(frozen=True)
class ResourceResult:
    resource: str
    outcome: ResourceOutcome
    detail: str = ""


@dataclass(frozen=True)
class OperatorReport:
    """What one chain's notification found and did."""

    target: str
    results: tuple[ResourceResult, ...]
    # Why nothing was found ("" when a resource was).
    missing: str = ""

    @property
    def current(self) -> bool:
        """Every node resource found carries the peers now."""
        return bool(self.results) and all(
            r.outcome is not ResourceOutcome.FAILED for r in self.results
        )

    def resources(self) -> str:
        return ",".join(r.resource for r in self.results)


def parse_resource_ref(target: str, text: str) -> tuple[ResourceKind | None, str]:
    """`[Kind/]name` as (kind or None for any kind of the target, name)."""
    kind_text, sep, name = text.strip().rpartition("/")
    if not sep:
        return None, name
    kind = kind_by_name(target, kind_text)
    if kind is None:
        known = ", ".join(k.kind for k in TARGET_KINDS.get(target, ()))
        raise OperatorNotifyError(
            text, f"{target} has no kind {kind_text!r} (known: {known})", transient=False
        )
    return kind, name


class OperatorNotifier:
    """Puts peers into cosmos-operator and cosmopilot node resources."""

    def __init__(self, rest: KubeRest) -> None:
        self.rest = rest
        self.patches = 0

    async def notify(
        self,
        target: str,
        chain_id: str,
        entries: Sequence[str],
        namespaces: Sequence[str | None],
        named: str | None = None,
    ) -> OperatorReport:
        """Find the chain's node resources and write `entries` as our peers into each."""
        return await asyncio.to_thread(
            self._notify, target, chain_id, tuple(entries), tuple(namespaces), named
        )

    def _notify(
        self,
        target: str,
        chain_id: str,
        entries: tuple[str, ...],
        namespaces: tuple[str | None, ...],
        named: str | None,
    ) -> OperatorReport:
        found = self._find(target, chain_id, namespaces, named)
        if not found:
            kinds = "/".join(k.kind for k in TARGET_KINDS[target])
            where = ", ".join(n or "every namespace" for n in namespaces)
            what = f"named {named!r}" if named else f"runs chain {chain_id}"
            return OperatorReport(
                target, (), missing=f"no {kinds} that {what} in {where}: peers not written"
            )
        results = tuple(self.write(kind, obj, entries) for kind, obj in found)
        return OperatorReport(target, results)

    def _find(
        self,
        target: str,
        chain_id: str,
        namespaces: tuple[str | None, ...],
        named: str | None,
    ) -> list[tuple[ResourceKind, Mapping[str, Any]]]:
        kinds = TARGET_KINDS[target]
        only: ResourceKind | None = None
        name = ""
        if named:
            only, name = parse_resource_ref(target, named)
        out: list[tuple[ResourceKind, Mapping[str, Any]]] = []
        for kind in kinds:
            if only is not None and kind is not only:
                continue
            for namespace in namespaces:
                items = self._list(kind, namespace)
                if named:
                    # Named by the operator of the cluster: the chain ID must still match.
                    items = [o for o in items if (o.get("metadata") or {}).get("name") == name]
                out += [(kind, o) for o in candidates(kind, items, chain_id)]
        return out

    def _list(self, kind: ResourceKind, namespace: str | None) -> list[Mapping[str, Any]]:
        try:
            items, _ = self.rest.list(kind.path(namespace))
        except KubernetesNotFound:
            # The CRD is not installed (or not this version): nothing of this kind exists.
            return []
        except KubernetesError as e:
            raise OperatorNotifyError(
                f"listing {kind.plural}", e.message, transient=isinstance(e, KubernetesUnavailable)
            ) from e
        return list(items)

    def write(
        self, kind: ResourceKind, obj: Mapping[str, Any], entries: tuple[str, ...]
    ) -> ResourceResult:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        label = f"{kind.kind} {resource_name(obj)}"
        path = kind.path(namespace, name)

        def attempt(n: int) -> ResourceResult:
            # After a conflict the resource changed in between: re-read, re-decide.
            current = obj if n == 0 else self.rest.get(path)
            if current is None:
                return ResourceResult(label, ResourceOutcome.FAILED, "deleted while writing")
            try:
                plan = plan_peers(kind, current, entries)
            except DiscoveryError as e:
                return ResourceResult(label, ResourceOutcome.FAILED, str(e))
            if plan.patch is None:
                return ResourceResult(label, ResourceOutcome.CURRENT)
            self.rest.merge_patch(path, plan.patch)
            self.patches += 1
            return ResourceResult(label, ResourceOutcome.PATCHED, f"{len(plan.ours)} peers ours")

        try:
            return retry_on_conflict(label, attempt)
        except ConflictRetriesExhausted as e:
            return ResourceResult(
                label, ResourceOutcome.FAILED, f"still conflicting after {e.attempts} reads"
            )
        except KubernetesNotFound:
            return ResourceResult(label, ResourceOutcome.FAILED, "deleted while writing")
        except KubernetesError as e:
            return ResourceResult(label, ResourceOutcome.FAILED, e.message)
