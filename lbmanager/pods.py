"""Consumer pods from the Kubernetes API: one list, and a watch.

What a pod is to us (`PodInfo`), which chain it serves and which pods to watch
are decided in `consumer_pods` (pure).

`PodWatcher` keeps a cache of the pods in scope with list-then-watch: it relists
after the watch expires (410 Gone) or the connection drops, reports every pod
whose endpoint-relevant state changed, and never blocks the event loop (it runs
in its own thread).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .consumer_pods import PodInfo, PodScope, pod_info
from .errors import KubernetesUnavailable, LbManagerError, WatchExpired
from .kube import KubeRest, shutdown_stream
from .paths import pods_path

log = logging.getLogger(__name__)


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
