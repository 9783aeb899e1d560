"""The frame parser turns every frame recorded from the real provider chain into the right event.

Expected values are read from other parts of the same recorded frame (the
events map, the message event's sender, the block header), never pinned, since
every recording has new keys, heights and hashes (tests/data/README.md).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from chainmonitor.addresses import operator_from_account
from chainmonitor.events import (
    BlockCommitted,
    ConsumerActionKind,
    TxCommitted,
)
from chainmonitor.frames import ErrorReply, EventFrame, Reply, parse_frame
from chainmonitor.session import Broken, Live, ResyncNeeded, Send, StreamSession
from chainmonitor.subscriptions import default_plan
from chainmonitor.txdecode import message_types

WS = Path(__file__).resolve().parents[1] / "data" / "ws"


def raw(name: str) -> bytes:
    return (WS / f"{name}.json").read_bytes()


def doc(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw(name))
    return loaded


def attr(frame: dict[str, Any], event_type: str, key: str) -> str:
    for ev in frame["result"]["data"]["value"]["TxResult"]["result"]["events"]:
        if ev["type"] == event_type:
            for a in ev["attributes"]:
                if a["key"] == key:
                    return str(a.get("value", ""))
    raise KeyError(f"{event_type}.{key}")


def tx_event(name: str) -> TxCommitted:
    frame = parse_frame(raw(name))
    assert isinstance(frame, EventFrame)
    assert isinstance(frame.event, TxCommitted)
    return frame.event


EDIT_FRAMES = [
    "tx_edit_validator",
    "tx_edit_validator_two_line_details",
    "tx_edit_validator_ipv6_details",
]


@pytest.mark.parametrize("name", EDIT_FRAMES)
def test_edit_frame_names_the_edited_validator_from_the_signed_tx(name: str) -> None:
    recorded = doc(name)
    event = tx_event(name)
    sender = attr(recorded, "message", "sender")
    assert event.edited == (operator_from_account(sender),)
    assert not event.edits_unresolved
    assert event.ok
    assert event.height == int(recorded["result"]["data"]["value"]["TxResult"]["height"])
    assert event.tx_hash == recorded["result"]["events"]["tx.hash"][0]
    assert event.consumer_actions == ()
    assert not event.authz


def test_tx_hash_is_computed_from_the_tx_when_the_events_map_is_missing() -> None:
    recorded = doc("tx_edit_validator")
    expected = recorded["result"]["events"]["tx.hash"][0]
    del recorded["result"]["events"]
    frame = parse_frame(json.dumps(recorded))
    assert isinstance(frame, EventFrame)
    assert isinstance(frame.event, TxCommitted)
    assert frame.event.tx_hash == expected
    tx = base64.b64decode(recorded["result"]["data"]["value"]["TxResult"]["tx"])
    assert hashlib.sha256(tx).hexdigest().upper() == expected


def test_edit_falls_back_to_message_sender_when_tx_bytes_are_unreadable() -> None:
    recorded = doc("tx_edit_validator")
    sender = attr(recorded, "message", "sender")
    tx_result = recorded["result"]["data"]["value"]["TxResult"]
    tx_result["tx"] = base64.b64encode(b"\xff\x00junk").decode()
    frame = parse_frame(json.dumps(recorded))
    assert isinstance(frame, EventFrame)
    assert isinstance(frame.event, TxCommitted)
    assert frame.event.edited == (operator_from_account(sender),)
    assert not frame.event.edits_unresolved


def test_edit_without_tx_or_sender_is_flagged_unresolved() -> None:
    recorded = doc("tx_edit_validator")
    value = recorded["result"]["data"]["value"]["TxResult"]
    value["tx"] = ""
    value["result"]["events"] = [e for e in value["result"]["events"] if e["type"] != "message"]
    frame = parse_frame(json.dumps(recorded))
    assert isinstance(frame, EventFrame)
    assert isinstance(frame.event, TxCommitted)
    assert frame.event.edited == ()
    assert frame.event.edits_unresolved


def test_recorded_edit_tx_holds_exactly_one_edit_message() -> None:
    tx = base64.b64decode(doc("tx_edit_validator")["result"]["data"]["value"]["TxResult"]["tx"])
    assert message_types(tx) == ("/cosmos.staking.v1beta1.MsgEditValidator",)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("tx_create_consumer", ConsumerActionKind.CREATE),
        ("tx_update_consumer", ConsumerActionKind.UPDATE),
        ("tx_opt_in", ConsumerActionKind.OPT_IN),
        ("tx_opt_out", ConsumerActionKind.OPT_OUT),
        ("tx_remove_consumer", ConsumerActionKind.REMOVE),
    ],
)
def test_provider_tx_frames_become_consumer_actions(name: str, kind: ConsumerActionKind) -> None:
    recorded = doc(name)
    event = tx_event(name)
    assert event.ok
    assert event.edited == ()
    [action] = event.consumer_actions
    assert action.kind is kind
    assert action.consumer_id == attr(recorded, kind.value, "consumer_id")
    assert action.chain_id == attr(recorded, kind.value, "consumer_chain_id")
    if kind in (ConsumerActionKind.OPT_IN, ConsumerActionKind.OPT_OUT):
        assert action.validator == attr(recorded, kind.value, "provider_validator_address")
        assert action.validator is not None
        assert action.validator.startswith("cosmosvaloper1")
    assert event.touches_consumers


def test_new_block_v038_gives_its_height_time_and_no_launch() -> None:
    recorded = doc("new_block")
    header = recorded["result"]["data"]["value"]["block"]["header"]
    frame = parse_frame(raw("new_block"))
    assert isinstance(frame, EventFrame)
    assert frame.event == BlockCommitted(int(header["height"]))
    assert isinstance(frame.event, BlockCommitted)
    expected = dt.datetime.fromisoformat(header["time"][:26] + "+00:00").timestamp()
    assert frame.event.time is not None
    assert abs(frame.event.time - expected) < 1e-5


def launch_attrs(recorded: dict[str, Any]) -> dict[str, str]:
    for ev in recorded["result"]["data"]["value"]["result_finalize_block"]["events"]:
        if ev["type"] == "consumer_client_created":
            return {a["key"]: a.get("value", "") for a in ev["attributes"]}
    raise KeyError("consumer_client_created")


def test_new_block_v038_with_consumer_client_created_reports_the_launch() -> None:
    recorded = doc("new_block_consumer_client_created")
    frame = parse_frame(raw("new_block_consumer_client_created"))
    assert isinstance(frame, EventFrame)
    assert isinstance(frame.event, BlockCommitted)
    [launch] = frame.event.launched
    expected = launch_attrs(recorded)
    assert launch.consumer_id == expected["consumer_id"]
    assert launch.chain_id == expected["consumer_chain_id"]
    assert launch.client_id == expected["client_id"]


def as_v037(recorded: dict[str, Any]) -> dict[str, Any]:
    """The same block in CometBFT v0.37's shape: block events split into begin/end block.

    v0.37 has no `result_finalize_block` and no `block_id`; ICS emits the launch
    in BeginBlock, so in v0.37 it sits in `result_begin_block.events`.
    """
    old = copy.deepcopy(recorded)
    value = old["result"]["data"]["value"]
    finalize = value.pop("result_finalize_block")
    value.pop("block_id", None)
    begin = [e for e in finalize.get("events", []) if _mode(e) == "BeginBlock"]
    end = [e for e in finalize.get("events", []) if _mode(e) != "BeginBlock"]
    value["result_begin_block"] = {"events": begin}
    value["result_end_block"] = {"validator_updates": [], "events": end}
    return old


def _mode(event: dict[str, Any]) -> str:
    return next((a.get("value", "") for a in event["attributes"] if a["key"] == "mode"), "")


def test_new_block_v037_shape_reports_the_same_launch() -> None:
    recorded = doc("new_block_consumer_client_created")
    v038 = parse_frame(raw("new_block_consumer_client_created"))
    v037 = parse_frame(json.dumps(as_v037(recorded)))
    assert isinstance(v038, EventFrame)
    assert isinstance(v037, EventFrame)
    assert v037.event == v038.event
    assert isinstance(v037.event, BlockCommitted)
    assert len(v037.event.launched) == 1


def test_new_block_header_and_new_block_events_give_heights() -> None:
    recorded = doc("new_block")
    header = recorded["result"]["data"]["value"]["block"]["header"]
    height = int(header["height"])
    header_frame = {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {
            "query": "tm.event='NewBlockHeader'",
            "data": {"type": "tendermint/event/NewBlockHeader", "value": {"header": header}},
            "events": {"tm.event": ["NewBlockHeader"]},
        },
    }
    parsed = parse_frame(json.dumps(header_frame))
    assert isinstance(parsed, EventFrame)
    assert parsed.event == BlockCommitted(height)
    launched = doc("new_block_consumer_client_created")["result"]["data"]["value"]
    events_frame = {
        "jsonrpc": "2.0",
        "id": 8,
        "result": {
            "query": "tm.event='NewBlockEvents'",
            "data": {
                "type": "tendermint/event/NewBlockEvents",
                "value": {
                    "height": launched["block"]["header"]["height"],
                    "events": launched["result_finalize_block"]["events"],
                    "num_txs": "0",
                },
            },
        },
    }
    parsed = parse_frame(json.dumps(events_frame))
    assert isinstance(parsed, EventFrame)
    assert isinstance(parsed.event, BlockCommitted)
    assert len(parsed.event.launched) == 1


def test_replies_and_errors_are_classified() -> None:
    assert parse_frame(raw("subscribe_ack")) == Reply(doc("subscribe_ack")["id"])
    exited = parse_frame(raw("error_subscription_canceled_cometbft_exited"))
    assert isinstance(exited, ErrorReply)
    assert exited.cancelled
    assert exited.code == -32000
    for name in (
        "error_already_subscribed",
        "error_max_subscriptions_per_client",
        "error_maximum_query_length",
        "error_query_parse",
    ):
        refused = parse_frame(raw(name))
        assert isinstance(refused, ErrorReply), name
        assert not refused.cancelled
        assert refused.code == -32603
        assert refused.data == doc(name)["error"]["data"]


def test_slow_client_cancellation_is_recognised() -> None:
    # Same construction as the recorded shutdown frame (rpc/core/events.go); only
    # the reason differs (see tests/data/README.md: not provokable on record).
    recorded = doc("error_subscription_canceled_cometbft_exited")
    recorded["error"]["data"] = (
        "subscription was canceled (reason: internal subscription event buffer is out of capacity)"
    )
    parsed = parse_frame(json.dumps(recorded))
    assert isinstance(parsed, ErrorReply)
    assert parsed.cancelled


def test_session_driven_by_recorded_frames_goes_live_and_resubscribes() -> None:
    plan = default_plan()
    session = StreamSession(plan)
    sends = session.start()
    assert len(sends) == len(plan) <= 5
    ids = [json.loads(s.text)["id"] for s in sends if isinstance(s, Send)]
    ack = doc("subscribe_ack")
    actions = []
    for request_id in ids:
        ack["id"] = request_id
        actions += session.on_frame(parse_frame(json.dumps(ack)))
    assert actions == [Live()]
    cancelled = doc("error_subscription_canceled_cometbft_exited")
    cancelled["id"] = ids[0]
    assert session.on_frame(parse_frame(json.dumps(cancelled))) == [
        Broken("node is shutting down", "shutdown")
    ]
    slow = copy.deepcopy(cancelled)
    slow["id"] = ids[1]
    slow["error"]["data"] = "subscription was canceled (reason: slow client)"
    [unsubscribe] = session.on_frame(parse_frame(json.dumps(slow)))
    assert isinstance(unsubscribe, Send)
    ack["id"] = json.loads(unsubscribe.text)["id"]
    [renew] = session.on_frame(parse_frame(json.dumps(ack)))
    assert isinstance(renew, Send)
    renewed = json.loads(renew.text)
    assert renewed["params"]["query"] == plan[1].query
    ack["id"] = renewed["id"]
    [resync] = session.on_frame(parse_frame(json.dumps(ack)))
    assert isinstance(resync, ResyncNeeded)
