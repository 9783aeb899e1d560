"""The recorded chain data under tests/data is complete and shaped as CometBFT sent it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
WS_FRAMES = sorted((DATA / "ws").glob("*.json"))
EXPECTED_WS = {
    "subscribe_ack",
    "tx_edit_validator",
    "tx_create_consumer",
    "tx_opt_in",
    "tx_opt_out",
    "tx_remove_consumer",
    "new_block",
    "new_block_consumer_client_created",
    "error_max_subscriptions_per_client",
    "error_subscription_canceled_cometbft_exited",
}


def test_every_listed_frame_was_recorded() -> None:
    assert {p.stem for p in WS_FRAMES} >= EXPECTED_WS
    readme = (DATA / "README.md").read_text()
    for path in WS_FRAMES:
        assert f"`ws/{path.name}`" in readme, (
            f"{path.name} is not described in tests/data/README.md"
        )


@pytest.mark.parametrize("path", WS_FRAMES, ids=lambda p: p.stem)
def test_frame_is_one_json_rpc_message_as_received(path: Path) -> None:
    text = path.read_text()
    # Stored as received: CometBFT's one-line JSON plus a final newline.
    assert text.endswith("\n")
    assert text.count("\n") == 1
    frame = json.loads(text)
    assert frame["jsonrpc"] == "2.0"
    assert isinstance(frame["id"], int)
    assert ("result" in frame) != ("error" in frame)
    if path.stem.startswith("error_"):
        assert isinstance(frame["error"]["code"], int)
        assert frame["error"]["data"]
    elif path.stem.startswith("tx_"):
        assert frame["result"]["data"]["type"] == "tendermint/event/Tx"
        assert frame["result"]["events"]["tm.event"] == ["Tx"]
    elif path.stem.startswith("new_block"):
        assert frame["result"]["data"]["type"] == "tendermint/event/NewBlock"


def test_launch_block_carries_consumer_client_created() -> None:
    frame = json.loads((DATA / "ws" / "new_block_consumer_client_created.json").read_text())
    events = frame["result"]["events"]
    assert events["consumer_client_created.consumer_chain_id"] == ["consumer-lifecycle-1"]
    assert events["consumer_client_created.client_id"][0].startswith("07-tendermint-")


@pytest.mark.parametrize(
    "path",
    sorted([*(DATA / "rest").glob("*.json"), *(DATA / "rpc").glob("*.json")]),
    ids=lambda p: p.stem,
)
def test_query_response_is_json_object(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)
