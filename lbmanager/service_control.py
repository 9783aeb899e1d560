"""Reads the shard Services and writes a ServicePlan: create what is missing, replace what differs.

Every replace carries the resourceVersion that was read, so the API server
refuses it (409) if anyone wrote the Service in between; the caller then
re-reads and re-plans (see `reconciler`). A Service that matches its plan is
not written at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from .kube import KubeRest
from .naming import shard_index
from .paths import services_path
from .service_builder import (
    ObservedService,
    ServicePlan,
    new_service,
    observe_service,
    service_is_current,
    updated_service,
)
from .types import LbSettings, RawObject


def read_shards(rest: KubeRest, settings: LbSettings) -> list[ObservedService]:
    """Every Service named `<service_name>` or `<service_name>-N` in the namespace."""
    items, _ = rest.list(services_path(settings.namespace))
    out: list[ObservedService] = []
    for item in items:
        name = str((item.get("metadata") or {}).get("name") or "")
        index = shard_index(settings.service_name, name)
        if index is not None:
            out.append(observe_service(index, item))
    return sorted(out, key=lambda o: o.index)


def apply_service_plan(
    rest: KubeRest,
    settings: LbSettings,
    observed: Sequence[ObservedService],
    plan: ServicePlan,
) -> dict[int, RawObject]:
    """Write the shards that differ; the resulting object of every shard by index.

    Raises KubernetesConflict when a Service changed since it was read or was
    created concurrently; shards written before that stay written (they are
    then current, so the retry does not write them again).
    """
    by_index = {o.index: o for o in observed}
    result: dict[int, RawObject] = {}
    for shard in plan.shards:
        current = by_index.get(shard.index)
        if current is None:
            result[shard.index] = rest.create(
                services_path(settings.namespace), new_service(shard, settings)
            )
        elif service_is_current(current, shard):
            result[shard.index] = current.raw
        else:
            result[shard.index] = rest.replace(
                services_path(settings.namespace, current.name), updated_service(current, shard)
            )
    return result
