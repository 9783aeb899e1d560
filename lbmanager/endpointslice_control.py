"""Lists this reconciler's EndpointSlices and makes them match the desired ones, in parallel.

Only slices labelled with our `managed-by` and our owner id are ever updated or
deleted; a slice of the same name that is not ours is reported, never touched.
Updates carry the resourceVersion that was read and deletes carry uid and
resourceVersion preconditions, so a concurrent change is never overwritten
blindly: on 409 the slice is re-read and the write retried.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from .endpointslice_builder import (
    DesiredSlice,
    render_slice,
    slice_is_current,
    slice_key,
    updated_slice,
)
from .errors import (
    ConflictRetriesExhausted,
    KubernetesConflict,
    KubernetesNotFound,
    LbManagerError,
    SliceNameTaken,
)
from .kube import KubeRest
from .naming import KEY_HASH_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, key_hash
from .paths import slices_path
from .types import RawObject


def our_selector(owner: str, key: str | None = None) -> str:
    sel = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{OWNER_LABEL}={owner}"
    return sel if key is None else f"{sel},{KEY_HASH_LABEL}={key_hash(key)}"


def is_ours(actual: RawObject, owner: str) -> bool:
    labels = (actual.get("metadata") or {}).get("labels") or {}
    return bool(
        labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and labels.get(OWNER_LABEL) == owner
    )


def read_slices(
    rest: KubeRest, namespace: str, owner: str, key: str | None = None
) -> list[RawObject]:
    items, _ = rest.list(slices_path(namespace), label_selector=our_selector(owner, key))
    if key is not None:
        items = [i for i in items if slice_key(i) == key]
    return items


@dataclass(frozen=True)
class SliceSync:
    """Outcome of syncing slices: errors by chain key."""

    errors: dict[str, LbManagerError]


def _meta(obj: RawObject) -> dict[str, str]:
    m = obj.get("metadata") or {}
    return {
        "name": str(m.get("name") or ""),
        "uid": str(m.get("uid") or ""),
        "rv": str(m.get("resourceVersion") or ""),
    }


def sync_slice(
    rest: KubeRest, namespace: str, desired: DesiredSlice, actual: RawObject | None, attempts: int
) -> None:
    """Make one slice match; re-read and retry on conflicts."""
    path = slices_path(namespace, desired.name)
    for _ in range(attempts):
        try:
            if actual is None:
                rest.create(slices_path(namespace), render_slice(desired))
                return
            if not is_ours(actual, desired.owner):
                raise SliceNameTaken(desired.key, desired.name)
            if slice_is_current(actual, desired):
                return
            if actual.get("addressType") != desired.family:  # immutable field
                m = _meta(actual)
                rest.delete(path, uid=m["uid"], resource_version=m["rv"])
                actual = None
                continue
            rest.replace(path, updated_slice(actual, desired))
            return
        except KubernetesConflict:
            actual = rest.get(path)  # exists (create lost a race) or changed (update)
        except KubernetesNotFound:
            actual = None  # deleted since it was read
    raise ConflictRetriesExhausted(f"EndpointSlice {namespace}/{desired.name}", attempts)


def delete_slice(rest: KubeRest, namespace: str, actual: RawObject) -> None:
    m = _meta(actual)
    try:
        rest.delete(slices_path(namespace, m["name"]), uid=m["uid"], resource_version=m["rv"])
    except KubernetesConflict:
        # Changed since listed: delete only if it is still ours (the next
        # reconcile decides again otherwise).
        fresh = rest.get(slices_path(namespace, m["name"]))
        if fresh is not None and _meta(fresh)["uid"] == m["uid"]:
            f = _meta(fresh)
            rest.delete(slices_path(namespace, m["name"]), uid=f["uid"], resource_version=f["rv"])


def sync_slices(
    rest: KubeRest,
    namespace: str,
    desired: Sequence[DesiredSlice],
    actual: Sequence[RawObject],
    *,
    keep_keys: Collection[str],
    owner: str,
    concurrency: int,
    attempts: int,
) -> SliceSync:
    """Create, update and delete so that our slices are exactly `desired`.

    Slices of `keep_keys` (chains whose change was refused) are left alone.
    """
    by_name = {_meta(a)["name"]: a for a in actual}
    wanted = {d.name for d in desired}
    jobs: list[tuple[str, Callable[[], None]]] = []
    for d in desired:
        a = by_name.get(d.name)
        if a is not None and is_ours(a, owner) and slice_is_current(a, d):
            continue
        jobs.append((d.key, partial(sync_slice, rest, namespace, d, a, attempts)))
    for name, a in sorted(by_name.items()):
        if name in wanted or not is_ours(a, owner):
            continue
        key = slice_key(a)
        if key is not None and key in keep_keys:
            continue
        jobs.append((key or name, partial(delete_slice, rest, namespace, a)))
    errors: dict[str, LbManagerError] = {}
    if not jobs:
        return SliceSync(errors)
    if len(jobs) == 1 or concurrency == 1:
        results = [_run(job) for _, job in jobs]
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(jobs))) as pool:
            results = list(pool.map(_run, [job for _, job in jobs]))
    for (key, _), err in zip(jobs, results, strict=True):
        if err is not None:
            errors.setdefault(key, err)
    return SliceSync(errors)


def _run(job: Callable[[], None]) -> LbManagerError | None:
    try:
        job()
    except LbManagerError as e:
        return e
    return None
