"""Consumer pods: which serve a chain, and what an endpoint needs from a pod. Pure.

How consumer pods are found. A chain's pods are named by a `PodSelector`
(namespace or all namespaces, labels, annotations). The convention the product
uses, built by `keyed_pod_selector(key)`, works for every chain ID, including
IDs that are not valid label values (too long, `_`, `/`, spaces):

- label `ics-discovery.io/chain-id-hash`: the first 40 hex characters of
  SHA-256 over the JSON array `["key", <chain id>]` (`naming.key_hash`; always a
  valid label value, used for server-side selection), and
- annotation `ics-discovery.io/chain-id`: the exact chain ID, compared here, so a
  pod is never matched by a hash alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from .naming import key_hash
from .types import AddressFamily, ChainExposure, PodSelector, RawObject

POD_KEY_HASH_LABEL: Final = "ics-discovery.io/chain-id-hash"
POD_KEY_ANNOTATION: Final = "ics-discovery.io/chain-id"


def keyed_pod_selector(key: str, namespace: str | None = None) -> PodSelector:
    """The selector for pods labelled and annotated by the documented convention."""
    return PodSelector(
        labels={POD_KEY_HASH_LABEL: key_hash(key)},
        namespace=namespace,
        annotations={POD_KEY_ANNOTATION: key},
    )


def pod_labels_for_key(key: str) -> dict[str, str]:
    """Labels a consumer pod of `key` carries (for charts and tests)."""
    return {POD_KEY_HASH_LABEL: key_hash(key)}


def pod_annotations_for_key(key: str) -> dict[str, str]:
    """Annotations a consumer pod of `key` carries (for charts and tests)."""
    return {POD_KEY_ANNOTATION: key}


# ---- pod state --------------------------------------------------------------


class RawPodMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    deletionTimestamp: str
    resourceVersion: str


@dataclass(frozen=True)
class PodInfo:
    """The part of a pod that decides its endpoints."""

    namespace: str
    name: str
    uid: str
    ips: tuple[str, ...]
    ready: bool  # the pod's Ready condition
    terminating: bool  # deletionTimestamp set
    phase: str
    node_name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, compare=True)
    annotations: Mapping[str, str] = field(default_factory=dict, compare=True)

    def __hash__(self) -> int:
        return hash((self.uid, self.ips, self.ready, self.terminating, self.phase))

    @property
    def serves_traffic(self) -> bool:
        """Has an address and is not finished: it belongs in the slice."""
        return bool(self.ips) and self.phase not in ("Succeeded", "Failed")

    def addresses(self, family: AddressFamily) -> tuple[str, ...]:
        return tuple(ip for ip in self.ips if ip_family(ip) == family)


def ip_family(ip: str) -> AddressFamily | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return "IPv4" if addr.version == 4 else "IPv6"


def pod_info(raw: RawObject) -> PodInfo | None:
    """PodInfo from the API's JSON; None for objects that are not usable pods."""
    meta: dict[str, Any] = raw.get("metadata") or {}
    status: dict[str, Any] = raw.get("status") or {}
    spec: dict[str, Any] = raw.get("spec") or {}
    name, namespace, uid = meta.get("name"), meta.get("namespace"), meta.get("uid")
    if not (isinstance(name, str) and isinstance(namespace, str) and isinstance(uid, str)):
        return None
    ips: list[str] = []
    for entry in status.get("podIPs") or []:
        ip = entry.get("ip") if isinstance(entry, dict) else None
        if isinstance(ip, str) and ip_family(ip) and ip not in ips:
            ips.append(ip)
    single = status.get("podIP")
    if not ips and isinstance(single, str) and ip_family(single):
        ips.append(single)
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    node = spec.get("nodeName")
    return PodInfo(
        namespace=namespace,
        name=name,
        uid=uid,
        ips=tuple(ips),
        ready=ready,
        terminating=meta.get("deletionTimestamp") is not None,
        phase=str(status.get("phase") or "Unknown"),
        node_name=node if isinstance(node, str) and node else None,
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
    )


def selector_matches(selector: PodSelector, pod: PodInfo) -> bool:
    if not selector.allows_namespace(pod.namespace):
        return False
    for k, v in selector.labels.items():
        if pod.labels.get(k) != v:
            return False
    return all(pod.annotations.get(k) == v for k, v in selector.annotations.items())


class PodIndex:
    """Pods indexed by label pair, so 500 chains do not each scan every pod."""

    def __init__(self, pods: Iterable[PodInfo]) -> None:
        self.pods = tuple(sorted(pods, key=lambda p: (p.namespace, p.name, p.uid)))
        self._by_label: dict[tuple[str, str], list[PodInfo]] = {}
        for p in self.pods:
            for kv in p.labels.items():
                self._by_label.setdefault(kv, []).append(p)

    def matching(self, selector: PodSelector) -> tuple[PodInfo, ...]:
        if selector.labels:
            first = next(iter(selector.labels.items()))
            candidates: Sequence[PodInfo] = self._by_label.get(first, [])
        else:
            candidates = self.pods
        return tuple(p for p in candidates if selector_matches(selector, p))


# ---- scope ------------------------------------------------------------------


@dataclass(frozen=True)
class PodScope:
    """What to list and watch: one namespace or all, and an existence label selector."""

    namespace: str | None
    label_selector: str

    def describe(self) -> str:
        where = self.namespace or "all namespaces"
        return f"pods in {where} with {self.label_selector or 'any labels'}"


def pod_scope(chains: Sequence[ChainExposure]) -> PodScope | None:
    """The narrowest single list/watch covering every chain's pods (None: no chains).

    One watch for all chains: the namespace if they all share one, and the label
    keys every selector requires (existence), so with the convention above it is
    `ics-discovery.io/chain-id-hash` in the consumers' namespace.
    """
    if not chains:
        return None
    namespaces = {c.pods.namespace for c in chains}
    ns = next(iter(namespaces)) if len(namespaces) == 1 else None
    common: set[str] | None = None
    for c in chains:
        keys = set(c.pods.labels)
        common = keys if common is None else common & keys
    return PodScope(namespace=ns, label_selector=",".join(sorted(common or ())))
