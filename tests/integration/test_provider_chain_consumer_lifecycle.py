"""A consumer chain on the real provider: created, opted into, launched, opted out of, removed."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support.chain import ChainQueryError, ProviderChain

pytestmark = pytest.mark.chain


def test_opted_in_consumer_launches_lists_its_validators_and_stops_on_removal(
    provider_chain3: ProviderChain,
) -> None:
    chain = provider_chain3
    everyone = sorted(v.consensus for v in chain.validators)

    consumer_id = chain.launch_consumer("lifecycle-1", owner=0)

    record = chain.consumer_chain(consumer_id)
    assert record["chain_id"] == "lifecycle-1"
    assert record["phase"] == "CONSUMER_PHASE_LAUNCHED"
    assert record["client_id"].startswith("07-tendermint-")
    assert record["owner_address"] == chain.validators[0].account
    launched = {c["consumer_id"] for c in chain.consumer_chains("CONSUMER_PHASE_LAUNCHED")}
    assert consumer_id in launched
    assert chain.opted_in_validators(consumer_id) == everyone

    out = chain.opt_out(2, consumer_id)
    assert out.attribute("opt_out", "provider_validator_address") == chain.validators[2].operator
    assert chain.opted_in_validators(consumer_id) == sorted(
        v.consensus for v in chain.validators[:2]
    )

    removed = chain.remove_consumer(0, consumer_id)
    assert removed.attribute("remove_consumer", "consumer_id") == consumer_id
    assert chain.consumer_phase(consumer_id) == "CONSUMER_PHASE_STOPPED"
    stopped = {c["consumer_id"] for c in chain.consumer_chains("CONSUMER_PHASE_STOPPED")}
    assert consumer_id in stopped
    assert consumer_id not in {
        c["consumer_id"] for c in chain.consumer_chains("CONSUMER_PHASE_LAUNCHED")
    }
    # A stopped chain has no opted-in set any more: the provider refuses the query.
    with pytest.raises(ChainQueryError) as err:
        chain.opted_in_validators(consumer_id)
    assert "unknown consumer chain" in err.value.body


def test_consumer_without_spawn_time_stays_registered_until_given_one(
    provider_chain: ProviderChain,
) -> None:
    chain = provider_chain
    consumer_id, created = chain.create_consumer(0, "registered-1", spawn_time=None)
    assert created.attribute("create_consumer", "consumer_phase") == "CONSUMER_PHASE_REGISTERED"
    chain.opt_in(0, consumer_id)
    assert chain.opted_in_validators(consumer_id) == [chain.validators[0].consensus]
    # Several blocks pass, and with no spawn time the provider does not launch it.
    chain.wait_for_height(chain.height() + 3)
    assert chain.consumer_phase(consumer_id) == "CONSUMER_PHASE_REGISTERED"

    updated = chain.set_consumer_spawn_time(0, consumer_id, "registered-1", dt.datetime.now(dt.UTC))
    assert updated.attribute("update_consumer", "consumer_phase") == "CONSUMER_PHASE_INITIALIZED"
    chain.wait_for_consumer_phase(consumer_id, ("CONSUMER_PHASE_LAUNCHED",), timeout=30)
