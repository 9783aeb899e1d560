"""Telling a consumer node its peers changed: by rolling its workload, or by `dial_peers`.

In `restart` mode `RestartNotifier` puts the peers hash on the pod template of
every Deployment/StatefulSet that runs the chain (decided in
`discovery.workloads`), so Kubernetes rolls it and the new pod reads the new
ConfigMap.

In `dial` mode (no restart) the service calls the consumer node's unsafe RPC method
`dial_peers` with the full list and `persistent=true`. That call REPLACES the
node's in-memory persistent-peer list and cannot remove a connected peer, so it
is only worth making to a node that is up and in sync: the node's `/status`
must answer, serve the chain we mean (a pod IP reused by another chain's node
must not get our peers), and not be catching up. An empty list is never sent
(CometBFT refuses it, and "no peers" must not wipe the node's own list). The
decisions are pure; the requests are plain HTTP JSON-RPC to the pod's RPC port
in a worker thread, with no proxy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from chainmonitor.faults import TRANSPORT_ERRORS, classify, http_status_transient
from discovery.errors import DiscoveryError, KubernetesWriteError, quote_untrusted
from discovery.peers import check_peer_entry
from discovery.workloads import (
    WORKLOAD_KINDS,
    NotifyReport,
    WorkloadRef,
    out_of_scope,
    restart_refusal,
    runs_chain,
    with_peers_hash,
)
from lbmanager.errors import LbManagerError
from lbmanager.kube import KubeRest, retry_on_conflict
from lbmanager.paths import workload_path
from lbmanager.types import RawObject

DEFAULT_TIMEOUT: Final = 5.0
_BODY_LIMIT: Final = 1_000_000


class NotifyError(DiscoveryError):
    """A consumer node could not be told; `transient` says whether trying again can help."""

    def __init__(self, target: str, problem: str, *, transient: bool) -> None:
        self.target = target
        self.problem = problem
        self.transient = transient  # type: ignore[misc]
        super().__init__(f"consumer node {target}: {problem}")


@dataclass(frozen=True)
class NodeStatus:
    """What `/status` says about a CometBFT node."""

    node_id: str
    network: str
    height: int
    catching_up: bool


def parse_status(doc: Any, target: str = "node") -> NodeStatus:
    """Read a `/status` JSON-RPC answer. Pure; `NotifyError` (permanent) when malformed."""
    try:
        result = doc["result"]
        info, sync = result["node_info"], result["sync_info"]
        catching_up = sync["catching_up"]
        if not isinstance(catching_up, bool):
            raise TypeError("catching_up is not a boolean")
        return NodeStatus(
            node_id=str(info["id"]),
            network=str(info["network"]),
            height=int(sync["latest_block_height"]),
            catching_up=catching_up,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise NotifyError(target, f"/status answer is malformed ({e})", transient=False) from e


def dial_refusal(status: NodeStatus, chain_id: str, entries: Sequence[str]) -> str | None:
    """Why not to dial this node now (None: dial). Pure."""
    if not entries:
        return "no peers to dial (dial_peers refuses an empty list and cannot remove peers)"
    if status.network != chain_id:
        return (
            f"the node serves chain {quote_untrusted(status.network)}, "
            f"not {quote_untrusted(chain_id)}"
        )
    if status.catching_up:
        return "the node is catching up"
    return None


def dial_request(entries: Sequence[str], request_id: int = 1) -> bytes:
    """The JSON-RPC body for `dial_peers` (persistent, not unconditional, not private).

    Every entry is checked as CometBFT would check it before it leaves here.
    """
    for entry in entries:
        check_peer_entry(entry)
    doc = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "dial_peers",
        "params": {
            "peers": list(entries),
            "persistent": True,
            "unconditional": False,
            "private": False,
        },
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("ascii")


def rpc_base(ip: str, port: int) -> str:
    """`http://ip:port` for a pod IP (IPv6 in brackets)."""
    address = ipaddress.ip_address(ip)
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}"


class DialOutcome(StrEnum):
    DIALED = "dialed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class DialResult:
    outcome: DialOutcome
    detail: str = ""


class PeerDialer:
    """Dials consumer nodes' RPC (blocking HTTP in worker threads)."""

    def __init__(self, rpc_port: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.rpc_port = rpc_port
        self.timeout = timeout
        # No proxies: pod IPs are reached directly.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    async def dial(self, ip: str, chain_id: str, entries: Sequence[str]) -> DialResult:
        """Ask the node at `ip` for `/status`, then dial `entries` when it is safe to."""
        return await asyncio.to_thread(self._dial, ip, chain_id, tuple(entries))

    def _dial(self, ip: str, chain_id: str, entries: tuple[str, ...]) -> DialResult:
        try:
            base = rpc_base(ip, self.rpc_port)
        except ValueError as e:
            raise NotifyError(quote_untrusted(ip), "not an IP address", transient=False) from e
        status = parse_status(self._call(base, "GET", "/status", None), base)
        refusal = dial_refusal(status, chain_id, entries)
        if refusal is not None:
            return DialResult(DialOutcome.SKIPPED, refusal)
        answer = self._call(base, "POST", "/", dial_request(entries))
        error = answer.get("error") if isinstance(answer, dict) else None
        if error:
            raise NotifyError(
                base, f"dial_peers refused: {_rpc_error_text(error)}", transient=False
            )
        return DialResult(DialOutcome.DIALED, f"{len(entries)} peers")

    def _call(self, base: str, method: str, path: str, body: bytes | None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(base + path, data=body, method=method, headers=headers)  # noqa: S310 - http only, built by rpc_base
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                data = resp.read(_BODY_LIMIT)
        except urllib.error.HTTPError as e:
            # CometBFT answers JSON-RPC errors with HTTP 500 and a JSON body.
            transient = http_status_transient(e.code)
            try:
                doc = json.loads(e.read(_BODY_LIMIT))
            except (*TRANSPORT_ERRORS, ValueError):
                raise NotifyError(base, f"{path}: HTTP {e.code}", transient=transient) from e
            if isinstance(doc, dict) and doc.get("error"):
                return doc
            raise NotifyError(base, f"{path}: HTTP {e.code}", transient=transient) from e
        except TRANSPORT_ERRORS as e:
            # Refused, reset, cut mid-answer, garbage instead of HTTP (BadStatusLine):
            # a node restarting or a network fault, never a reason to stop the loop.
            fault = classify(e)
            reason = fault.reason if fault is not None else type(e).__name__
            transient = fault.transient if fault is not None else True
            raise NotifyError(base, f"{path}: not reachable ({reason})", transient=transient) from e
        try:
            return json.loads(data)
        except ValueError as e:
            # A cut or garbled body: the node may answer whole next time.
            raise NotifyError(base, f"{path}: the answer is not JSON", transient=True) from e


def _rpc_error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return quote_untrusted(str(error))
    message = str(error.get("message", ""))
    data = str(error.get("data", ""))
    if error.get("code") == -32601:
        return "method not found: enable [rpc] unsafe = true on the consumer node for dial mode"
    return quote_untrusted(f"{message}: {data}" if data else message, 200)


# --- restart mode: roll the workload --------------------------------------


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
        `failed`. Listing the workloads failing raises `KubernetesWriteError`.
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
        for kind in WORKLOAD_KINDS:
            try:
                items, _ = self.rest.list(workload_path(kind, namespace))
            except LbManagerError as e:
                raise KubernetesWriteError.of(
                    f"list {kind}s in {namespace or 'every namespace'}", e
                ) from e
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
                except KubernetesWriteError as e:
                    failed.append((ref, e.problem))
                    continue
                (restarted if changed else unchanged).append(ref)
        return NotifyReport(tuple(restarted), tuple(unchanged), tuple(refused), tuple(failed))

    def _roll(self, ref: WorkloadRef, obj: RawObject, peers_hash: str) -> bool:
        path = workload_path(ref.kind, ref.namespace, ref.name)

        def attempt(n: int) -> bool:
            # After a conflict the workload changed in between: re-read, re-decide.
            current = obj if n == 0 else self.rest.get(path)
            if current is None:
                return False  # deleted in between: nothing left to restart
            updated = with_peers_hash(current, peers_hash)
            if updated is None:
                return False
            self.rest.replace(path, updated)
            self.writes[ref.kind] += 1
            return True

        try:
            return retry_on_conflict(str(ref), attempt)
        except LbManagerError as e:
            raise KubernetesWriteError.of(str(ref), e) from e


def _object_key(obj: RawObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))
