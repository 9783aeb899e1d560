"""A real `edit-validator` tx reaches a WebSocket subscriber and then the staking query."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.chain import ProviderChain

pytestmark = pytest.mark.chain

EDIT_VALIDATOR_QUERY = "tm.event='Tx' AND message.action='/cosmos.staking.v1beta1.MsgEditValidator'"


async def next_frame_for_tx(ws: ClientConnection, txhash: str) -> dict[str, Any]:
    """The first event frame whose `tx.hash` is `txhash` (other validators' edits are skipped)."""
    while True:
        frame: dict[str, Any] = json.loads(await ws.recv())
        assert "error" not in frame, frame
        if txhash in frame["result"]["events"].get("tx.hash", []):
            return frame


async def test_edit_validator_event_reaches_subscriber_and_staking_query(
    provider_chain: ProviderChain,
) -> None:
    validator = provider_chain.validators[0]
    # The nonce makes details no earlier run or test could have left on chain.
    details = f"Validator {validator.moniker} {secrets.token_hex(4)} - p2p=192.168.97.110"

    async with connect(validator.node.websocket_url) as ws:
        await ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 7,
                    "method": "subscribe",
                    "params": {"query": EDIT_VALIDATOR_QUERY},
                }
            )
        )
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack == {"jsonrpc": "2.0", "id": 7, "result": {}}

        tx = await asyncio.to_thread(provider_chain.edit_validator, validator, details=details)
        async with asyncio.timeout(30):
            frame = await next_frame_for_tx(ws, tx.txhash)

    assert frame["id"] == 7
    result = frame["result"]
    assert result["query"] == EDIT_VALIDATOR_QUERY
    assert result["data"]["type"] == "tendermint/event/Tx"
    tx_result = result["data"]["value"]["TxResult"]
    assert tx_result["height"] == str(tx.height)
    assert tx_result["result"].get("code", 0) == 0
    # The description travels in the signed tx bytes, not in any event attribute.
    assert details.encode() in base64.b64decode(tx_result["tx"])
    events = result["events"]
    assert events["tm.event"] == ["Tx"]
    assert events["message.action"] == ["/cosmos.staking.v1beta1.MsgEditValidator"]
    assert events["message.sender"] == [validator.account]
    assert events["tx.height"] == [str(tx.height)]

    on_chain = {v["operator_address"]: v for v in provider_chain.staking_validators()}
    assert on_chain[validator.operator]["description"]["details"] == details
    assert on_chain[validator.operator]["description"]["moniker"] == validator.moniker
