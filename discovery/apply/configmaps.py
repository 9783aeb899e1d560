"""Applies the peers ConfigMaps: writes those that differ, deletes stale ones of ours."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from discovery.apply.effects import Effects
from discovery.configmap_control import Outcome, PeersConfigMapControl
from discovery.desired import DesiredCluster
from discovery.errors import KubernetesWriteError
from discovery.faults import Part
from discovery.peers_configmap import PeersConfigMap

log = logging.getLogger("discovery.service")

ConfigMapKey = tuple[str, str]  # (namespace, name)


class ConfigMapApplier:
    """Makes the peers ConfigMaps match the decision; remembers what this leader wrote."""

    def __init__(
        self,
        control: PeersConfigMapControl,
        effects: Effects,
        namespaces: Sequence[str | None],
        on_written: Callable[[int], None],
    ) -> None:
        self.control = control
        self.effects = effects
        # Where our ConfigMaps may be (None: every namespace), to find stale ones.
        self.namespaces = list(namespaces)
        # Called with the provider height whenever a ConfigMap was created or updated.
        self.on_written = on_written
        self.applied: dict[ConfigMapKey, PeersConfigMap] = {}
        # Per chain ID: why its ConfigMap could not be written (shown in status).
        self.problems: dict[str, str] = {}

    def forget(self) -> None:
        """Leadership changed: another leader may have written since."""
        self.applied.clear()
        self.problems = {}

    def written(self, cm: PeersConfigMap) -> bool:
        """Whether exactly this ConfigMap is known written (restarts wait for it)."""
        return self.applied.get((cm.namespace, cm.name)) == cm

    async def apply(self, desired: DesiredCluster, *, full: bool) -> bool:
        """Write what differs (everything when `full`); True when nothing needs a retry."""
        clean = True
        problems: dict[str, str] = {}
        wanted = {(cm.namespace, cm.name): cm for cm in desired.configmaps()}
        for key, cm in sorted(wanted.items()):
            if not full and self.applied.get(key) == cm:
                continue
            problem = await self._write(key, cm, desired.height)
            if problem is not None:
                clean = False
                problems[cm.chain_id] = problem
        self.problems = problems
        if full or set(wanted) != set(self.applied):
            clean = await self._remove_stale(desired, wanted) and clean
        return clean

    async def _write(self, key: ConfigMapKey, cm: PeersConfigMap, height: int) -> str | None:
        where = f"configmap {cm.namespace}/{cm.name}"
        before = Counter(self.control.writes)
        try:
            outcome = await self.control.apply(cm)
        except KubernetesWriteError as e:
            self.effects.metrics.ops.kubernetes_write_errors.labels(resource="configmaps").inc()
            self.effects.fault(Part.KUBERNETES, e, where)
            self.applied.pop(key, None)
            if self.problems.get(cm.chain_id) != str(e):
                log.warning(
                    "peers ConfigMap not written",
                    extra={"chain_id": cm.chain_id, "error": str(e), "transient": e.transient},
                )
            return str(e)
        self.applied[key] = cm
        self.effects.faults.clear(Part.KUBERNETES, where)
        for verb, n in (Counter(self.control.writes) - before).items():
            self.effects.count("configmaps", n, verb)
        if outcome in (Outcome.CREATED, Outcome.UPDATED):
            self.on_written(height)
            log.info(
                f"peers ConfigMap {outcome.value}",
                extra={
                    "chain_id": cm.chain_id,
                    "configmap": f"{cm.namespace}/{cm.name}",
                    "peer_count": cm.data["peer_count"],
                    "peers_hash": cm.peers_hash[:12],
                    "height": height,
                },
            )
        return None

    async def _remove_stale(
        self, desired: DesiredCluster, wanted: Mapping[ConfigMapKey, PeersConfigMap]
    ) -> bool:
        held = desired.held_configmap_names()
        try:
            existing = []
            for namespace in self.namespaces:
                existing += await self.control.list_managed(namespace)
        except KubernetesWriteError as e:
            log.warning("listing peers ConfigMaps failed", extra={"error": str(e)})
            return False
        clean = True
        for cm in existing:
            key = (cm.namespace, cm.name)
            if key in wanted or cm.name in held:
                continue
            try:
                outcome = await self.control.delete(cm.namespace, cm.name)
            except KubernetesWriteError as e:
                clean = False
                self.effects.metrics.ops.kubernetes_write_errors.labels(resource="configmaps").inc()
                log.warning(
                    "stale peers ConfigMap not deleted",
                    extra={"configmap": f"{cm.namespace}/{cm.name}", "error": str(e)},
                )
                continue
            self.applied.pop(key, None)
            if outcome is Outcome.DELETED:
                self.effects.count("configmaps", 1, "delete")
                log.info(
                    "peers ConfigMap deleted",
                    extra={"chain_id": cm.chain_id, "configmap": f"{cm.namespace}/{cm.name}"},
                )
        return clean
