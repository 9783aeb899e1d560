"""Bech32 and the conversions between a validator's account, operator and consensus addresses."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import bech32 as reference
import pytest
from Crypto.Hash import RIPEMD160
from hypothesis import given
from hypothesis import strategies as st

from chainmonitor.addresses import (
    ED25519_TYPE_URL,
    SECP256K1_TYPE_URL,
    account_from_operator,
    bech32_decode,
    bech32_encode,
    consensus_address,
    operator_from_account,
    parse_operator,
)
from chainmonitor.errors import InvalidChainData
from tests.support import chain as testbed

DATA = Path(__file__).resolve().parents[1] / "data" / "rest"
hrps = st.sampled_from(["cosmos", "cosmosvaloper", "cosmosvalcons", "neutron", "x"])


@given(hrps, st.binary(min_size=0, max_size=40))
def test_encoding_matches_the_reference_implementation(hrp: str, payload: bytes) -> None:
    ours = bech32_encode(hrp, payload)
    five = reference.convertbits(payload, 8, 5)
    assert five is not None
    assert ours == reference.bech32_encode(hrp, five)
    assert ours == testbed.bech32_encode(hrp, payload)
    assert bech32_decode(ours) == (hrp, payload)
    assert bech32_decode(ours.upper()) == (hrp, payload)


@given(st.text(max_size=120))
def test_decoding_arbitrary_text_returns_or_raises_invalid_chain_data(text: str) -> None:
    try:
        hrp, payload = bech32_decode(text)
    except InvalidChainData:
        return
    assert bech32_encode(hrp, payload) == text.lower()


def test_checksum_and_case_errors() -> None:
    good = bech32_encode("cosmos", b"\x01" * 20)
    bad = good[:-1] + ("q" if good[-1] != "q" else "p")
    for text in (bad, good[:10] + good[10:].upper(), "cosmos1", "nocheck", ""):
        with pytest.raises(InvalidChainData):
            bech32_decode(text)


@given(st.binary(min_size=20, max_size=20))
def test_account_and_operator_share_bytes(payload: bytes) -> None:
    account = bech32_encode("cosmos", payload)
    operator = operator_from_account(account)
    assert operator.startswith("cosmosvaloper1")
    assert account_from_operator(operator) == account
    assert parse_operator(operator) == operator


def test_operator_checks() -> None:
    account = bech32_encode("cosmos", b"\x02" * 20)
    with pytest.raises(InvalidChainData):
        parse_operator(account)
    with pytest.raises(InvalidChainData):
        operator_from_account(operator_from_account(account))


def test_consensus_addresses_of_the_recorded_validators() -> None:
    validators = json.loads((DATA / "staking_validators.json").read_text())["validators"]
    valset = json.loads((DATA / "tendermint_validatorsets_latest.json").read_text())["validators"]
    by_key = {v["pub_key"]["key"]: v["address"] for v in valset}
    assert len(validators) == len(by_key) == 3
    for v in validators:
        key = v["consensus_pubkey"]["key"]
        assert v["consensus_pubkey"]["@type"] == ED25519_TYPE_URL
        address = consensus_address(v["operator_address"], ED25519_TYPE_URL, base64.b64decode(key))
        assert address == by_key[key]


def test_secp256k1_consensus_address_is_ripemd160_of_sha256() -> None:
    key = bytes([2]) + b"\x11" * 32
    operator = bech32_encode("cosmosvaloper", b"\x03" * 20)
    digest = RIPEMD160.new(hashlib.sha256(key).digest()).digest()
    assert consensus_address(operator, SECP256K1_TYPE_URL, key) == bech32_encode(
        "cosmosvalcons", digest
    )
    with pytest.raises(InvalidChainData):
        consensus_address(operator, SECP256K1_TYPE_URL, key[:-1])
    with pytest.raises(InvalidChainData):
        consensus_address(operator, "/cosmos.crypto.bls.PubKey", key)
