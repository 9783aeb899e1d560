"""JSON requests to the Kubernetes API through the sync kubernetes client's ApiClient.

The ApiClient brings configuration, TLS, authentication (token refresh
included) and connection pooling. lbmanager sends and receives plain JSON
through it instead of the generated model classes: the models validate and
re-serialise every field (slow for 500-port Services, and a PUT of a
round-tripped model would drop any field the client library does not know).
This is also the only place that turns client and urllib3 exceptions into
lbmanager errors, and it counts write requests for the report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from .errors import (
    ConflictRetriesExhausted,
    KubernetesConflict,
    KubernetesError,
    KubernetesNotFound,
    KubernetesRejected,
    KubernetesUnavailable,
    LbManagerError,
)
from .types import RawObject

log = logging.getLogger(__name__)

WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_AUTH: Final = ["BearerToken"]


def conflict_pause(attempt: int, *, base: float, cap: float = 0.5) -> None:
    """Sleep before re-reading after the `attempt`-th (0-based) write conflict.

    Conflicts come from other writers (often a controller updating status in a
    burst); re-reading at once can lose to the same burst again. Blocking: call
    from a worker thread, never from the event loop.
    """
    time.sleep(min(base * 2**attempt, cap))


T = TypeVar("T")


# Re-reads after write conflicts, paused 0.05 s, 0.1 s, ... (about 1.5 s in all).
CONFLICT_ATTEMPTS: Final = 6
CONFLICT_PAUSE: Final = 0.05


def retry_on_conflict(
    what: str,
    attempt: Callable[[int], T],
    *,
    attempts: int = CONFLICT_ATTEMPTS,
    base: float = CONFLICT_PAUSE,
) -> T:
    """Run `attempt(n)` for n = 0, 1, ... until it ends without a write conflict.

    The one optimistic-concurrency loop: each attempt decides again from a
    fresh read (attempt 0 may use what the caller already read), and a
    `KubernetesConflict` pauses (`conflict_pause`) before the next. Any other
    error ends the loop at once. After `attempts` conflicts it raises
    `ConflictRetriesExhausted` (transient). Blocking: call from a worker thread.
    """
    for n in range(attempts):
        if n:
            conflict_pause(n - 1, base=base)
        try:
            return attempt(n)
        except KubernetesConflict:
            log.debug("write conflict on %s, re-reading (attempt %d)", what, n + 1)
    raise ConflictRetriesExhausted(what, attempts)


def _problem(status: int, data: bytes) -> str:
    """The API server's own message from a Status body, without echoing the request."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data[:200].decode(errors="replace") or "no message"
    if isinstance(doc, dict):
        msg = doc.get("message") or doc.get("reason")
        if isinstance(msg, str) and msg:
            return msg
    return f"HTTP {status}"


class KubeRest:
    """Thread-safe JSON access to the API; retries transient failures a few times."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        timeout: float = 30.0,
        attempts: int = 3,
        retry_delay: float = 0.2,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.attempts = attempts
        self.retry_delay = retry_delay
        self._lock = threading.Lock()
        self._writes = 0
        # Called with the operation just before every write request (each attempt),
        # in the calling thread; it raises to refuse the write (leader fencing).
        self.write_guard: Callable[[str], None] | None = None

    @property
    def writes(self) -> int:
        return self._writes

    # ---- plumbing ---------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: RawObject | None = None,
        timeout: float | tuple[float, float] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One HTTP request; returns the client's RESTResponse (body not read yet)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        req = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query) or None,
            header_params=headers,
            body=body,
            auth_settings=_AUTH,
        )
        if method in WRITE_METHODS:
            guard = self.write_guard
            if guard is not None:
                guard(f"{method} {path}")
            with self._lock:
                self._writes += 1
        return self.api.call_api(*req, _request_timeout=timeout or self.timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: RawObject | None = None,
        content_type: str = "application/json",
    ) -> RawObject:
        """Send, retrying only failures that never reached a decision on the server."""
        op = f"{method} {path}"
        delay = self.retry_delay
        for attempt in range(1, self.attempts + 1):
            try:
                resp = self._send(method, path, query=query, body=body, content_type=content_type)
                data = resp.read()
                status = int(resp.status)
            except (urllib3.exceptions.HTTPError, OSError, ApiException) as e:
                err: KubernetesError = KubernetesUnavailable(op, f"{type(e).__name__}: {e}")
                cause: BaseException = e
            else:
                if 200 <= status <= 299:
                    try:
                        doc = json.loads(data) if data else {}
                    except ValueError as e:
                        raise KubernetesUnavailable(op, "response is not JSON") from e
                    if not isinstance(doc, dict):
                        raise KubernetesUnavailable(op, "response is not a JSON object")
                    return doc
                err = _status_error(op, status, data)
                if not isinstance(err, KubernetesUnavailable):
                    raise err
                cause = err
            if attempt == self.attempts:
                raise err from cause
            log.debug("retrying %s after %s", op, err)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    # ---- verbs ------------------------------------------------------------

    def get(self, path: str) -> RawObject | None:
        try:
            return self.request("GET", path)
        except KubernetesNotFound:
            return None

    def list(
        self, path: str, *, label_selector: str | None = None, page: int = 500
    ) -> tuple[list[RawObject], str]:
        """Every item (following `continue`) and the list's resourceVersion."""
        items: list[RawObject] = []
        cont = ""
        while True:
            query = [("limit", str(page))]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if cont:
                query.append(("continue", cont))
            doc = self.request("GET", path, query=query)
            items.extend(doc.get("items") or [])
            meta = doc.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                return items, str(meta.get("resourceVersion") or "")

    def create(self, path: str, body: RawObject) -> RawObject:
        return self.request("POST", path, body=body)

    def replace(self, path: str, body: RawObject) -> RawObject:
        return self.request("PUT", path, body=body)

    def merge_patch(self, path: str, patch: RawObject) -> RawObject:
        """JSON merge patch (RFC 7386); a `metadata.resourceVersion` in it makes it conditional."""
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(
        self, path: str, *, uid: str | None = None, resource_version: str | None = None
    ) -> None:
        """Delete, only if still the object we decided about (preconditions); 404 is fine."""
        pre: dict[str, str] = {}
        if uid:
            pre["uid"] = uid
        if resource_version:
            pre["resourceVersion"] = resource_version
        body: RawObject = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if pre:
            body["preconditions"] = pre
        with contextlib.suppress(KubernetesNotFound):
            self.request("DELETE", path, body=body)

    # ---- watch ------------------------------------------------------------

    def watch_lines(
        self, path: str, query: Mapping[str, str], read_timeout: float
    ) -> tuple[Any, Iterator[str]]:
        """Open a watch stream: the urllib3 response (to shut down) and its lines."""
        op = f"WATCH {path}"
        q = [*query.items(), ("watch", "true")]
        try:
            resp = self._send("GET", path, query=q, timeout=(self.timeout, read_timeout))
        except (urllib3.exceptions.HTTPError, OSError, ApiException) as e:
            raise KubernetesUnavailable(op, f"{type(e).__name__}: {e}") from e
        status = int(resp.status)
        if not 200 <= status <= 299:
            raise _status_error(op, status, resp.read())
        raw = resp.response
        return raw, _lines(op, raw)


def _lines(op: str, raw: Any) -> Iterator[str]:
    try:
        yield from iter_resp_lines(raw)  # type: ignore[no-untyped-call]
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
        raise KubernetesUnavailable(op, f"stream broken: {type(e).__name__}: {e}") from e
    finally:
        with contextlib.suppress(Exception):
            raw.release_conn()


def shutdown_stream(raw: Any) -> None:
    """Unblock a thread reading a watch stream (closing alone would not wake it)."""
    shutdown = getattr(raw, "shutdown", None)
    if callable(shutdown):
        with contextlib.suppress(Exception):
            shutdown()
        return
    with contextlib.suppress(Exception):
        import socket

        raw.connection.sock.shutdown(socket.SHUT_RDWR)


def _status_error(op: str, status: int, data: bytes) -> KubernetesError:
    problem = _problem(status, data)
    if status == 404:
        return KubernetesNotFound(op, problem)
    if status == 409:
        return KubernetesConflict(op, problem)
    if status == 429 or status >= 500:
        return KubernetesUnavailable(op, problem, status=status)
    return KubernetesRejected(op, problem, status=status)


def api_client_from_kubeconfig(kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient from a kubeconfig file, or from the in-cluster ServiceAccount."""
    from kubernetes import config

    try:
        if kubeconfig:
            cfg = client.Configuration()
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=cfg
            )
            return client.ApiClient(cfg)
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return client.ApiClient(cfg)
    except (config.ConfigException, OSError, ValueError) as e:
        source = kubeconfig or "in-cluster ServiceAccount"
        raise LbManagerError(
            f"cannot load Kubernetes credentials from {source}: {e}", transient=False
        ) from e
