"""Bech32 addresses of the Cosmos SDK, and the conversions between a validator's addresses.

An edit event names the signer's account (`cosmos1...`), the registry keys
validators by operator address (`cosmosvaloper1...`, same bytes), and opted-in
sets list consensus addresses (`cosmosvalcons1...`, hashed from the consensus
key); these pure functions move between them without a chain round trip.
"""

from __future__ import annotations

import hashlib
from typing import Final, NewType

import bech32

from chainmonitor.errors import InvalidChainData

AccountAddress = NewType("AccountAddress", str)
OperatorAddress = NewType("OperatorAddress", str)
ConsensusAddress = NewType("ConsensusAddress", str)

# BIP-173's 90-character limit; the Cosmos SDK allows up to 1023 (its
# DecodeToBase256WithLimit), so the `bech32` package's own decoder, which stops
# at 90, is not used: its checksum and bit conversion are.
_MAX_LENGTH: Final = 1023

ED25519_TYPE_URL: Final = "/cosmos.crypto.ed25519.PubKey"
SECP256K1_TYPE_URL: Final = "/cosmos.crypto.secp256k1.PubKey"


def bech32_encode(hrp: str, payload: bytes) -> str:
    """BIP-173 bech32 string of `payload` with human-readable part `hrp`."""
    five = bech32.convertbits(payload, 8, 5, pad=True)
    assert five is not None  # eight-bit input always converts with padding
    return bech32.bech32_encode(hrp, five)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """Human-readable part and payload of a bech32 string; InvalidChainData when it is not one."""
    if len(text) > _MAX_LENGTH or not text.isascii():
        raise InvalidChainData(f"address {text[:80]!r}", "not a bech32 string")
    if text.lower() != text and text.upper() != text:
        raise InvalidChainData(f"address {text!r}", "mixed case")
    lowered = text.lower()
    hrp, sep, rest = lowered.rpartition("1")
    if not sep or not hrp or len(rest) < 6 or any(c not in bech32.CHARSET for c in rest):
        raise InvalidChainData(f"address {text!r}", "not a bech32 string")
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise InvalidChainData(f"address {text!r}", "invalid prefix")
    five = [bech32.CHARSET.index(c) for c in rest]
    if not bech32.bech32_verify_checksum(hrp, five):
        raise InvalidChainData(f"address {text!r}", "bad checksum")
    payload = bech32.convertbits(five[:-6], 5, 8, pad=False)
    if payload is None:
        raise InvalidChainData(f"address {text!r}", "invalid padding")
    return hrp, bytes(payload)


def _base_prefix(hrp: str, suffix: str) -> str:
    if not hrp.endswith(suffix) or hrp == suffix:
        raise InvalidChainData(f"prefix {hrp!r}", f"expected one ending in {suffix!r}")
    return hrp[: -len(suffix)]


def operator_from_account(account: str) -> OperatorAddress:
    """`cosmosvaloper1...` with the same bytes as account `cosmos1...` (any chain prefix)."""
    hrp, payload = bech32_decode(account)
    if hrp.endswith(("valoper", "valcons")):
        raise InvalidChainData(f"address {account!r}", "not an account address")
    return OperatorAddress(bech32_encode(hrp + "valoper", payload))


def account_from_operator(operator: str) -> AccountAddress:
    """`cosmos1...` with the same bytes as operator `cosmosvaloper1...`."""
    hrp, payload = bech32_decode(operator)
    return AccountAddress(bech32_encode(_base_prefix(hrp, "valoper"), payload))


def parse_operator(text: str) -> OperatorAddress:
    """Accept a `<prefix>valoper1...` address with a valid checksum."""
    hrp, _ = bech32_decode(text)
    _base_prefix(hrp, "valoper")
    return OperatorAddress(text.lower())


def _ripemd160(data: bytes) -> bytes:
    try:
        return hashlib.new("ripemd160", data).digest()
    except ValueError:  # OpenSSL 3 builds may not offer RIPEMD-160
        from Crypto.Hash import RIPEMD160

        return RIPEMD160.new(data).digest()


def consensus_address(operator: str, key_type_url: str, key: bytes) -> ConsensusAddress:
    """The validator's `<prefix>valcons1...` address from its consensus public key.

    CometBFT's address of an ed25519 key is the first 20 bytes of its SHA-256; of
    a secp256k1 key, RIPEMD-160 of its SHA-256. The prefix follows the
    operator's (`cosmosvaloper` gives `cosmosvalcons`).
    """
    hrp, _ = bech32_decode(operator)
    cons_hrp = _base_prefix(hrp, "valoper") + "valcons"
    what = f"consensus key of {operator}"
    if key_type_url == ED25519_TYPE_URL:
        if len(key) != 32:
            raise InvalidChainData(what, f"ed25519 key of {len(key)} bytes")
        raw = hashlib.sha256(key).digest()[:20]
    elif key_type_url == SECP256K1_TYPE_URL:
        if len(key) != 33:
            raise InvalidChainData(what, f"secp256k1 key of {len(key)} bytes")
        raw = _ripemd160(hashlib.sha256(key).digest())
    else:
        raise InvalidChainData(what, f"unsupported key type {key_type_url!r}")
    return ConsensusAddress(bech32_encode(cons_hrp, raw))
