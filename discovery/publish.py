"""Peer publication: the per-chain peers ConfigMap, and telling a consumer node it changed.

The consumer node reads its `persistent_peers` from a ConfigMap in its own
namespace; this module decides that ConfigMap's exact content from plain data
(`build_peers_configmap`, pure, byte-for-byte deterministic, every entry
re-checked as CometBFT checks it), writes it only when the content differs
(`PeersConfigMapControl`), and, for chains in `restart` mode, puts the peers
hash on the pod template of the consumer's Deployment or StatefulSet so
Kubernetes rolls it (`RestartNotifier`). A validator's consumer node must never
run twice (two signers double-sign), so a Deployment whose rollout could start
the new pod before the old one stops is refused, not restarted.

Objects are found by the pod convention of `lbmanager.pods` (label
`ics-discovery.io/chain-id-hash`, annotation `ics-discovery.io/chain-id`) and
only objects labelled `app.kubernetes.io/managed-by: ics-discovery` are ever
changed or deleted. Kubernetes I/O goes through `lbmanager.kube.KubeRest` in a
worker thread; its errors come out as `PublishError`, transient or not.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import quote

from discovery.errors import DiscoveryError, InvalidPort
from discovery.state import LeftOutRecord, PeerRecord
from discovery.types import parse_chain_id
from lbmanager.errors import KubernetesConflict, LbManagerError
from lbmanager.kube import KubeRest, conflict_pause
from lbmanager.naming import key_hash
from lbmanager.pods import POD_KEY_ANNOTATION, POD_KEY_HASH_LABEL
from lbmanager.types import RawObject

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "ics-discovery"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PEERS_COMPONENT: Final = "peers"
CHAIN_HASH_LABEL: Final = POD_KEY_HASH_LABEL
CHAIN_ID_ANNOTATION: Final = POD_KEY_ANNOTATION
CONTENT_HASH_ANNOTATION: Final = "ics-discovery.io/content-hash"
PEERS_HASH_ANNOTATION: Final = "ics-discovery.io/peers-hash"
NAME_PREFIX: Final = "ics-peers-"

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_READABLE_CHARS: Final = 36
_HASH_CHARS: Final = 10
# Kubernetes refuses a ConfigMap whose data (keys and values) exceeds 1 MiB.
CONFIGMAP_DATA_LIMIT: Final = 1024 * 1024
# left_out.json lists at most this many validators (sorted); the count of the
# others goes in `left_out_omitted`. Validators left out because of max_peers
# can number thousands on a large chain.
MAX_LEFT_OUT_LISTED: Final = 100

# Re-reads after write conflicts, paused 0.05 s, 0.1 s, ... (about 1.5 s in all).
_CONFLICT_ATTEMPTS: Final = 6
_CONFLICT_PAUSE: Final = 0.05


class PublishError(DiscoveryError):
    """Publishing to Kubernetes failed; `transient` says whether a retry can help."""

    def __init__(self, what: str, problem: str, *, transient: bool) -> None:
        self.what = what
        self.problem = problem
        self.transient = transient  # type: ignore[misc]
        super().__init__(f"{what}: {problem}")


class NotOurs(PublishError):
    """An object with the name we need exists and is not managed by us (permanent)."""

    def __init__(self, what: str) -> None:
        super().__init__(
            what, f"exists without label {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}", transient=False
        )


def _wrap(what: str, e: LbManagerError) -> PublishError:
    return PublishError(what, e.message, transient=e.transient)


# --- the peers ConfigMap (pure) ---------------------------------------------


def peers_configmap_name(chain_id: str) -> str:
    """`ics-peers-<readable part>-<hash>`: a DNS label for any chain ID, the same everywhere."""
    readable = _NOT_ALNUM.sub("-", chain_id.lower()).strip("-")[:_READABLE_CHARS].strip("-")
    digest = hashlib.sha256(chain_id.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{NAME_PREFIX}{readable}-{digest}" if readable else f"{NAME_PREFIX}{digest}"


def canonical_json(document: Any, *, indent: int | None = None) -> str:
    """Sorted keys, ASCII only (untrusted text is escaped), newline at the end when indented."""
    separators = (",", ": ") if indent else (",", ":")
    text = json.dumps(
        document, sort_keys=True, ensure_ascii=True, indent=indent, separators=separators
    )
    return text + "\n" if indent else text


def content_hash(data: Mapping[str, str]) -> str:
    """SHA-256 (hex) of a ConfigMap's data in canonical form."""
    return hashlib.sha256(canonical_json(dict(data)).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class PeersConfigMap:
    """The desired peers ConfigMap of one consumer chain."""

    namespace: str
    name: str
    chain_id: str
    data: Mapping[str, str]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    peers_hash: str

    def to_object(self) -> RawObject:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": dict(self.labels),
                "annotations": dict(self.annotations),
            },
            "data": dict(self.data),
        }

    def render(self) -> bytes:
        """The object as canonical JSON bytes (equal inputs give equal bytes)."""
        return canonical_json(self.to_object(), indent=2).encode("ascii")


def _check_ports(ports: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind, port in ports.items():
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidPort(port)
        out[str(kind)] = port
    return dict(sorted(out.items()))


def build_peers_configmap(
    *,
    chain_id: str,
    consumer_id: str,
    namespace: str,
    peers: Sequence[PeerRecord],
    left_out: Sequence[LeftOutRecord],
    ports: Mapping[str, int],
) -> PeersConfigMap:
    """The peers ConfigMap for one chain. Pure and deterministic (input order does not matter).

    Raises `InvalidPeerEntry` if any peer would not pass CometBFT's checks:
    nothing unvalidated is ever written.
    """
    parse_chain_id(chain_id)
    checked = sorted(
        ((p.checked_entry(), p) for p in peers), key=lambda x: (x[0], x[1].operator_address)
    )
    entries = [entry for entry, _ in checked]
    persistent_peers = ",".join(entries)
    peers_doc = [
        {
            "operator": p.operator_address,
            "moniker": p.moniker,
            "host": p.host,
            "port": p.port,
            "node_id": p.node_id,
            "entry": entry,
        }
        for entry, p in checked
    ]
    left_doc = sorted(
        (
            {
                "consensus_address": x.consensus_address,
                "operator": x.operator_address,
                "moniker": x.moniker,
                "reason": x.reason,
                "detail": x.detail,
            }
            for x in left_out
        ),
        key=lambda d: (d["operator"], d["consensus_address"], d["reason"], d["detail"]),
    )
    data = {
        "chain_id": chain_id,
        "consumer_id": consumer_id,
        "persistent_peers": persistent_peers,
        "peers.json": canonical_json(peers_doc, indent=2),
        "peers.txt": "".join(e + "\n" for e in entries),
        "peer_count": str(len(entries)),
        "ports.json": canonical_json(_check_ports(ports), indent=2),
        "left_out.json": canonical_json(left_doc[:MAX_LEFT_OUT_LISTED], indent=2),
    }
    if len(left_doc) > MAX_LEFT_OUT_LISTED:
        data["left_out_omitted"] = str(len(left_doc) - MAX_LEFT_OUT_LISTED)
    if _data_size(data) > CONFIGMAP_DATA_LIMIT:
        # The reasons are the first thing to give up: the peers are the point.
        data["left_out.json"] = canonical_json([], indent=2)
        data["left_out_omitted"] = str(len(left_doc))
    size = _data_size(data)
    if size > CONFIGMAP_DATA_LIMIT:
        raise DiscoveryError(
            f"peers ConfigMap data would be {size} bytes, over Kubernetes' limit of "
            f"{CONFIGMAP_DATA_LIMIT}: lower max_peers"
        )
    peers_hash = hashlib.sha256(persistent_peers.encode("ascii")).hexdigest()
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        COMPONENT_LABEL: PEERS_COMPONENT,
        CHAIN_HASH_LABEL: key_hash(chain_id),
    }
    annotations = {
        CHAIN_ID_ANNOTATION: chain_id,
        CONTENT_HASH_ANNOTATION: content_hash(data),
        PEERS_HASH_ANNOTATION: peers_hash,
    }
    return PeersConfigMap(
        namespace=namespace,
        name=peers_configmap_name(chain_id),
        chain_id=chain_id,
        data=MappingProxyType(dict(sorted(data.items()))),
        labels=MappingProxyType(dict(sorted(labels.items()))),
        annotations=MappingProxyType(dict(sorted(annotations.items()))),
        peers_hash=peers_hash,
    )


def _data_size(data: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())


def configmap_update(existing: RawObject, desired: PeersConfigMap) -> RawObject | None:
    """The object to PUT so `existing` matches `desired`, or None when it already does. Pure.

    Foreign labels and annotations (added by people or other tools) are kept;
    ours and the data are set exactly.
    """
    meta = existing.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    same = (
        (existing.get("data") or {}) == dict(desired.data)
        and not existing.get("binaryData")
        and all(labels.get(k) == v for k, v in desired.labels.items())
        and all(annotations.get(k) == v for k, v in desired.annotations.items())
    )
    if same:
        return None
    updated = copy.deepcopy(existing)
    updated.pop("binaryData", None)
    updated["data"] = dict(desired.data)
    updated["metadata"]["labels"] = {**labels, **desired.labels}
    updated["metadata"]["annotations"] = {**annotations, **desired.annotations}
    return updated


def is_managed(obj: RawObject) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE)


# --- the peers ConfigMap (I/O) ----------------------------------------------


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    ABSENT = "absent"


def configmaps_path(namespace: str | None, name: str | None = None) -> str:
    if namespace is None:
        return "/api/v1/configmaps"
    base = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps"
    return base if name is None else f"{base}/{quote(name, safe='')}"


@dataclass(frozen=True)
class ManagedConfigMap:
    """A peers ConfigMap that exists and is ours."""

    namespace: str
    name: str
    chain_id: str
    uid: str


class PeersConfigMapControl:
    """Creates, updates and deletes peers ConfigMaps; writes only differences, counts writes."""

    def __init__(
        self, rest: KubeRest, scope: frozenset[tuple[str, str, str]] | None = None
    ) -> None:
        self.rest = rest
        # (kind, namespace, name) that may be rolled (setting restart_workloads); None: any.
        self.scope = scope
        self.writes: Counter[str] = Counter()

    async def apply(self, desired: PeersConfigMap) -> Outcome:
        """Make the ConfigMap match `desired`; UNCHANGED writes nothing."""
        return await asyncio.to_thread(self._apply, desired)

    def _apply(self, desired: PeersConfigMap) -> Outcome:
        what = f"ConfigMap {desired.namespace}/{desired.name}"
        path = configmaps_path(desired.namespace, desired.name)
        for attempt in range(_CONFLICT_ATTEMPTS):
            if attempt:
                conflict_pause(attempt - 1, base=_CONFLICT_PAUSE)
            try:
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
            except KubernetesConflict:
                continue  # created or changed in between: decide again from a fresh read
            except LbManagerError as e:
                raise _wrap(what, e) from e
        raise PublishError(what, "kept conflicting with concurrent writers", transient=True)

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
            raise _wrap(what, e) from e
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
            raise _wrap(f"list ConfigMaps in {namespace or 'every namespace'}", e) from e
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


# --- the restart notifier ----------------------------------------------------


@dataclass(frozen=True)
class WorkloadRef:
    kind: str  # "Deployment" or "StatefulSet"
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


_WORKLOAD_RESOURCES: Final = {"Deployment": "deployments", "StatefulSet": "statefulsets"}


def workload_path(kind: str, namespace: str | None, name: str | None = None) -> str:
    resource = _WORKLOAD_RESOURCES[kind]
    if namespace is None:
        return f"/apis/apps/v1/{resource}"
    base = f"/apis/apps/v1/namespaces/{quote(namespace, safe='')}/{resource}"
    return base if name is None else f"{base}/{quote(name, safe='')}"


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


class RestartNotifier:
    """Puts the peers hash on consumer workloads' pod templates so Kubernetes rolls them."""

    def __init__(
        self, rest: KubeRest, scope: frozenset[tuple[str, str, str]] | None = None
    ) -> None:
        self.rest = rest
        # (kind, namespace, name) that may be rolled (setting restart_workloads); None: any.
        self.scope = scope
        self.writes: Counter[str] = Counter()

    async def notify(
        self,
        chain_id: str,
        peers_hash: str,
        *,
        namespace: str | None = None,
        extra_labels: Mapping[str, str] | None = None,
    ) -> NotifyReport:
        """Roll every Deployment/StatefulSet running `chain_id` whose hash differs.

        One workload's failure does not stop the others: it is reported in
        `failed`. Listing the workloads failing raises `PublishError`.
        """
        return await asyncio.to_thread(
            self._notify, chain_id, peers_hash, namespace, dict(extra_labels or {})
        )

    def _notify(
        self, chain_id: str, peers_hash: str, namespace: str | None, extra: dict[str, str]
    ) -> NotifyReport:
        restarted: list[WorkloadRef] = []
        unchanged: list[WorkloadRef] = []
        refused: list[tuple[WorkloadRef, str]] = []
        failed: list[tuple[WorkloadRef, str]] = []
        for kind in ("Deployment", "StatefulSet"):
            try:
                items, _ = self.rest.list(workload_path(kind, namespace))
            except LbManagerError as e:
                raise _wrap(f"list {kind}s in {namespace or 'every namespace'}", e) from e
            for obj in sorted(items, key=_object_key):
                if not runs_chain(obj, chain_id, extra):
                    continue
                meta = obj.get("metadata") or {}
                ref = WorkloadRef(kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
                reason = out_of_scope(ref, self.scope) or restart_refusal(kind, obj)
                if reason is not None:
                    refused.append((ref, reason))
                    continue
                try:
                    changed = self._roll(ref, obj, peers_hash)
                except PublishError as e:
                    failed.append((ref, e.problem))
                    continue
                (restarted if changed else unchanged).append(ref)
        return NotifyReport(tuple(restarted), tuple(unchanged), tuple(refused), tuple(failed))

    def _roll(self, ref: WorkloadRef, obj: RawObject, peers_hash: str) -> bool:
        path = workload_path(ref.kind, ref.namespace, ref.name)
        current: RawObject | None = obj
        for attempt in range(_CONFLICT_ATTEMPTS):
            if attempt:
                conflict_pause(attempt - 1, base=_CONFLICT_PAUSE)
            try:
                if current is None:
                    current = self.rest.get(path)
                    if current is None:
                        return False  # deleted in between: nothing left to restart
                updated = with_peers_hash(current, peers_hash)
                if updated is None:
                    return False
                self.rest.replace(path, updated)
                self.writes[ref.kind] += 1
                return True
            except KubernetesConflict:
                current = None  # changed in between: re-read, re-decide
            except LbManagerError as e:
                raise _wrap(str(ref), e) from e
        raise PublishError(str(ref), "kept conflicting with concurrent writers", transient=True)


def _object_key(obj: RawObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))
