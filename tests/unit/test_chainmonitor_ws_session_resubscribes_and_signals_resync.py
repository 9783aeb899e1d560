"""One connection's subscription state machine: live after every ack, renew a cancel, resync."""

from __future__ import annotations

import itertools
import json

import pytest

from chainmonitor.errors import InvalidQuery
from chainmonitor.events import BlockCommitted
from chainmonitor.frames import ErrorReply, EventFrame, Reply
from chainmonitor.session import (
    Action,
    Broken,
    Deliver,
    Ignored,
    Live,
    ResyncNeeded,
    Send,
    StreamSession,
)
from chainmonitor.subscriptions import Topic, default_plan

SLOW = "subscription was canceled (reason: internal subscription event buffer is out of capacity)"


def started() -> tuple[StreamSession, list[int]]:
    session = StreamSession(default_plan(), itertools.count(100))
    sends = session.start()
    assert all(isinstance(s, Send) for s in sends)
    return session, [json.loads(s.text)["id"] for s in sends if isinstance(s, Send)]


def live() -> tuple[StreamSession, list[int]]:
    session, ids = started()
    for i in ids:
        session.on_frame(Reply(i))
    assert session.live
    return session, ids


def test_subscribe_requests_carry_ids_and_queries() -> None:
    _, ids = started()
    assert ids == [100, 101, 102, 103, 104]
    session = StreamSession(default_plan(), itertools.count(1))
    payloads = [json.loads(s.text) for s in session.start() if isinstance(s, Send)]
    assert [p["params"]["query"] for p in payloads] == [s.query for s in default_plan()]
    assert all(p["method"] == "subscribe" and p["jsonrpc"] == "2.0" for p in payloads)


def test_live_only_after_every_ack_in_any_order() -> None:
    session, ids = started()
    out = [session.on_frame(Reply(i)) for i in reversed(ids)]
    assert out[:-1] == [[]] * (len(ids) - 1)
    assert out[-1] == [Live()]
    assert session.active_topics == set(Topic)
    assert session.on_frame(Reply(ids[0])) == [Ignored("reply to unknown request 100")]


def test_events_are_delivered_with_their_topic() -> None:
    session, ids = live()
    event = BlockCommitted(9)
    assert session.on_frame(EventFrame(ids[4], "q", event)) == [Deliver(event, Topic.BLOCKS)]
    assert session.on_frame(EventFrame(999, "q", event)) == [Deliver(event, None)]


def test_slow_client_cancellation_unsubscribes_renews_then_asks_for_resync() -> None:
    session, ids = live()
    [unsubscribe] = session.on_frame(ErrorReply(ids[0], -32000, "Server error", SLOW))
    assert isinstance(unsubscribe, Send)
    request = json.loads(unsubscribe.text)
    # The node still lists the cancelled query for this client: free it first.
    assert request["method"] == "unsubscribe"
    assert request["params"]["query"] == default_plan()[0].query
    assert Topic.VALIDATOR_EDITS not in session.active_topics
    [renew] = session.on_frame(Reply(request["id"]))
    assert isinstance(renew, Send)
    renewed = json.loads(renew.text)
    assert renewed["method"] == "subscribe"
    assert renewed["id"] not in ids
    assert renewed["params"]["query"] == default_plan()[0].query
    [resync] = session.on_frame(Reply(renewed["id"]))
    assert isinstance(resync, ResyncNeeded)
    assert "validator-edits" in resync.reason
    assert session.active_topics == set(Topic)


def test_renewal_also_works_when_the_node_had_forgotten_the_query() -> None:
    session, ids = live()
    [unsubscribe] = session.on_frame(ErrorReply(ids[1], -32000, "Server error", SLOW))
    assert isinstance(unsubscribe, Send)
    unsub_id = json.loads(unsubscribe.text)["id"]
    [renew] = session.on_frame(
        ErrorReply(unsub_id, -32603, "Internal error", "subscription not found")
    )
    assert isinstance(renew, Send)
    assert json.loads(renew.text)["method"] == "subscribe"


def test_refused_renewal_breaks_the_connection() -> None:
    session, ids = live()
    [unsubscribe] = session.on_frame(ErrorReply(ids[0], -32000, "Server error", SLOW))
    assert isinstance(unsubscribe, Send)
    [renew] = session.on_frame(Reply(json.loads(unsubscribe.text)["id"]))
    assert isinstance(renew, Send)
    [broken] = session.on_frame(
        ErrorReply(json.loads(renew.text)["id"], -32603, "Internal error", "already subscribed")
    )
    assert isinstance(broken, Broken)


def test_shutdown_cancellation_breaks_the_connection() -> None:
    session, ids = live()
    reason = "subscription was canceled (reason: CometBFT exited)"
    assert session.on_frame(ErrorReply(ids[2], -32000, "Server error", reason)) == [
        Broken("node is shutting down", "shutdown")
    ]


def test_refusals() -> None:
    session, ids = started()
    [broken] = session.on_frame(
        ErrorReply(ids[0], -32603, "Internal error", "max_subscriptions_per_client 5 reached")
    )
    assert isinstance(broken, Broken)
    with pytest.raises(InvalidQuery):
        session.on_frame(
            ErrorReply(ids[1], -32603, "Internal error", "maximum query length exceeded")
        )


def test_errors_for_unknown_ids_are_ignored() -> None:
    session, _ = live()
    [ignored] = session.on_frame(ErrorReply(None, -32700, "Parse error", "x"))
    assert isinstance(ignored, Ignored)


def test_missing_block_headers_break_the_connection() -> None:
    session, ids = live()
    blocks = ids[4]
    assert session.on_frame(EventFrame(blocks, "q", BlockCommitted(10)))[1:] == []
    assert session.on_frame(EventFrame(blocks, "q", BlockCommitted(11)))[1:] == []
    # Heights from other subscriptions, repeats and the past do not count.
    assert session.on_frame(EventFrame(ids[3], "q", BlockCommitted(30)))[1:] == []
    assert session.on_frame(EventFrame(blocks, "q", BlockCommitted(11)))[1:] == []
    assert session.on_frame(EventFrame(blocks, "q", BlockCommitted(12)))[1:] == []
    out = session.on_frame(EventFrame(blocks, "q", BlockCommitted(15)))
    assert out == [
        Deliver(BlockCommitted(15), Topic.BLOCKS),
        Broken("block headers 13..14 never arrived", "gap"),
    ]


def test_headers_falling_far_behind_their_block_time_break_the_connection() -> None:
    session = StreamSession(default_plan(), itertools.count(1), max_lag_growth=3.0)
    ids = [json.loads(s.text)["id"] for s in session.start() if isinstance(s, Send)]
    for i in ids:
        session.on_frame(Reply(i))

    def header(height: int, block_time: float, received: float) -> list[Action]:
        event = BlockCommitted(height, time=block_time)
        return session.on_frame(EventFrame(ids[4], "q", event), received)[1:]

    # A clock offset of an hour is fine: only growth of the lag counts.
    assert header(1, 1000.0, 4600.5) == []
    assert header(2, 1001.0, 4602.0) == []  # 1 s more: a slow round
    assert header(3, 1002.0, 4602.2) == []  # lag shrinks: new minimum
    [broken] = header(4, 1003.0, 4607.0)  # 4.8 s later than the minimum
    assert isinstance(broken, Broken)
    assert broken.kind == "behind"


def test_lag_check_is_off_by_default_and_ignores_frames_without_time() -> None:
    session, ids = live()
    assert session.on_frame(EventFrame(ids[4], "q", BlockCommitted(1, time=0.0)), 1e9)[1:] == []
    checked = StreamSession(default_plan(), itertools.count(1), max_lag_growth=1.0)
    for s in checked.start():
        assert isinstance(s, Send)
        checked.on_frame(Reply(json.loads(s.text)["id"]))
    assert checked.on_frame(EventFrame(5, "q", BlockCommitted(1)), 50.0)[1:] == []
