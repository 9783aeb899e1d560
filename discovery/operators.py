"""Peers for node resources of Kubernetes operators: what to write, decided from plain data.

Validators who run their consumer nodes with an operator keep the peers in the
operator's node resource; the operator renders them into `config.toml` and
rolls its pods its own way. Two operators are supported:

- cosmos-operator (`CosmosFullNode`, `cosmos.strange.love/v1`): the chain ID is
  `spec.chain.chainID`; the peers are `spec.chain.config.peers`, one string of
  comma-separated `id@host:port` entries (the CRD requires it non-empty when
  present, so "no peers" removes the field).
- cosmopilot (`ChainNode` and `ChainNodeSet`, `cosmopilot.voluzi.com/v1`): the
  chain ID is `spec.genesis.chainID` or, once the operator has seen the
  genesis, `status.chainID`; the peers are a list of `{id, address, port}`, at
  `spec.peers` of a ChainNode and at `spec.nodes[].peers` of every group of a
  ChainNodeSet (the set copies each group's peers into the ChainNodes it owns,
  so those children are never written). cosmopilot renders a peer as
  `id@address:port`, so an IPv6 address is written in brackets.

Which entries are ours: the resource's annotation `ics-discovery.io/peers`
lists the node IDs of the entries we wrote last time. An entry whose node ID is
listed there is ours and is replaced by the current peers; every other entry was
put there by someone else (a hand-added sentry, a snapshot peer) and is kept
as it is, in its place. A hand entry with the node ID of one of our peers wins:
we do not add a second entry for that node (in a ChainNodeSet, in any group: the
annotation covers the whole resource). Ours follow the hand entries, in
the order of `persistent_peers`. Nothing is written when the result equals
what the resource holds, so a resync changes nothing and the operator sees no
spurious edit.

Everything here is pure; `discovery.operator_notify` reads and patches.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from discovery.errors import DiscoveryError
from discovery.peers import check_peer_entry, join_peers, split_peers
from lbmanager.paths import custom_resource_path

OWNED_PEERS_ANNOTATION: Final = "ics-discovery.io/peers"


class OperatorResourceError(DiscoveryError):
    """A node resource cannot hold our peers as it is (permanent until someone fixes it)."""

    def __init__(self, resource: str, problem: str) -> None:
        self.resource = resource
        self.problem = problem
        super().__init__(f"{resource}: {problem}")


@dataclass(frozen=True)
class ResourceKind:
    """One kind of node resource: where it lives in the API and which operator owns it."""

    target: str
    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def path(self, namespace: str | None, name: str | None = None) -> str:
        """The collection (all namespaces when `namespace` is None) or one object's path."""
        return custom_resource_path(self.group, self.version, self.plural, namespace, name)


COSMOS_OPERATOR: Final = "cosmos-operator"
COSMOPILOT: Final = "cosmopilot"

COSMOS_FULL_NODE: Final = ResourceKind(
    COSMOS_OPERATOR, "cosmos.strange.love", "v1", "cosmosfullnodes", "CosmosFullNode"
)
CHAIN_NODE: Final = ResourceKind(
    COSMOPILOT, "cosmopilot.voluzi.com", "v1", "chainnodes", "ChainNode"
)
CHAIN_NODE_SET: Final = ResourceKind(
    COSMOPILOT, "cosmopilot.voluzi.com", "v1", "chainnodesets", "ChainNodeSet"
)

# The kinds each target looks for, in the order they are tried.
TARGET_KINDS: Final[Mapping[str, tuple[ResourceKind, ...]]] = {
    COSMOS_OPERATOR: (COSMOS_FULL_NODE,),
    COSMOPILOT: (CHAIN_NODE_SET, CHAIN_NODE),
}


def kind_by_name(target: str, name: str) -> ResourceKind | None:
    """The kind of `target` called `name` (kind or plural, any case), or None."""
    for kind in TARGET_KINDS.get(target, ()):
        if name.lower() in (kind.kind.lower(), kind.plural):
            return kind
    return None


# --- reading resources -----------------------------------------------------------


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def resource_name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def chain_id_of(kind: ResourceKind, obj: Mapping[str, Any]) -> str | None:
    """The chain a node resource runs, or None when it does not say."""
    if kind is COSMOS_FULL_NODE:
        value = _get(obj, "spec", "chain", "chainID")
    else:
        value = _get(obj, "spec", "genesis", "chainID") or _get(obj, "status", "chainID")
    return value if isinstance(value, str) and value else None


def owned_by_node_set(obj: Mapping[str, Any]) -> bool:
    """Whether a ChainNode belongs to a ChainNodeSet (which rewrites its spec)."""
    refs = _get(obj, "metadata", "ownerReferences")
    if not isinstance(refs, list):
        return False
    return any(
        isinstance(r, Mapping)
        and r.get("kind") == CHAIN_NODE_SET.kind
        and str(r.get("apiVersion", "")).startswith(CHAIN_NODE_SET.group + "/")
        for r in refs
    )


def candidates(
    kind: ResourceKind, items: Sequence[Mapping[str, Any]], chain_id: str
) -> list[Mapping[str, Any]]:
    """The resources of `kind` that run `chain_id` and that we may write, sorted by name."""
    out = [
        o
        for o in items
        if chain_id_of(kind, o) == chain_id
        and not (kind is CHAIN_NODE and owned_by_node_set(o))
        and not _get(o, "metadata", "deletionTimestamp")
    ]
    return sorted(out, key=resource_name)


def owned_ids(obj: Mapping[str, Any]) -> frozenset[str]:
    """Node IDs our annotation says we wrote (lower case; junk ignored)."""
    text = _get(obj, "metadata", "annotations", OWNED_PEERS_ANNOTATION)
    if not isinstance(text, str):
        return frozenset()
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


def _entry_id(entry: str) -> str:
    return entry.partition("@")[0].strip().lower()


# --- planning --------------------------------------------------------------------


@dataclass(frozen=True)
class PeersPlan:
    """What to do with one node resource.

    `patch` is a JSON merge patch (None: the resource already carries our
    peers); it names the resourceVersion it was computed from, so a write
    racing another writer fails with a conflict instead of losing its change.
    """

    resource: str
    patch: dict[str, Any] | None
    ours: tuple[str, ...]
    hand: int

    @property
    def current(self) -> bool:
        return self.patch is None


def _split_entry(entry: str) -> tuple[str, str, int]:
    """`id@host:port` (already checked) as (id, address, port); IPv6 keeps its brackets."""
    node_id, _, address = entry.partition("@")
    host, _, port = address.rpartition(":")
    return node_id, host, int(port)


def _merge_strings(current: str, entries: Sequence[str], owned: frozenset[str]) -> tuple[str, ...]:
    hand = [e for e in split_peers(current) if _entry_id(e) not in owned]
    taken = {_entry_id(e) for e in hand}
    return (*hand, *(e for e in entries if _entry_id(e) not in taken))


def _merge_records(
    current: Sequence[Any],
    entries: Sequence[str],
    owned: frozenset[str],
    taken_elsewhere: frozenset[str] = frozenset(),
) -> list[Any]:
    hand = [p for p in current if _record_id(p) not in owned]
    taken = {_record_id(p) for p in hand} | taken_elsewhere
    ours = []
    for entry in entries:
        node_id, address, port = _split_entry(entry)
        if node_id not in taken:
            ours.append({"id": node_id, "address": address, "port": port})
    return [*hand, *ours]


def _written_ids(entries: Sequence[str], hand_ids: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted({_entry_id(e) for e in entries} - hand_ids))


def _annotation_patch(obj: Mapping[str, Any], ours: tuple[str, ...]) -> dict[str, Any] | None:
    want = ",".join(ours) if ours else None
    have = _get(obj, "metadata", "annotations", OWNED_PEERS_ANNOTATION)
    if have == want:
        return None
    return {OWNED_PEERS_ANNOTATION: want}


def plan_peers(kind: ResourceKind, obj: Mapping[str, Any], entries: Sequence[str]) -> PeersPlan:
    """The merge patch that puts `entries` into `obj` as ours, keeping everything else.

    `entries` are the chain's `persistent_peers` entries; each is checked as
    CometBFT checks it (`InvalidPeerEntry` otherwise) before it can be written.
    Raises `OperatorResourceError` when a field on the way has the wrong type.
    """
    for entry in entries:
        check_peer_entry(entry)
    entries = list(dict.fromkeys(entries))
    name = f"{kind.kind} {resource_name(obj)}"
    owned = owned_ids(obj)
    spec_patch: dict[str, Any] | None
    if kind is COSMOS_FULL_NODE:
        current = _get(obj, "spec", "chain", "config", "peers")
        if current is not None and not isinstance(current, str):
            raise OperatorResourceError(name, "spec.chain.config.peers is not a string")
        for parent in (("spec", "chain"), ("spec", "chain", "config")):
            value = _get(obj, *parent)
            if value is not None and not isinstance(value, Mapping):
                raise OperatorResourceError(name, f"{'.'.join(parent)} is not an object")
        have_entries = split_peers(current)
        hand = [e for e in have_entries if _entry_id(e) not in owned]
        hand_ids = frozenset(_entry_id(e) for e in hand)
        merged = _merge_strings(current or "", entries, owned)
        spec_patch = (
            None
            if merged == have_entries
            else {"chain": {"config": {"peers": join_peers(merged) or None}}}
        )
        hand_count = len(hand)
    elif kind is CHAIN_NODE:
        current_list = _get(obj, "spec", "peers")
        if current_list is not None and not isinstance(current_list, list):
            raise OperatorResourceError(name, "spec.peers is not a list")
        merged_list = _merge_records(current_list or [], entries, owned)
        hand_records = [p for p in (current_list or []) if _record_id(p) not in owned]
        hand_ids = frozenset(_record_id(p) for p in hand_records)
        spec_patch = None if merged_list == (current_list or []) else {"peers": merged_list or None}
        hand_count = len(hand_records)
    elif kind is CHAIN_NODE_SET:
        groups = _get(obj, "spec", "nodes")
        if not isinstance(groups, list) or not all(isinstance(g, Mapping) for g in groups):
            raise OperatorResourceError(name, "spec.nodes is not a list of groups")
        for group in groups:
            peers = group.get("peers")
            if peers is not None and not isinstance(peers, list):
                raise OperatorResourceError(
                    name, f"spec.nodes[{group.get('name', '?')}].peers is not a list"
                )
        hand_records = [
            p for g in groups for p in (g.get("peers") or []) if _record_id(p) not in owned
        ]
        hand_count = len(hand_records)
        # A hand entry for one of our nodes, in any group, wins in every group: the
        # annotation says which node IDs are ours for the whole resource.
        hand_ids = frozenset(_record_id(p) for p in hand_records)
        new_groups: list[Any] = []
        for group in groups:
            peers = group.get("peers")
            merged_list = _merge_records(peers or [], entries, owned, hand_ids)
            updated = copy.deepcopy(dict(group))
            if merged_list:
                updated["peers"] = merged_list
            else:
                updated.pop("peers", None)
            new_groups.append(updated)
        spec_patch = None if new_groups == groups else {"nodes": new_groups}
    else:  # pragma: no cover - the kinds are the constants above
        raise OperatorResourceError(name, f"unknown kind {kind.kind}")
    ours = _written_ids(entries, hand_ids)
    annotations = _annotation_patch(obj, ours)
    if spec_patch is None and annotations is None:
        return PeersPlan(name, None, ours, hand_count)
    meta: dict[str, Any] = {}
    version = _get(obj, "metadata", "resourceVersion")
    if isinstance(version, str) and version:
        meta["resourceVersion"] = version
    if annotations is not None:
        meta["annotations"] = annotations
    patch: dict[str, Any] = {"metadata": meta}
    if spec_patch is not None:
        patch["spec"] = spec_patch
    return PeersPlan(name, patch, ours, hand_count)


def _record_id(record: Any) -> str:
    if not isinstance(record, Mapping):
        return ""
    return str(record.get("id", "")).strip().lower()


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the API server does with one). Pure; for tests and checks."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out
