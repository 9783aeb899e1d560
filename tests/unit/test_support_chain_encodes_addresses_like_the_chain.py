"""The test bed's address helpers agree with what the real chain recorded under tests/data."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.chain import (
    bech32_decode,
    bech32_encode,
    consensus_address,
    operator_address,
    parse_rfc3339,
    revision_number,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def load(rel: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads((DATA / rel).read_text())
    return doc


def test_consensus_addresses_match_the_chains_validator_set() -> None:
    validators = load("rest/tendermint_validatorsets_latest.json")["validators"]
    assert isinstance(validators, list)
    assert len(validators) == 3
    for v in validators:
        assert consensus_address(base64.b64decode(v["pub_key"]["key"])) == v["address"]


def test_operator_addresses_match_the_senders_of_edit_validator() -> None:
    frame = json.loads((DATA / "ws" / "tx_opt_in.json").read_text())
    events = frame["result"]["events"]
    assert (
        operator_address(events["message.sender"][0])
        == events["opt_in.provider_validator_address"][0]
    )


def test_bad_checksum_is_refused() -> None:
    good = bech32_encode("cosmos", bytes(range(20)))
    bad = good[:-1] + ("q" if good[-1] != "q" else "p")
    with pytest.raises(ValueError, match="checksum"):
        bech32_decode(bad)


@given(
    st.sampled_from(["cosmos", "cosmosvaloper", "cosmosvalcons"]),
    st.binary(min_size=1, max_size=40),
)
def test_bech32_round_trips(prefix: str, payload: bytes) -> None:
    assert bech32_decode(bech32_encode(prefix, payload)) == (prefix, payload)


@pytest.mark.parametrize(
    ("chain_id", "revision"),
    [
        ("consumer-1", 1),
        ("consumer-lifecycle-1", 1),
        ("a-10", 10),
        ("testchain-0", 0),
        ("consumer-0-1751686503-0", 0),
        ("provider", 0),
        ("-1", 0),
        ("a--1", 0),
    ],
)
def test_revision_number_follows_ibc(chain_id: str, revision: int) -> None:
    assert revision_number(chain_id) == revision


def test_rfc3339_with_nanoseconds() -> None:
    t = parse_rfc3339("2026-11-22T05:13:47.529368477Z")
    assert (t.microsecond, t.utcoffset()) == (
        529368,
        parse_rfc3339("2026-01-01T00:00:00Z").utcoffset(),
    )
