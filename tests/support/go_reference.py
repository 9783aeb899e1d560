"""Line-by-line Python translations of the Go implementation's code, as test oracles.

The Go implementation (public repository roylee17/monitor, later
sourcenetwork/ics-operator, read at commit b5b303d) is what validators of a
mixed fleet run beside us. These functions follow its source statement by
statement, independently of the product code, so tests can check that what we
publish is read as we mean it and that we derive what it derives. Each cites
the file and lines it follows.
"""

from __future__ import annotations

import hashlib
import unicodedata

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _go_is_space(ch: str) -> bool:
    """Go's unicode.IsSpace (go/src/unicode/graphic.go): Latin-1 list, else White_Space."""
    if ord(ch) <= 0xFF:
        return ch in "\t\n\v\f\r \x85\xa0"
    # Outside Latin-1 the White_Space property is exactly categories Zs, Zl, Zp.
    return unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def go_trim_space(s: str) -> str:
    """strings.TrimSpace."""
    start = 0
    while start < len(s) and _go_is_space(s[start]):
        start += 1
    stop = len(s)
    while stop > start and _go_is_space(s[stop - 1]):
        stop -= 1
    return s[start:stop]


def go_extract_p2p_endpoint(details: str) -> str:
    """`(*ValidatorRegistry).extractP2PEndpoint`, internal/monitor/validator_registry.go:68-108."""
    lines = details.split("\n")  # line 70: strings.Split(desc.Details, "\n")
    for line in lines:  # line 71
        line = go_trim_space(line)  # line 72
        idx = line.find("p2p=")  # line 74: strings.Index(line, "p2p=")
        if idx != -1:
            endpoint = line[idx + 4 :]  # line 76
            endpoint = go_trim_space(endpoint)  # line 77
            idx = endpoint.rfind(":")  # line 80: strings.LastIndex(endpoint, ":")
            if idx != -1:
                endpoint = endpoint[:idx]  # line 81
            return endpoint  # line 84
    if '"p2p":' in details:  # line 89
        start = details.find('"p2p":"') + 7  # line 91
        if start > 6:  # line 92
            end = details[start:].find('"')  # line 93
            if end > 0:  # line 94
                endpoint = details[start : start + end]  # line 95
                idx = endpoint.rfind(":")  # line 98
                if idx != -1:
                    endpoint = endpoint[:idx]  # line 99
                return endpoint  # line 102
    return ""  # line 107


def go_peer_entry(node_id: str, endpoint: str, port: int) -> str:
    """The peer Go builds, internal/subnet/peer_discovery.go:207-215.

    `host` is the endpoint cut at its last `:` once more (lines 208-212), then
    `fmt.Sprintf("%s@%s:%d", nodeID, host, consumerP2PPort)` (line 215).
    """
    host = endpoint
    idx = endpoint.rfind(":")
    if idx != -1:
        host = endpoint[:idx]
    return f"{node_id}@{host}:{port}"


def go_node_id(validator_name: str, chain_id: str) -> str:
    """`(*NodeKeyGenerator).GetNodeID`, internal/subnet/node_key_generator.go:22-48.

    seed = "ics-consumer-<name>-<chain ID>" (line 24; NodeIDPrefix is
    "ics-consumer", internal/subnet/constants.go:55), hash = sha256(seed)
    (line 27), key = ed25519.GenPrivKeyFromSecret(hash) (line 30), which in
    cometbft v0.38.17 crypto/ed25519/ed25519.go:142-146 is
    NewKeyFromSeed(crypto.Sha256(secret)); the ID is hex of the first 20 bytes
    of sha256(public key) (p2p/key.go:44-46, crypto/ed25519/ed25519.go:156-161,
    crypto/tmhash/hash.go:74-77).
    """
    seed = f"ics-consumer-{validator_name}-{chain_id}"
    hashed = hashlib.sha256(seed.encode("utf-8")).digest()
    ed25519_seed = hashlib.sha256(hashed).digest()
    public = (
        Ed25519PrivateKey.from_private_bytes(ed25519_seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return hashlib.sha256(public).digest()[:20].hex()


# internal/subnet/ports.go:45-52
GO_RESERVED_PORTS = (
    (0, 1023, "System ports"),
    (3000, 3000, "Common development servers"),
    (5432, 5432, "PostgreSQL"),
    (6379, 6379, "Redis"),
    (8080, 8080, "HTTP alternate"),
    (27017, 27017, "MongoDB"),
)


def go_calculate_ports(chain_id: str) -> dict[str, int] | None:
    """`CalculatePorts`, internal/subnet/ports.go:99-124; None where Go returns an error.

    Offset = BigEndian.Uint64(sha256(chainID)[:8]) % 1000 (lines 101-107);
    port = base + 100 + 10*offset (lines 111-116, constants lines 14-26); then
    `ValidatePorts` (lines 65-96): every port in 1024..65535
    (internal/constants/ports.go:6-7), none in a reserved range, no two equal.
    """
    digest = hashlib.sha256(chain_id.encode("utf-8")).digest()
    offset = int.from_bytes(digest[:8], "big") % 1000
    ports = {
        "p2p": 26656 + 100 + offset * 10,
        "rpc": 26657 + 100 + offset * 10,
        "grpc": 9090 + 100 + offset * 10,
        "grpc_web": 9091 + 100 + offset * 10,
    }
    for port in ports.values():
        if not 1024 <= port <= 65535:
            return None
        if any(start <= port <= end for start, end, _ in GO_RESERVED_PORTS):
            return None
    if len(set(ports.values())) != len(ports):
        return None
    return ports
