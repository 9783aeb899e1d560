"""The consumer genesis: `init`'s genesis with the provider's consumer genesis as ccvconsumer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.support import procs
from tests.support.consumer import consumer_genesis

CCV: dict[str, Any] = {
    "params": {"enabled": True, "consumer_id": "3"},
    "provider": {
        "client_state": {"chain_id": "provider"},
        "consensus_state": {"root": {"hash": "AA=="}},
        "initial_val_set": [{"pub_key": {"ed25519": "+YgT"}, "power": "100"}],
    },
    "new_chain": True,
    "preCCV": False,
    "connection_id": "",
}
BASE: dict[str, Any] = {
    "chain_id": "init-chain",
    "genesis_time": "2020-01-01T00:00:00Z",
    "initial_height": 1,
    "app_state": {"ccvconsumer": {"params": {"enabled": False}}, "bank": {"balances": []}},
    "consensus": {"validators": []},
}
WHEN = dt.datetime(2026, 12, 2, 16, 0, 0, 123456, tzinfo=dt.UTC)


def test_ccv_state_replaces_the_default_and_the_rest_stays() -> None:
    doc = consumer_genesis(BASE, CCV, "dataplane-ab12-1", WHEN)
    assert doc["chain_id"] == "dataplane-ab12-1"
    assert doc["genesis_time"] == "2026-12-02T16:00:00.123456Z"
    assert doc["initial_height"] == "1"
    assert doc["app_state"]["ccvconsumer"] == CCV
    assert doc["app_state"]["bank"] == BASE["app_state"]["bank"]
    # Inputs are not changed, and the result does not share their objects.
    assert BASE["app_state"]["ccvconsumer"] == {"params": {"enabled": False}}
    doc["app_state"]["ccvconsumer"]["params"]["enabled"] = False
    assert CCV["params"]["enabled"] is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"new_chain": False}, "not for a new chain"),
        ({"provider": {"initial_val_set": []}}, "no initial validator set"),
    ],
)
def test_a_genesis_state_that_cannot_start_a_chain_is_refused(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(procs.TestBedError, match=message):
        consumer_genesis(BASE, {**CCV, **change}, "c-1", WHEN)
