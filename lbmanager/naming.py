"""Names, labels and annotations lbmanager writes, derived deterministically from chain keys.

Chain keys are opaque strings (in practice chain IDs, which may hold upper case,
dots, underscores and be 50 bytes long), but Service port names must be DNS
labels of at most 63 characters. A name is a readable, sanitised prefix plus a
hash of the exact key, so keys that sanitise to the same text ("Chain_A",
"chain.a") still get distinct names, and the same key always gets the same
name on every validator and every run.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Final

from .k8snames import DNS_LABEL_MAX
from .k8snames import is_dns_label as is_dns_label
from .k8snames import is_label_value as is_label_value
from .types import AddressFamily

DOMAIN: Final = "lbmanager.ics-discovery.io"

# Labels and annotations on the objects lbmanager writes.
MANAGED_BY_LABEL: Final = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = DOMAIN  # never the controller's "endpointslice-controller.k8s.io"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
OWNER_LABEL: Final = f"{DOMAIN}/owner"
KEY_HASH_LABEL: Final = f"{DOMAIN}/key-hash"
KEY_ANNOTATION: Final = f"{DOMAIN}/key"
PORTS_ANNOTATION: Final = f"{DOMAIN}/ports"
APP_MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
APP_MANAGED_BY_VALUE: Final = "ics-discovery"

# The Service selector that matches no pod: endpoints come only from our slices.
NON_MATCHING_SELECTOR: Final = {"this-will-not-match": "anything"}
PLACEHOLDER_PORT_NAME: Final = "placeholder"

HASH_CHARS: Final = 10  # 40 bits: distinct names for any realistic number of chains

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_SHARD_SUFFIX = re.compile(r"^-([1-9][0-9]{0,5})$")

FAMILY_SUFFIX: Final[dict[AddressFamily, str]] = {"IPv4": "v4", "IPv6": "v6"}


def sanitize(text: str) -> str:
    """Lower-case alphanumerics with single dashes: the readable part of a name."""
    return _NOT_ALNUM.sub("-", text.lower()).strip("-")


def digest(*parts: str, chars: int = HASH_CHARS) -> str:
    """Hex SHA-256 of the parts, unambiguous however the parts are split."""
    encoded = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:chars]


def _label_with_hash(readable: str, hash_: str, suffix: str = "") -> str:
    budget = DNS_LABEL_MAX - len(hash_) - len(suffix) - 1
    head = sanitize(readable)[:budget].rstrip("-")
    return f"{head}-{hash_}{suffix}" if head else f"{hash_}{suffix}"


def service_port_name(key: str, port_name: str) -> str:
    """Service port name for one named port of one chain (a DNS label, at most 63 chars)."""
    return _label_with_hash(f"{port_name}-{key}", digest("port", key, port_name))


def slice_name(service: str, key: str, family: AddressFamily) -> str:
    """EndpointSlice name for one chain and address family behind one Service."""
    return _label_with_hash(
        f"{service}-{key}", digest("slice", service, key), f"-{FAMILY_SUFFIX[family]}"
    )


def key_hash(key: str) -> str:
    """Label-safe stand-in for a key that may not be a valid label value."""
    return digest("key", key, chars=40)


def shard_service_name(base: str, index: int) -> str:
    """`base` for shard 0, `base-1`, `base-2`, ... after it."""
    return base if index == 0 else f"{base}-{index}"


def shard_index(base: str, name: str) -> int | None:
    """Inverse of `shard_service_name`; None for names that are not shards of `base`."""
    if name == base:
        return 0
    if not name.startswith(base):
        return None
    m = _SHARD_SUFFIX.match(name[len(base) :])
    return int(m.group(1)) if m else None
