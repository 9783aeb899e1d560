"""Watching operator node resources, so a change to their peers is answered at once.

In `cosmos-operator` and `cosmopilot` modes the service writes peers into
node resources; someone may then edit them (drop one of our entries, replace
the resource, create it at last). One watch per kind and served namespace
(list, then watch from its resourceVersion, in a worker thread) wakes the
service loop when a resource's spec or our annotation changes: a new
`metadata.generation` (the spec changed: these CRDs have a status
subresource, so status updates do not count) or a new value of
`ics-discovery.io/peers`, or a resource appearing or going. The operator's own
frequent status updates wake nothing. A missing CRD is not an error: the watch
looks again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from discovery.operators import OWNED_PEERS_ANNOTATION
from lbmanager.errors import KubernetesNotFound, LbManagerError, WatchExpired
from lbmanager.kube import KubeRest, shutdown_stream

log = logging.getLogger(__name__)

# What about a resource may change what we write: its spec generation and our annotation.
Fingerprint = tuple[str, str]
_ABSENT_RETRY: Final = 30.0


def fingerprint(obj: Mapping[str, Any]) -> tuple[str, Fingerprint] | None:
    """(uid, (generation, our annotation)) of a node resource, or None when malformed. Pure."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not meta.get("uid"):
        return None
    annotations = meta.get("annotations")
    ours = annotations.get(OWNED_PEERS_ANNOTATION, "") if isinstance(annotations, Mapping) else ""
    return str(meta["uid"]), (str(meta.get("generation", "")), str(ours))


def changed(seen: dict[str, Fingerprint], event_type: str, obj: Mapping[str, Any]) -> bool:
    """Record one watch event in `seen`; True when it may change what we write. Pure but for
    updating `seen`."""
    found = fingerprint(obj)
    if found is None:
        return False
    uid, now = found
    if event_type == "DELETED":
        return seen.pop(uid, None) is not None
    before = seen.get(uid)
    seen[uid] = now
    return before != now


class NodeResourceWatch:
    """Watches one collection (a kind in one namespace); calls `on_change()` on the loop."""

    def __init__(
        self,
        rest: KubeRest,
        path: str,
        on_change: Callable[[], None],
        *,
        watch_seconds: int = 240,
        retry_seconds: float = 2.0,
    ) -> None:
        self.rest = rest
        self.path = path
        self.on_change = on_change
        self.watch_seconds = watch_seconds
        self.retry_seconds = retry_seconds
        self._seen: dict[str, Fingerprint] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"node-resource-watch {self.path}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            shutdown_stream(stream)
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 10.0)

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self.on_change)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                items, rv = self.rest.list(self.path)
                current: dict[str, Fingerprint] = {}
                for item in items:
                    found = fingerprint(item)
                    if found is not None:
                        current[found[0]] = found[1]
                if current != self._seen:
                    self._seen = current
                    self._wake()
                while not self._stopping.is_set():
                    rv = self._watch(rv)
            except WatchExpired:
                continue
            except KubernetesNotFound:
                # The operator's CRD is not installed (yet).
                if self._seen:
                    self._seen = {}
                    self._wake()
                self._stopping.wait(_ABSENT_RETRY)
            except LbManagerError as e:
                if self._stopping.is_set():
                    break
                log.warning(
                    "watching operator node resources failed; retrying",
                    extra={"path": self.path, "error": str(e)},
                )
                self._stopping.wait(self.retry_seconds)

    def _watch(self, rv: str) -> str:
        query = {
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        stream, lines = self.rest.watch_lines(
            self.path, query, read_timeout=self.watch_seconds + 30
        )
        self._stream = stream
        try:
            for line in lines:
                if self._stopping.is_set():
                    break
                try:
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                except (ValueError, KeyError, TypeError):
                    continue
                if kind == "ERROR":
                    if isinstance(obj, dict) and obj.get("code") == 410:
                        raise WatchExpired(f"WATCH {self.path}", str(obj.get("message", "")))
                    raise LbManagerError(f"watch {self.path}: {obj}", transient=True)
                if not isinstance(obj, dict):
                    continue
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if kind != "BOOKMARK" and changed(self._seen, kind, obj):
                    self._wake()
        finally:
            self._stream = None
        return rv
