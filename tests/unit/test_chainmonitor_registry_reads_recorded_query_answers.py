"""Recorded staking and provider answers convert alike from REST JSON and from gRPC bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cosmpy.protos.cosmos.crypto.ed25519 import keys_pb2 as up_ed25519
from cosmpy.protos.cosmos.staking.v1beta1 import staking_pb2 as up_staking
from google.protobuf import json_format

from chainmonitor._proto.cosmos.staking.v1beta1 import staking_pb2
from chainmonitor._proto.interchain_security.ccv.provider.v1 import query_pb2 as provider_pb2
from chainmonitor.convert import (
    consumer_from_json,
    consumer_from_proto,
    opted_in_addresses,
    validator_from_json,
    validator_from_proto,
)
from chainmonitor.errors import InvalidChainData
from chainmonitor.types import BondStatus, ConsumerPhase

REST = Path(__file__).resolve().parents[1] / "data" / "rest"


def load(name: str) -> Any:
    return json.loads((REST / f"{name}.json").read_text())


def as_grpc_validator(doc: dict[str, Any]) -> staking_pb2.Validator:
    """The bytes gRPC would carry for this validator: upstream message, then our decoder."""
    assert up_ed25519.PubKey  # its import registers the Any type for json_format
    upstream = json_format.ParseDict(doc, up_staking.Validator(), ignore_unknown_fields=True)
    return staking_pb2.Validator.FromString(upstream.SerializeToString())


def test_validators_over_rest_and_grpc_agree() -> None:
    docs = load("staking_validators")["validators"]
    valset = {v["address"] for v in load("tendermint_validatorsets_latest")["validators"]}
    assert len(docs) == 3
    for doc in docs:
        rest = validator_from_json(doc)
        grpc = validator_from_proto(as_grpc_validator(doc))
        assert rest == grpc
        assert rest.status is BondStatus.BONDED
        assert rest.consensus_address in valset
        assert rest.description.details == doc["description"]["details"]
        assert rest.moniker == doc["description"]["moniker"]
        assert rest.tokens == int(doc["tokens"])


def test_pages_hold_the_same_validators_as_one_answer() -> None:
    one = {validator_from_json(d) for d in load("staking_validators")["validators"]}
    page1 = load("staking_validators_page1_limit2")
    page2 = load("staking_validators_page2_limit2")
    assert page1["pagination"]["next_key"]
    assert not page2["pagination"]["next_key"]
    paged = {validator_from_json(d) for d in page1["validators"] + page2["validators"]}
    assert paged == one


def test_single_validator_answer() -> None:
    doc = load("staking_validator")["validator"]
    all_docs = {d["operator_address"]: d for d in load("staking_validators")["validators"]}
    assert validator_from_json(doc).operator in all_docs


def test_consumer_chains_over_rest_and_grpc_agree() -> None:
    chains = load("provider_consumer_chains")["chains"]
    phases = set()
    for doc in chains:
        rest = consumer_from_json(doc)
        message = json_format.ParseDict(doc, provider_pb2.Chain(), ignore_unknown_fields=True)
        assert consumer_from_proto(message) == rest
        assert rest.chain_id == doc["chain_id"]
        assert rest.consumer_id == doc["consumer_id"]
        phases.add(rest.phase)
    assert phases == {ConsumerPhase.STOPPED, ConsumerPhase.LAUNCHED, ConsumerPhase.REGISTERED}


def test_opted_in_answers() -> None:
    valset = {v["address"] for v in load("tendermint_validatorsets_latest")["validators"]}
    launched = load("provider_opted_in_validators")["validators_provider_addresses"]
    after = load("provider_opted_in_validators_after_opt_out")["validators_provider_addresses"]
    got = opted_in_addresses(launched, "c")
    assert set(got) <= valset
    assert len(got) == 2
    assert list(got) == sorted(got)
    assert set(opted_in_addresses(after, "c")) <= valset


@pytest.mark.parametrize(
    "change",
    [
        {"operator_address": "cosmos1notanoperator"},
        {"status": "BOND_STATUS_WEIRD"},
        {"tokens": "12x"},
        {"description": None},
        {"jailed": "no"},
    ],
)
def test_one_bad_validator_is_an_error_for_that_record_only(change: dict[str, Any]) -> None:
    doc = {**load("staking_validators")["validators"][0], **change}
    with pytest.raises(InvalidChainData):
        validator_from_json(doc)


def test_unreadable_consensus_key_keeps_the_validator_without_address() -> None:
    doc = load("staking_validators")["validators"][0]
    doc["consensus_pubkey"] = {"@type": "/cosmos.crypto.bls12_381.PubKey", "key": "AAAA"}
    v = validator_from_json(doc)
    assert v.consensus_address is None
    assert "unsupported key type" in v.consensus_error


@pytest.mark.parametrize(
    "change",
    [{"consumer_id": "01"}, {"consumer_id": "x"}, {"phase": "LAUNCHED"}, {"chain_id": ""}],
)
def test_bad_consumer_chain_records_are_refused(change: dict[str, Any]) -> None:
    doc = {**load("provider_consumer_chains")["chains"][0], **change}
    with pytest.raises(InvalidChainData):
        consumer_from_json(doc)


def test_non_valcons_opted_in_entry_is_refused() -> None:
    with pytest.raises(InvalidChainData):
        opted_in_addresses(["cosmosvaloper1xyz"], "c")
