"""The subscription protocol of one WebSocket connection, as a state machine without I/O.

Which request id belongs to which subscription, when every subscription is
acknowledged, what a cancellation means and when a resync is due are decided
here from parsed frames, and returned as actions for the I/O shell to carry
out. The shell (`stream.py`) only sends, receives and sleeps, so this logic is
tested frame by frame without a server.

Two CometBFT behaviours (v0.37/v0.38, libs/pubsub and rpc/core/events.go)
shape it. When the node cancels a slow subscriber's subscription it forgets
the subscription in its event loop but not in the per-client bookkeeping that
`subscribe` checks, so subscribing again is refused ("already subscribed", or
"max_subscriptions_per_client" with all five in use): the query must be
unsubscribed first. And the node sends the cancellation without waiting, so
the message is lost when the client's write buffer is full, which is exactly
when cancellations happen; a gap in the block headers is the trace such a loss
leaves, and then only a new connection is sure to be clean. When the client
fell behind without a gap (a stall shorter than the node's 10 s write
timeout), the block headers arrive late: their lag behind the block time grows
well beyond what it was on this connection, which is taken as the same trace.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from chainmonitor.errors import InvalidQuery
from chainmonitor.events import BlockCommitted, ChainEvent
from chainmonitor.frames import ErrorReply, EventFrame, Frame, Reply, RequestId, subscribe_request
from chainmonitor.subscriptions import Subscription, Topic


@dataclass(frozen=True)
class Send:
    """Send this text frame."""

    text: str


@dataclass(frozen=True)
class Deliver:
    """Hand this event to the consumer. `topic` is None for an id no longer subscribed."""

    event: ChainEvent
    topic: Topic | None


@dataclass(frozen=True)
class Live:
    """Every subscription of the plan is acknowledged: events can no longer be missed."""


@dataclass(frozen=True)
class ResyncNeeded:
    """Events were lost on a subscription that is now renewed: re-read the state."""

    reason: str


@dataclass(frozen=True)
class Broken:
    """This connection cannot go on; `kind` says why, for the counters.

    "shutdown": the node is stopping; "refused": the node refused a
    subscription; "gap": block headers went missing, so the node dropped frames
    for us and may have dropped subscriptions without saying so; "behind": the
    headers arrive so late that the node may have done the same.
    """

    reason: str
    kind: Literal["shutdown", "refused", "gap", "behind"] = "refused"


@dataclass(frozen=True)
class Ignored:
    """A frame that needs nothing (an unknown id), with why, for the log."""

    reason: str


Action = Send | Deliver | Live | ResyncNeeded | Broken | Ignored

# Error texts after which the same query can never succeed (CometBFT's rpc/core/events.go).
_PERMANENT_REFUSALS = ("maximum query length exceeded", "failed to parse query")


def unsubscribe_request(request_id: int, query: str) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "unsubscribe", "params": {"query": query}},
        separators=(",", ":"),
    )


class StreamSession:
    """Subscription bookkeeping for one connection; a new connection gets a new session."""

    def __init__(
        self,
        plan: Sequence[Subscription],
        ids: Iterator[int] | None = None,
        max_lag_growth: float = 0.0,
    ) -> None:
        """`max_lag_growth` (seconds, 0 = off): see `_check_lag`."""
        self._plan = tuple(plan)
        self._max_lag_growth = max_lag_growth
        self._min_lag: float | None = None
        self._ids = ids if ids is not None else itertools.count(1)
        self._pending: dict[RequestId, Subscription] = {}
        self._active: dict[RequestId, Subscription] = {}
        # Cancelled subscriptions being renewed: unsubscribe sent, answer awaited.
        self._unsubscribing: dict[RequestId, Subscription] = {}
        self._renewing: set[Topic] = set()
        self._last_block: int | None = None
        self.live = False

    @property
    def active_topics(self) -> frozenset[Topic]:
        return frozenset(s.topic for s in self._active.values())

    def _subscribe(self, sub: Subscription) -> Send:
        request_id = next(self._ids)
        self._pending[request_id] = sub
        return Send(subscribe_request(request_id, sub.query))

    def start(self) -> list[Action]:
        """The subscribe requests to send right after connecting."""
        return [self._subscribe(s) for s in self._plan]

    def on_frame(self, frame: Frame, received_at: float | None = None) -> list[Action]:
        """Actions for one frame; `received_at` (wall clock, seconds) enables the lag check."""
        if isinstance(frame, EventFrame):
            sub = self._active.get(frame.request_id)
            topic = sub.topic if sub else None
            actions: list[Action] = [Deliver(frame.event, topic)]
            if topic is Topic.BLOCKS and isinstance(frame.event, BlockCommitted):
                actions += self._check_block_sequence(frame.event.height)
                if received_at is not None and frame.event.time is not None:
                    actions += self._check_lag(received_at - frame.event.time)
            return actions
        if isinstance(frame, Reply):
            return self._on_reply(frame)
        return self._on_error(frame)

    def _check_block_sequence(self, height: int) -> list[Action]:
        # Every block has a header event, so a gap means the node dropped frames
        # meant for us; it may have cancelled other subscriptions silently too.
        last, self._last_block = self._last_block, max(height, self._last_block or 0)
        if last is None or height <= last + 1:
            return []
        return [Broken(f"block headers {last + 1}..{height - 1} never arrived", "gap")]

    def _check_lag(self, lag: float) -> list[Action]:
        # The lag of a header behind its block time is roughly constant while
        # the client keeps up (block interval plus execution; clock offsets
        # cancel out against this connection's own minimum). A node catching up
        # is late from its first header on, so only growth counts.
        if self._max_lag_growth <= 0:
            return []
        if self._min_lag is None or lag < self._min_lag:
            self._min_lag = lag
            return []
        if lag - self._min_lag <= self._max_lag_growth:
            return []
        growth = lag - self._min_lag
        return [Broken(f"block headers arrive {growth:.1f}s later than before", "behind")]

    def _on_reply(self, frame: Reply) -> list[Action]:
        cancelled = self._unsubscribing.pop(frame.request_id, None)
        if cancelled is not None:
            return [self._subscribe(cancelled)]
        sub = self._pending.pop(frame.request_id, None)
        if sub is None:
            return [Ignored(f"reply to unknown request {frame.request_id!r}")]
        self._active[frame.request_id] = sub
        if sub.topic in self._renewing:
            self._renewing.discard(sub.topic)
            return [ResyncNeeded(f"{sub.topic} subscription renewed after cancellation")]
        if not self.live and not self._pending:
            self.live = True
            return [Live()]
        return []

    def _on_error(self, frame: ErrorReply) -> list[Action]:
        request_id = frame.request_id
        if request_id is not None and request_id in self._unsubscribing:
            # "subscription not found" also means the query is free again.
            return [self._subscribe(self._unsubscribing.pop(request_id))]
        if request_id in self._active:
            sub = self._active.pop(request_id)
            if not frame.cancelled:
                return [Ignored(f"error on live subscription {sub.topic}: {frame.text}")]
            if "CometBFT exited" in frame.data:
                return [Broken("node is shutting down", "shutdown")]
            # Everything the subscription would have sent is lost: free the query
            # (see the module docstring), subscribe again, then resync.
            self._renewing.add(sub.topic)
            unsubscribe_id = next(self._ids)
            self._unsubscribing[unsubscribe_id] = sub
            return [Send(unsubscribe_request(unsubscribe_id, sub.query))]
        if request_id in self._pending:
            sub = self._pending.pop(request_id)
            if any(text in frame.data for text in _PERMANENT_REFUSALS):
                raise InvalidQuery(f"node refused {sub.topic} subscription: {frame.text}")
            return [Broken(f"node refused {sub.topic} subscription: {frame.text}")]
        return [Ignored(f"error for unknown request {request_id!r}: {frame.text}")]
