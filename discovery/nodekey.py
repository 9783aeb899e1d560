"""Consumer node keys: ed25519 keys in CometBFT's `node_key.json` format, and their node IDs.

A peer string names a node by its ID, so the service must know (and for its
own nodes, control) the key behind it. Keys are generated at random, or derived
from a validator's own secret and the chain ID so a redeployed node keeps its
ID without storing the key anywhere new. The Go implementation's derivation
from public data (moniker and chain ID) is here only under an `insecure_` name,
for networks that already use it: anyone can recompute those private keys.
Pure: encoding and decoding work on bytes; writing files (mode 0600) is the
caller's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from discovery.errors import InvalidNodeKey, WeakSecret
from discovery.types import NodeId, parse_chain_id

# Amino JSON type name CometBFT (v0.34..v0.38) writes and reads for ed25519 private keys.
PRIV_KEY_TYPE = "tendermint/PrivKeyEd25519"
SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
# CometBFT's crypto.AddressSize: a node ID is this many bytes of SHA-256(public key).
NODE_ID_BYTES = 20
# Below this a secret could be guessed, and with it every node key derived from it.
MIN_SECRET_BYTES = 32

_HKDF_SALT = b"ics-discovery/node-key/v1"
_HKDF_INFO = b"consumer-node-key\x00"
# No chain ID can produce this (a chain ID is not empty and has no NUL).
_HKDF_INFO_ALL_CHAINS = b"consumer-node-key/all-chains"


@dataclass(frozen=True)
class NodeKey:
    """An ed25519 node key, held as its 32-byte seed (never shown by `repr`)."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != SEED_BYTES:
            raise InvalidNodeKey(f"an ed25519 seed is {SEED_BYTES} bytes")

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte ed25519 public key."""
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        return private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def node_id(self) -> NodeId:
        """CometBFT's node ID for this key."""
        return node_id_from_public_key(self.public_key)


def node_id_from_public_key(public_key: bytes) -> NodeId:
    """Lower-case hex of the first 20 bytes of SHA-256(public key), as CometBFT computes it."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise InvalidNodeKey(f"an ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
    return NodeId(hashlib.sha256(public_key).digest()[:NODE_ID_BYTES].hex())


def generate_node_key() -> NodeKey:
    """A fresh random node key (from the operating system's CSPRNG)."""
    private = Ed25519PrivateKey.generate()
    return NodeKey(
        private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )


def normalize_secret(raw: bytes) -> bytes:
    """A secret as read from a file or variable: one trailing newline (\\n or \\r\\n) dropped.

    Files written by `echo`, an editor or `openssl rand -hex 32 > file` end in a
    newline that is not part of the secret; the CLI and the service must derive
    the same key from the same file, so both read secrets through this.
    """
    if raw.endswith(b"\r\n"):
        return raw[:-2]
    if raw.endswith(b"\n"):
        return raw[:-1]
    return raw


def secret_from_environment(value: str) -> bytes:
    """A secret from an environment variable: its bytes exactly as set (`os.fsencode`
    undoes the surrogate escapes of non-UTF-8 bytes), read like a secret file."""
    return normalize_secret(os.fsencode(value))


def derive_node_key(secret: bytes, chain_id: str | None = None) -> NodeKey:
    """A node key that depends only on a validator's secret (and, if given, the chain ID).

    HKDF-SHA256 (RFC 5869) with a fixed, versioned salt and the chain ID in
    `info`: one secret gives every consumer chain its own unrelated key, and
    nobody without the secret can compute any of them. Without a chain ID the
    result is the validator's one key for all its consumer nodes: the on-chain
    endpoint carries a single `node=`, so this is the key whose ID the service
    publishes (`node_key_secret_env`).
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise WeakSecret(len(secret), MIN_SECRET_BYTES)
    if chain_id is None:
        info = _HKDF_INFO_ALL_CHAINS
    else:
        info = _HKDF_INFO + parse_chain_id(chain_id).encode("utf-8")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=SEED_BYTES, salt=_HKDF_SALT, info=info)
    return NodeKey(hkdf.derive(secret))


def insecure_node_key_from_moniker(moniker: str, chain_id: str) -> NodeKey:
    """INSECURE: the Go implementation's node key for `moniker` on `chain_id`.

    `hash = SHA-256("ics-consumer-<moniker>-<chain_id>")`, then CometBFT's
    `ed25519.GenPrivKeyFromSecret(hash)`, which hashes once more: the ed25519
    seed is `SHA-256(hash)` (roylee17/monitor at b5b303d,
    internal/subnet/node_key_generator.go lines 24-30; cometbft v0.38.17
    crypto/ed25519/ed25519.go lines 142-146). Monikers and chain IDs are
    public, so anyone can compute this private key and impersonate the node.
    Use only to interoperate with networks that already derive keys this way,
    never by default. The moniker is used exactly as on chain (not trimmed).
    """
    try:
        material = f"ics-consumer-{moniker}-{chain_id}".encode()
    except UnicodeEncodeError as e:
        raise InvalidNodeKey("moniker and chain ID must be valid UTF-8") from e
    secret = hashlib.sha256(material).digest()
    return NodeKey(hashlib.sha256(secret).digest())


def insecure_node_id_from_moniker(moniker: str, chain_id: str) -> NodeId:
    """INSECURE: the node ID another validator has under the Go implementation's derivation."""
    return insecure_node_key_from_moniker(moniker, chain_id).node_id


def encode_node_key(key: NodeKey) -> bytes:
    """`node_key.json` exactly as CometBFT writes it (compact JSON, no trailing newline)."""
    value = base64.b64encode(key.seed + key.public_key).decode("ascii")
    document = {"priv_key": {"type": PRIV_KEY_TYPE, "value": value}}
    return json.dumps(document, separators=(",", ":")).encode("ascii")


def decode_node_key(data: bytes) -> NodeKey:
    """Read a `node_key.json` document; its public half must match its seed.

    CometBFT computes the node ID from the stored public half without checking
    it, so a file whose halves disagree would give a node ID nobody can prove;
    such a file is rejected as corrupt.
    """
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidNodeKey("not a JSON document") from e
    priv = document.get("priv_key") if isinstance(document, dict) else None
    if not isinstance(priv, dict):
        raise InvalidNodeKey('missing "priv_key" object')
    if priv.get("type") != PRIV_KEY_TYPE:
        raise InvalidNodeKey(f'"priv_key.type" must be {PRIV_KEY_TYPE!r}')
    value = priv.get("value")
    if not isinstance(value, str):
        raise InvalidNodeKey('"priv_key.value" must be a base64 string')
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidNodeKey('"priv_key.value" is not valid base64') from e
    if len(raw) != SEED_BYTES + PUBLIC_KEY_BYTES:
        raise InvalidNodeKey(
            f'"priv_key.value" must hold {SEED_BYTES + PUBLIC_KEY_BYTES} bytes, not {len(raw)}'
        )
    key = NodeKey(raw[:SEED_BYTES])
    if key.public_key != raw[SEED_BYTES:]:
        raise InvalidNodeKey("the stored public key does not belong to the stored seed")
    return key
