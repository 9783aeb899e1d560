"""Writes the peers ConfigMaps: creates, updates only differences, deletes only ours.

What a ConfigMap holds is decided in `discovery.peers_configmap` (pure); this
module reads and writes through `lbmanager.kube.KubeRest` in a worker thread.
Its errors come out as `KubernetesWriteError`, transient or not; a ConfigMap
with our name that is not ours is `NotOurs` and is never changed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from discovery.errors import KubernetesWriteError
from discovery.peers_configmap import (
    CHAIN_ID_ANNOTATION,
    COMPONENT_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PEERS_COMPONENT,
    PeersConfigMap,
    configmap_update,
    is_managed,
)
from lbmanager.errors import LbManagerError
from lbmanager.kube import KubeRest, retry_on_conflict
from lbmanager.paths import configmaps_path


class NotOurs(KubernetesWriteError):
    """An object with the name we need exists and is not managed by us (permanent)."""

    def __init__(self, what: str) -> None:
        super().__init__(
            what, f"exists without label {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}", transient=False
        )


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    ABSENT = "absent"


@dataclass(frozen=True)
class ManagedConfigMap:
    """A peers ConfigMap that exists and is ours."""

    namespace: str
    name: str
    chain_id: str
    uid: str


class PeersConfigMapControl:
    """Creates, updates and deletes peers ConfigMaps; writes only differences, counts writes."""

    def __init__(self, rest: KubeRest) -> None:
        self.rest = rest
        self.writes: Counter[str] = Counter()

    async def apply(self, desired: PeersConfigMap) -> Outcome:
        """Make the ConfigMap match `desired`; UNCHANGED writes nothing."""
        return await asyncio.to_thread(self._apply, desired)

    def _apply(self, desired: PeersConfigMap) -> Outcome:
        what = f"ConfigMap {desired.namespace}/{desired.name}"
        path = configmaps_path(desired.namespace, desired.name)

        def attempt(_: int) -> Outcome:
            existing = self.rest.get(path)
            if existing is None:
                self.rest.create(configmaps_path(desired.namespace), desired.to_object())
                self.writes["create"] += 1
                return Outcome.CREATED
            if not is_managed(existing):
                raise NotOurs(what)
            update = configmap_update(existing, desired)
            if update is None:
                return Outcome.UNCHANGED
            self.rest.replace(path, update)
            self.writes["update"] += 1
            return Outcome.UPDATED

        try:
            return retry_on_conflict(what, attempt)
        except LbManagerError as e:
            raise KubernetesWriteError.of(what, e) from e

    async def delete(self, namespace: str, name: str) -> Outcome:
        """Delete one of our ConfigMaps; a foreign one is refused, a missing one is ABSENT."""
        return await asyncio.to_thread(self._delete, namespace, name)

    def _delete(self, namespace: str, name: str) -> Outcome:
        what = f"ConfigMap {namespace}/{name}"
        path = configmaps_path(namespace, name)
        try:
            existing = self.rest.get(path)
            if existing is None:
                return Outcome.ABSENT
            if not is_managed(existing):
                raise NotOurs(what)
            meta = existing.get("metadata") or {}
            self.rest.delete(
                path, uid=meta.get("uid"), resource_version=meta.get("resourceVersion")
            )
        except LbManagerError as e:
            raise KubernetesWriteError.of(what, e) from e
        self.writes["delete"] += 1
        return Outcome.DELETED

    async def list_managed(self, namespace: str | None = None) -> list[ManagedConfigMap]:
        """Our peers ConfigMaps in `namespace` (None: every namespace), sorted."""
        return await asyncio.to_thread(self._list_managed, namespace)

    def _list_managed(self, namespace: str | None) -> list[ManagedConfigMap]:
        selector = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{COMPONENT_LABEL}={PEERS_COMPONENT}"
        try:
            items, _ = self.rest.list(configmaps_path(namespace), label_selector=selector)
        except LbManagerError as e:
            raise KubernetesWriteError.of(
                f"list ConfigMaps in {namespace or 'every namespace'}", e
            ) from e
        out = []
        for obj in items:
            meta = obj.get("metadata") or {}
            out.append(
                ManagedConfigMap(
                    namespace=str(meta.get("namespace", "")),
                    name=str(meta.get("name", "")),
                    chain_id=str((meta.get("annotations") or {}).get(CHAIN_ID_ANNOTATION, "")),
                    uid=str(meta.get("uid", "")),
                )
            )
        return sorted(out, key=lambda m: (m.namespace, m.name))
