"""With 3 validators, every consensus address the chain reports maps to exactly one operator.

The provider's opted-in query names validators by consensus address
(`cosmosvalcons1...`) while the on-chain endpoints live in the staking
description of the operator (`cosmosvaloper1...`); the only bridge is the
consensus public key in the staking query. This checks that bridge against
three views the chain itself gives.
"""

from __future__ import annotations

import base64

import pytest

from tests.support.chain import ProviderChain, bech32_decode, consensus_address, operator_address

pytestmark = pytest.mark.chain


def test_every_consensus_address_maps_to_its_operator(provider_chain3: ProviderChain) -> None:
    chain = provider_chain3
    staking = chain.staking_validators()
    assert len(staking) == 3
    assert {v["status"] for v in staking} == {"BOND_STATUS_BONDED"}

    # valcons -> operator, derived from the staking query's consensus public keys.
    by_consensus = {
        consensus_address(base64.b64decode(v["consensus_pubkey"]["key"])): v["operator_address"]
        for v in staking
    }
    assert len(by_consensus) == 3

    # CometBFT's own set, bech32-encoded by the node: the same three addresses and keys.
    comet = chain.rest_get("/cosmos/base/tendermint/v1beta1/validatorsets/latest")["validators"]
    assert {v["address"] for v in comet} == set(by_consensus)
    staking_keys = {v["operator_address"]: v["consensus_pubkey"]["key"] for v in staking}
    for v in comet:
        assert staking_keys[by_consensus[v["address"]]] == v["pub_key"]["key"]

    # The raw RPC set uses hex: the same 20 bytes.
    rpc = chain.rpc_get("validators")["validators"]
    assert {v["address"] for v in rpc} == {bech32_decode(a)[1].hex().upper() for a in by_consensus}

    # The provider names opted-in validators by the same consensus addresses.
    consumer_id, _ = chain.create_consumer(0, "matching-1", spawn_time=None)
    for v in chain.validators:
        chain.opt_in(v, consumer_id)
    opted_in = chain.opted_in_validators(consumer_id)
    assert sorted(by_consensus[a] for a in opted_in) == sorted(
        v["operator_address"] for v in staking
    )

    # And the fixture's view agrees with all of it.
    for v in chain.validators:
        assert by_consensus[v.consensus] == v.operator
        assert operator_address(v.account) == v.operator
