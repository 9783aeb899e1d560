"""Consumer pods: what an endpoint needs from a pod, which chain a pod serves, and a watch.

How consumer pods are found. A chain's pods are named by a `PodSelector`
(namespace or all namespaces, labels, annotations). The convention the product
uses, built by `keyed_pod_selector(key)`, works for every chain ID, including
IDs that are not valid label values (too long, `_`, `/`, spaces):

- label `ics-discovery.io/chain-id-hash`: the first 40 hex characters of
  SHA-256 over the JSON array `["key", <chain id>]` (`naming.key_hash`; always a
  valid label value, used for server-side selection), and
- annotation `ics-discovery.io/chain-id`: the exact chain ID, compared here, so a
  pod is never matched by a hash alone.

`PodWatcher` keeps a cache of the pods in scope with list-then-watch: it relists
after the watch expires (410 Gone) or the connection drops, reports every pod
whose endpoint-relevant state changed, and never blocks the event loop (it runs
in its own thread).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from .errors import KubernetesUnavailable, LbManagerError, WatchExpired
from .kube import KubeRest, pods_path, shutdown_stream
from .naming import key_hash
from .types import AddressFamily, ChainExposure, PodSelector, RawObject

log = logging.getLogger(__name__)

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


def list_pods(rest: KubeRest, scope: PodScope) -> tuple[list[PodInfo], str]:
    items, rv = rest.list(pods_path(scope.namespace), label_selector=scope.label_selector or None)
    pods = [p for p in (pod_info(i) for i in items) if p is not None]
    return pods, rv


# ---- watch ------------------------------------------------------------------


@dataclass(frozen=True)
class PodChange:
    """A pod's endpoint-relevant state before and after (None: absent)."""

    old: PodInfo | None
    new: PodInfo | None


@dataclass
class WatchStats:
    relists: int = 0
    expired: int = 0
    errors: int = 0
    events: int = 0


class PodWatcher:
    """List-then-watch pods of one scope in a thread, keeping a cache and reporting changes.

    `on_change` runs in the watcher thread; it must be quick and must not raise
    (an exception is logged and the watch continues).
    """

    def __init__(
        self,
        rest: KubeRest,
        scope: PodScope,
        on_change: Callable[[Sequence[PodChange]], None],
        *,
        watch_seconds: int = 240,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
    ) -> None:
        self.rest = rest
        self.scope = scope
        self.on_change = on_change
        self.watch_seconds = watch_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stats = WatchStats()
        self._pods: dict[str, PodInfo] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self.last_error: LbManagerError | None = None

    # ---- lifecycle --------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"pod-watch {self.scope.describe()}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            shutdown_stream(stream)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def snapshot(self) -> list[PodInfo] | None:
        """Cached pods, or None before the first successful list."""
        if not self._synced.is_set():
            return None
        with self._lock:
            return list(self._pods.values())

    # ---- loop -------------------------------------------------------------

    def _run(self) -> None:
        delay = self.backoff_initial
        while not self._stopping.is_set():
            try:
                rv = self._relist()
                delay = self.backoff_initial
                while not self._stopping.is_set():
                    rv = self._watch(rv)
            except WatchExpired:
                self.stats.expired += 1
                log.info("pod watch expired (410); relisting %s", self.scope.describe())
            except LbManagerError as e:
                if self._stopping.is_set():
                    break
                self.stats.errors += 1
                self.last_error = e
                log.warning("pod watch failed, retrying in %.1fs: %s", delay, e)
                self._stopping.wait(delay)
                delay = min(delay * 2, self.backoff_max)
            except Exception:
                # A bug must not silently end the only thread that follows pods:
                # log it with its traceback, count it, and start over from a list.
                if self._stopping.is_set():
                    break
                self.stats.errors += 1
                log.exception("pod watch crashed, relisting in %.1fs", delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, self.backoff_max)

    def _relist(self) -> str:
        pods, rv = list_pods(self.rest, self.scope)
        fresh = {p.uid: p for p in pods}
        with self._lock:
            old = self._pods
            self._pods = fresh
        self.stats.relists += 1
        changes = [
            PodChange(old.get(uid), fresh.get(uid))
            for uid in sorted(old.keys() | fresh.keys())
            if old.get(uid) != fresh.get(uid)
        ]
        self._synced.set()
        if changes:
            self._notify(changes)
        return rv

    def _watch(self, rv: str) -> str:
        query = {
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        if self.scope.label_selector:
            query["labelSelector"] = self.scope.label_selector
        stream, lines = self.rest.watch_lines(
            pods_path(self.scope.namespace), query, read_timeout=self.watch_seconds + 30
        )
        self._stream = stream
        try:
            if self._stopping.is_set():
                return rv
            for line in lines:
                if self._stopping.is_set():
                    break
                rv = self._handle(line, rv)
        finally:
            self._stream = None
        return rv

    def _handle(self, line: str, rv: str) -> str:
        try:
            event = json.loads(line)
            kind = event["type"]
            obj = event["object"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable pod watch line")
            return rv
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            message = str(obj.get("message", "")) if isinstance(obj, dict) else ""
            if code == 410:
                raise WatchExpired(f"WATCH {pods_path(self.scope.namespace)}", message)
            raise KubernetesUnavailable(
                f"WATCH {pods_path(self.scope.namespace)}", message or "watch error", status=code
            )
        meta = (obj.get("metadata") or {}) if isinstance(obj, dict) else {}
        new_rv = str(meta.get("resourceVersion") or rv)
        if kind == "BOOKMARK":
            return new_rv
        info = pod_info(obj)
        if info is None:
            return new_rv
        self.stats.events += 1
        with self._lock:
            old = self._pods.get(info.uid)
            if kind == "DELETED":
                self._pods.pop(info.uid, None)
                new: PodInfo | None = None
            else:
                self._pods[info.uid] = info
                new = info
        if old != new:
            self._notify([PodChange(old, new)])
        return new_rv

    def _notify(self, changes: Sequence[PodChange]) -> None:
        try:
            self.on_change(changes)
        except Exception:  # the watch must outlive a faulty listener
            log.exception("pod change listener failed")
