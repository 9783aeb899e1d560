"""Pure parsing of CometBFT WebSocket JSON-RPC frames: the envelope around replies and events.

Kept free of I/O so that every shape the node can send (replies, errors,
slow-subscriber cancellations, garbage, frames over the size limit) is tested
on recorded bytes. What an event frame's data means is `chainmonitor.abci_events`.
Anything that does not match the documented shape is a `FrameRejected`, which
the stream counts and drops; nothing here raises anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, NotRequired, TypedDict

from chainmonitor.abci_events import RawEventData, parse_event
from chainmonitor.errors import FrameRejected
from chainmonitor.events import ChainEvent
from chainmonitor.jsonshape import as_object, as_text

# CometBFT's own default `max_body_bytes` is 1 MB for requests; event frames
# carry whole blocks (NewBlock), so the client allows more but not unbounded.
DEFAULT_MAX_FRAME_BYTES: Final = 4 * 1024 * 1024

CANCELLED_MARK: Final = "subscription was canceled"

RequestId = int | str


# ---- the wire, as CometBFT writes it (documentation for the parser below) ----------


class RawEventResult(TypedDict):
    query: str
    data: RawEventData
    events: NotRequired[dict[str, list[str]]]


class RawRpcError(TypedDict):
    code: int
    message: str
    data: NotRequired[str]


class RawResponse(TypedDict):
    jsonrpc: str
    id: NotRequired[RequestId]
    result: NotRequired[object]
    error: NotRequired[RawRpcError]


class SubscribeRequest(TypedDict):
    jsonrpc: str
    id: int
    method: str
    params: dict[str, str]


# ---- parsed frames ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A successful answer to one of our requests (a subscribe acknowledgement)."""

    request_id: RequestId


@dataclass(frozen=True)
class ErrorReply:
    """An error on one of our request ids: a refused request or a cancelled subscription."""

    request_id: RequestId | None
    code: int
    message: str
    data: str = ""

    @property
    def cancelled(self) -> bool:
        """The server dropped this subscription (slow client, shutting down)."""
        return CANCELLED_MARK in self.data

    @property
    def text(self) -> str:
        return f"{self.code} {self.message}{': ' + self.data if self.data else ''}"


@dataclass(frozen=True)
class EventFrame:
    """An event delivered on subscription `request_id` (the id of its subscribe request)."""

    request_id: RequestId
    query: str
    event: ChainEvent


Frame = Reply | ErrorReply | EventFrame


# ---- frames ----------------------------------------------------------------------


def _request_id(value: object) -> RequestId | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        return value
    raise FrameRejected("bad id", f"id of type {type(value).__name__}")


def parse_frame(raw: str | bytes, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Frame:
    """One WebSocket message from CometBFT's `/websocket` as a typed frame.

    Raises FrameRejected (and nothing else) when it is too large, not JSON, or
    not a JSON-RPC response of a known shape.
    """
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise FrameRejected("oversized", f"{size} bytes > {max_bytes}")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise FrameRejected("not json", str(e)[:80]) from e
    except RecursionError as e:  # the stdlib decoder recurses per nesting level
        raise FrameRejected("not json", "nested too deeply") from e
    try:
        return _parse_response(doc)
    except RecursionError as e:
        raise FrameRejected("bad shape", "nested too deeply") from e


def _parse_response(doc: object) -> Frame:
    response = as_object(doc, "frame")
    request_id = _request_id(response.get("id"))
    if "error" in response and response["error"] is not None:
        err = as_object(response["error"], "error")
        code = err.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise FrameRejected("bad shape", "error.code is not an integer")
        return ErrorReply(
            request_id=request_id,
            code=code,
            message=as_text(err.get("message"), "error.message", default=""),
            data=as_text(err.get("data"), "error.data", default=""),
        )
    if request_id is None:
        raise FrameRejected("no id", "a result without a request id")
    if "result" not in response:
        raise FrameRejected("bad shape", "neither result nor error")
    result = response["result"]
    if isinstance(result, dict) and "data" in result:
        events_map = result.get("events") or {}
        event = parse_event(
            as_object(result["data"], "result.data"), as_object(events_map, "result.events")
        )
        return EventFrame(
            request_id, as_text(result.get("query"), "result.query", default=""), event
        )
    return Reply(request_id)


def subscribe_request(request_id: int, query: str) -> str:
    """The JSON text of a `subscribe` request (CometBFT ignores requests without an id)."""
    request: SubscribeRequest = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "subscribe",
        "params": {"query": query},
    }
    return json.dumps(request, separators=(",", ":"))
