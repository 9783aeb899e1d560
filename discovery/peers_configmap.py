"""The per-chain peers ConfigMap's exact content. Pure.

The consumer node reads its `persistent_peers` from a ConfigMap in its own
namespace. `build_peers_configmap` decides that ConfigMap from plain data,
byte-for-byte deterministic, every entry re-checked as CometBFT checks it;
`configmap_update` decides what to write over an existing one, keeping foreign
labels and annotations. Writing is `discovery.configmap_control`'s job.

Objects are found by the pod convention of `lbmanager.consumer_pods` (label
`ics-discovery.io/chain-id-hash`, annotation `ics-discovery.io/chain-id`) and
only objects labelled `app.kubernetes.io/managed-by: ics-discovery` are ours.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from discovery.errors import DiscoveryError, InvalidPort
from discovery.peers import hash_persistent_peers, join_peers
from discovery.state import LeftOutRecord, PeerRecord
from discovery.types import parse_chain_id
from lbmanager.consumer_pods import POD_KEY_ANNOTATION, POD_KEY_HASH_LABEL
from lbmanager.naming import key_hash
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
    persistent_peers = join_peers(entries)
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
    peers_hash = hash_persistent_peers(persistent_peers)
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
