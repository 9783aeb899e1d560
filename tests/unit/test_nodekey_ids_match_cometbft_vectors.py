"""Node keys and IDs match CometBFT's own vectors; node_key.json round-trips like CometBFT's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.errors import InvalidNodeKey, WeakSecret
from discovery.nodekey import (
    NodeKey,
    decode_node_key,
    derive_node_key,
    encode_node_key,
    generate_node_key,
    insecure_node_id_from_moniker,
    insecure_node_key_from_moniker,
    node_id_from_public_key,
)
from tests.support.go_reference import go_node_id

# CometBFT v0.38.17, internal/test/config.go, `testPrivValidatorKey`: an ed25519
# key whose `address` (crypto.Address = first 20 bytes of SHA-256(pubkey), the
# same function p2p.PubKeyToID hex-encodes into a node ID) is given explicitly.
COMETBFT_PRIV_VALUE = (
    "EVkqJO/jIXp3rkASXfh9YnyToYXRXhBr6g9cQVxPFnQBP/5povV4HTjvsy530kybxKHwEi85iU8YL0qQhSYVoQ=="
)
COMETBFT_PUB_VALUE = "AT/+aaL1eB0477Mud9JMm8Sh8BIvOYlPGC9KkIUmFaE="
COMETBFT_ADDRESS = "A3258DCBF45DCA0DF052981870F2D1441A36D145"

# CometBFT v0.38.17, privval/msgs_test.go, TestPrivvalVectors:
# ed25519.GenPrivKeyFromSecret([]byte("it's a secret")) (seed = SHA-256(secret)) has
# this public key (inside the "pubKey response" bytes 12240a220a20<pubkey>).
COMETBFT_SECRET = b"it's a secret"
COMETBFT_SECRET_PUBKEY = "556a436f1218d30942efe798420f51dc9b6a311b929c578257457d05c5fcf230"


def cometbft_node_key_json(value: str) -> bytes:
    return json.dumps(
        {"priv_key": {"type": "tendermint/PrivKeyEd25519", "value": value}},
        separators=(",", ":"),
    ).encode()


def test_node_id_of_cometbft_test_key() -> None:
    key = decode_node_key(cometbft_node_key_json(COMETBFT_PRIV_VALUE))
    assert base64.b64encode(key.public_key).decode() == COMETBFT_PUB_VALUE
    assert key.node_id == COMETBFT_ADDRESS.lower()
    assert node_id_from_public_key(base64.b64decode(COMETBFT_PUB_VALUE)) == COMETBFT_ADDRESS.lower()


def test_public_key_from_seed_matches_cometbft_gen_priv_key_from_secret() -> None:
    key = NodeKey(hashlib.sha256(COMETBFT_SECRET).digest())
    assert key.public_key.hex() == COMETBFT_SECRET_PUBKEY


def test_encoding_is_byte_identical_to_cometbft_marshal() -> None:
    key = decode_node_key(cometbft_node_key_json(COMETBFT_PRIV_VALUE))
    # cmtjson.Marshal: compact, fields in struct order, no trailing newline.
    assert encode_node_key(key) == (
        b'{"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"'
        + COMETBFT_PRIV_VALUE.encode()
        + b'"}}'
    )


def test_indented_json_with_extra_fields_is_read() -> None:
    document = {
        "priv_key": {"type": "tendermint/PrivKeyEd25519", "value": COMETBFT_PRIV_VALUE},
        "comment": "ignored",
    }
    key = decode_node_key(json.dumps(document, indent=4).encode())
    assert key.node_id == COMETBFT_ADDRESS.lower()


def test_generated_keys_round_trip_and_differ() -> None:
    a, b = generate_node_key(), generate_node_key()
    assert a != b
    for key in (a, b):
        again = decode_node_key(encode_node_key(key))
        assert again == key
        assert len(key.node_id) == 40
        assert key.node_id == key.node_id.lower()
        int(key.node_id, 16)


def test_repr_never_shows_the_seed() -> None:
    key = decode_node_key(cometbft_node_key_json(COMETBFT_PRIV_VALUE))
    seed_b64 = base64.b64encode(key.seed).decode()
    assert key.seed.hex() not in repr(key)
    assert seed_b64 not in repr(key)


def _mismatched_value() -> str:
    raw = bytearray(base64.b64decode(COMETBFT_PRIV_VALUE))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"not json", "not a JSON document"),
        (b"\xff\xfe", "not a JSON document"),
        (b"[]", "priv_key"),
        (b'{"priv_key": "x"}', "priv_key"),
        (
            json.dumps(
                {"priv_key": {"type": "tendermint/PrivKeySecp256k1", "value": "AA=="}}
            ).encode(),
            "type",
        ),
        (json.dumps({"priv_key": {"type": "tendermint/PrivKeyEd25519"}}).encode(), "value"),
        (cometbft_node_key_json("***"), "base64"),
        (cometbft_node_key_json(base64.b64encode(b"x" * 32).decode()), "64 bytes"),
        (cometbft_node_key_json(_mismatched_value()), "does not belong"),
    ],
)
def test_malformed_node_key_files_are_rejected_without_echoing_them(
    data: bytes, fragment: str
) -> None:
    with pytest.raises(InvalidNodeKey) as info:
        decode_node_key(data)
    assert fragment in str(info.value)
    assert COMETBFT_PRIV_VALUE not in str(info.value)
    assert not info.value.transient


def test_derived_key_depends_on_secret_and_chain_only() -> None:
    secret = bytes(range(32))
    a = derive_node_key(secret, "consumer-1")
    assert derive_node_key(secret, "consumer-1") == a
    assert derive_node_key(secret, "consumer-2") != a
    assert derive_node_key(bytes(range(1, 33)), "consumer-1") != a


def test_derived_key_is_hkdf_sha256_with_the_documented_parameters() -> None:
    # RFC 5869 HKDF computed with the standard library, independently of `cryptography`.
    secret, chain_id = b"\x42" * 32, "consumer-1"
    prk = hmac.new(b"ics-discovery/node-key/v1", secret, hashlib.sha256).digest()
    info = b"consumer-node-key\x00" + chain_id.encode()
    okm = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
    assert derive_node_key(secret, chain_id).seed == okm


def test_all_chains_key_is_hkdf_with_its_own_info_and_unlike_any_chain_key() -> None:
    secret = b"\x42" * 32
    prk = hmac.new(b"ics-discovery/node-key/v1", secret, hashlib.sha256).digest()
    okm = hmac.new(prk, b"consumer-node-key/all-chains\x01", hashlib.sha256).digest()
    every_chain = derive_node_key(secret)
    assert every_chain.seed == okm
    assert derive_node_key(secret, None) == every_chain
    for chain_id in ("consumer-1", "all-chains", "x"):
        assert derive_node_key(secret, chain_id) != every_chain
    with pytest.raises(WeakSecret):
        derive_node_key(b"x" * 31)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(WeakSecret) as info:
        derive_node_key(b"x" * 31, "consumer-1")
    assert info.value.minimum == 32


# The Go implementation's node IDs (roylee17/monitor at b5b303d):
# internal/subnet/node_key_generator.go:24 seed = "ics-consumer-<moniker>-<chain ID>"
# (NodeIDPrefix, internal/subnet/constants.go:55), :27 hash = sha256.Sum256(seed),
# :30 ed25519.GenPrivKeyFromSecret(hash[:]), which in cometbft v0.38.17
# crypto/ed25519/ed25519.go:142-146 is NewKeyFromSeed(crypto.Sha256(secret));
# :47 nodeKey.ID() = hex(sha256(pubkey)[:20]) (p2p/key.go:44-46,
# crypto/ed25519/ed25519.go:156-161, crypto/tmhash/hash.go:74-77).
# Computed by running those steps in Go 1.26 with crypto/sha256 and crypto/ed25519
# (RFC 8032 NewKeyFromSeed, as curve25519-voi's), columns: moniker, chain ID,
# sha256(seed) (the "secret"), node ID.
GO_NODE_ID_VECTORS = [
    (
        "alice",
        "consumer-0-1751686503-0",
        "a72ffc7624e24849a00fe158263ccdffed7f37af25213f67eaabe20a20655d5a",
        "5bfa116e205beffbb67840c4a4d3d8e46da44a06",
    ),
    (
        "bob",
        "testchain-0",
        "4c0ebdb12fba9dd34e608d1a6d01d308f6d7f68bf045f37770fc4e222a14fe8a",
        "d91c8d78dc984199d7ef797db3c5657d2891246f",
    ),
    (
        "validator-1",
        "consumer-1",
        "da03a7728e2291a35d783dcf98d781a5725975404a73a8fdd204ca5f91bb5fd6",
        "6e07562a4f5927d844705624950a264febe272bf",
    ),
    (
        "\u00dcn\u00efcode moniker",
        "chain-\u00e9",
        "9b873d3ec65bbcf9dbbae8396eab6fd525599eb9f0e90a11f0753fb4deb2b024",
        "244ea271544660cd2a90eec9c2d5649c5851e8b9",
    ),
]


@pytest.mark.parametrize(("moniker", "chain_id", "secret", "node_id"), GO_NODE_ID_VECTORS)
def test_insecure_derivation_gives_the_go_node_id(
    moniker: str, chain_id: str, secret: str, node_id: str
) -> None:
    key = insecure_node_key_from_moniker(moniker, chain_id)
    seed = f"ics-consumer-{moniker}-{chain_id}".encode()
    assert hashlib.sha256(seed).hexdigest() == secret
    # GenPrivKeyFromSecret hashes the secret again: the ed25519 seed is sha256(secret).
    assert key.seed == hashlib.sha256(bytes.fromhex(secret)).digest()
    assert key.node_id == node_id
    assert insecure_node_id_from_moniker(moniker, chain_id) == node_id


def test_insecure_derivation_is_not_the_single_hash() -> None:
    # What this function used to compute (one SHA-256): not the Go node's key.
    single = NodeKey(hashlib.sha256(b"ics-consumer-alice-consumer-0-1751686503-0").digest())
    assert insecure_node_id_from_moniker("alice", "consumer-0-1751686503-0") != single.node_id


@settings(max_examples=100)
@given(st.text(max_size=40), st.text(min_size=1, max_size=40))
def test_insecure_derivation_follows_the_go_source(moniker: str, chain_id: str) -> None:
    # tests/support/go_reference.py translates the Go steps independently.
    try:
        expected = go_node_id(moniker, chain_id)
    except UnicodeEncodeError:
        return
    assert insecure_node_id_from_moniker(moniker, chain_id) == expected


@settings(max_examples=50)
@given(st.binary(min_size=32, max_size=32))
def test_node_id_is_sha256_prefix_of_public_key(seed: bytes) -> None:
    key = NodeKey(seed)
    assert key.node_id == hashlib.sha256(key.public_key).hexdigest()[:40]
    assert decode_node_key(encode_node_key(key)) == key


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33])
def test_seeds_must_be_32_bytes(bad: bytes) -> None:
    with pytest.raises(InvalidNodeKey):
        NodeKey(bad)
