"""Our own endpoint: what our LoadBalancer's address is, and whether the chain must be told.

Other validators reach our consumer nodes at the address our shared
LoadBalancer Service gets from MetalLB or the cloud (`status.loadBalancer.ingress`).
When that address changes, the description on chain must follow, or every peer
list that names us goes stale. `endpoint_update` decides, purely, whether new
details are needed and what they are (the operator's own text and our node ID
are kept); `IngressWatch` follows the Service's status with a Kubernetes watch
in a thread and reports each change to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from discovery.endpoints import (
    EndpointPolicy,
    Host,
    PublishedEndpoint,
    format_details,
    go_extract_p2p_endpoint,
    parse_host,
    read_details,
)
from discovery.errors import EndpointRejected
from discovery.types import NodeId
from lbmanager.errors import LbManagerError, WatchExpired
from lbmanager.kube import KubeRest, shutdown_stream
from lbmanager.paths import services_path

log = logging.getLogger(__name__)


def chosen_host(ingress: Sequence[str], policy: EndpointPolicy) -> Host | None:
    """The address to publish: the first acceptable one in canonical order; None if none is."""
    hosts: list[Host] = []
    for text in ingress:
        try:
            hosts.append(parse_host(text, policy))
        except EndpointRejected:
            continue
    if not hosts:
        return None
    # IPv4 before IPv6 before names, then by text: the same set always picks the same host.
    order = {"ipv4": 0, "ipv6": 1, "dns": 2}
    return min(hosts, key=lambda h: (order[h.kind.value], h.name))


def endpoint_update(
    ingress: Sequence[str],
    current_details: str,
    policy: EndpointPolicy,
    node_id: NodeId | None = None,
) -> str | None:
    """New `details` carrying our LoadBalancer address, or None when the chain already shows it.

    "Shows it" includes: in a form the Go implementation reads as exactly our host.

    With `node_id`, the chain must show that node ID too; without it, the
    node ID the chain shows (if any) is kept. None too when no ingress address
    is acceptable (nothing to publish yet). Raises `DetailsTooLong` when the
    operator's text leaves no room.
    """
    host = chosen_host(ingress, policy)
    if host is None:
        return None
    existing = read_details(current_details, policy)
    if isinstance(existing, PublishedEndpoint):
        # Details in the old order (`p2p=HOST node=ID`) read fine here but not
        # in the Go implementation: they are rewritten once, in the new order.
        go_readable = go_extract_p2p_endpoint(current_details) == host.address()
        if existing.host == host and node_id in (None, existing.node_id) and go_readable:
            return None
        if node_id is None:
            node_id = existing.node_id
    details = format_details(current_details, host, node_id, policy)
    return None if details == current_details else details


def ingress_of(service: Any) -> tuple[str, ...]:
    """`status.loadBalancer.ingress` IPs and hostnames of a Service object, sorted."""
    status = (service.get("status") or {}) if isinstance(service, dict) else {}
    entries = (status.get("loadBalancer") or {}).get("ingress") or []
    out: set[str] = set()
    for entry in entries:
        if isinstance(entry, dict):
            for key in ("ip", "hostname"):
                value = entry.get(key)
                if isinstance(value, str) and value:
                    out.add(value)
    return tuple(sorted(out))


class IngressWatch:
    """Watches one Service and calls `on_change(ingress)` on the loop when its ingress changes."""

    def __init__(
        self,
        rest: KubeRest,
        namespace: str,
        name: str,
        on_change: Callable[[tuple[str, ...]], None],
        *,
        watch_seconds: int = 240,
        retry_seconds: float = 2.0,
    ) -> None:
        self.rest = rest
        self.namespace = namespace
        self.name = name
        self.on_change = on_change
        self.watch_seconds = watch_seconds
        self.retry_seconds = retry_seconds
        self.ingress: tuple[str, ...] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"ingress-watch {self.namespace}/{self.name}", daemon=True
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

    def _seen(self, ingress: tuple[str, ...]) -> None:
        if ingress == self.ingress:
            return
        self.ingress = ingress
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self.on_change, ingress)

    def _run(self) -> None:
        path = services_path(self.namespace)
        selector = f"metadata.name={self.name}"
        while not self._stopping.is_set():
            try:
                doc = self.rest.request(
                    "GET", path, query=[("fieldSelector", selector), ("limit", "1")]
                )
                items = doc.get("items") or []
                self._seen(ingress_of(items[0]) if items else ())
                rv = str((doc.get("metadata") or {}).get("resourceVersion") or "")
                while not self._stopping.is_set():
                    rv = self._watch(path, selector, rv)
            except WatchExpired:
                continue
            except LbManagerError as e:
                if self._stopping.is_set():
                    break
                log.warning(
                    "watching our LoadBalancer Service failed; retrying",
                    extra={"service": f"{self.namespace}/{self.name}", "error": str(e)},
                )
                self._stopping.wait(self.retry_seconds)

    def _watch(self, path: str, selector: str, rv: str) -> str:
        query = {
            "fieldSelector": selector,
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        stream, lines = self.rest.watch_lines(path, query, read_timeout=self.watch_seconds + 30)
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
                        raise WatchExpired(f"WATCH {path}", str(obj.get("message", "")))
                    raise LbManagerError(f"watch {path}: {obj}", transient=True)
                meta = (obj.get("metadata") or {}) if isinstance(obj, dict) else {}
                rv = str(meta.get("resourceVersion") or rv)
                if kind == "BOOKMARK":
                    continue
                self._seen(() if kind == "DELETED" else ingress_of(obj))
        finally:
            self._stream = None
        return rv
