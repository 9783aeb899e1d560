"""Pure parsing of CometBFT WebSocket JSON-RPC frames into typed replies and chain events.

Kept free of I/O so that every shape the node can send (v0.37 and v0.38 blocks,
tx results with omitted zero fields, slow-subscriber cancellations, garbage) is
tested on recorded bytes. Anything that does not match the documented shape is
a `FrameRejected`, which the stream counts and drops; nothing here raises
anything else.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NotRequired, TypedDict

from chainmonitor.addresses import OperatorAddress, operator_from_account, parse_operator
from chainmonitor.errors import FrameRejected, InvalidChainData
from chainmonitor.events import (
    AUTHZ_EXEC_ACTION,
    EDIT_VALIDATOR_ACTION,
    AbciEvent,
    BlockCommitted,
    ChainEvent,
    ConsumerAction,
    ConsumerActionKind,
    ConsumerLaunch,
    OtherEvent,
    TxCommitted,
)
from chainmonitor.txdecode import edited_validators
from chainmonitor.types import ChainId, ConsumerId

# CometBFT's own default `max_body_bytes` is 1 MB for requests; event frames
# carry whole blocks (NewBlock), so the client allows more but not unbounded.
DEFAULT_MAX_FRAME_BYTES: Final = 4 * 1024 * 1024

TX_EVENT: Final = "tendermint/event/Tx"
NEW_BLOCK_EVENT: Final = "tendermint/event/NewBlock"
NEW_BLOCK_HEADER_EVENT: Final = "tendermint/event/NewBlockHeader"
NEW_BLOCK_EVENTS_EVENT: Final = "tendermint/event/NewBlockEvents"

CANCELLED_MARK: Final = "subscription was canceled"

RequestId = int | str


# ---- the wire, as CometBFT writes it (documentation for the parser below) ----------


class RawAttribute(TypedDict):
    key: NotRequired[str]
    value: NotRequired[str]  # omitted when empty
    index: NotRequired[bool]


class RawAbciEvent(TypedDict):
    type: str
    attributes: NotRequired[list[RawAttribute]]


class RawExecTxResult(TypedDict):
    code: NotRequired[int]  # omitted when 0
    log: NotRequired[str]
    events: NotRequired[list[RawAbciEvent]]


class RawTxResult(TypedDict):
    height: str  # int64 as a JSON string
    index: NotRequired[int]
    tx: str  # base64
    result: RawExecTxResult


class RawEventData(TypedDict):
    type: str  # "tendermint/event/Tx", ".../NewBlock", ...
    value: dict[str, object]


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


# ---- validation helpers ----------------------------------------------------------


def _obj(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise FrameRejected("bad shape", f"{what} is not an object")
    return value


def _list(value: object, what: str) -> Sequence[object]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise FrameRejected("bad shape", f"{what} is not a list")
    return value


def _str(value: object, what: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise FrameRejected("bad shape", f"{what} is not a string")
    return value


def _height(value: object, what: str) -> int:
    # int64 heights are JSON strings in CometBFT's encoding; accept numbers too.
    if isinstance(value, bool):
        raise FrameRejected("bad height", what)
    if isinstance(value, int):
        height = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        height = int(value)
    else:
        raise FrameRejected("bad height", f"{what}: {str(value)[:40]!r}")
    if height < 0 or height >= 2**63:
        raise FrameRejected("bad height", f"{what}: {height}")
    return height


def _request_id(value: object) -> RequestId | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        return value
    raise FrameRejected("bad id", f"id of type {type(value).__name__}")


def _abci_events(value: object, what: str) -> tuple[AbciEvent, ...]:
    out: list[AbciEvent] = []
    for i, raw in enumerate(_list(value, what)):
        ev = _obj(raw, f"{what}[{i}]")
        attrs: list[tuple[str, str]] = []
        for j, raw_attr in enumerate(_list(ev.get("attributes"), f"{what}[{i}].attributes")):
            attr = _obj(raw_attr, f"{what}[{i}].attributes[{j}]")
            attrs.append(
                (
                    _str(attr.get("key"), "attribute key", default=""),
                    _str(attr.get("value"), "attribute value", default=""),
                )
            )
        out.append(AbciEvent(_str(ev.get("type"), f"{what}[{i}].type"), tuple(attrs)))
    return tuple(out)


def _consumer_id(value: str | None) -> ConsumerId | None:
    if value and value.isascii() and value.isdigit() and (value == "0" or value[0] != "0"):
        return ConsumerId(value)
    return None


def _operator(value: str | None) -> OperatorAddress | None:
    if not value:
        return None
    try:
        return parse_operator(value)
    except InvalidChainData:
        return None


# ---- tx events -------------------------------------------------------------------


def _consumer_actions(events: Sequence[AbciEvent]) -> tuple[ConsumerAction, ...]:
    kinds = {k.value: k for k in ConsumerActionKind}
    actions: list[ConsumerAction] = []
    for ev in events:
        kind = kinds.get(ev.type)
        if kind is None:
            continue
        chain_id = ev.get("consumer_chain_id")
        actions.append(
            ConsumerAction(
                kind=kind,
                consumer_id=_consumer_id(ev.get("consumer_id")),
                chain_id=ChainId(chain_id) if chain_id else None,
                validator=_operator(ev.get("provider_validator_address")),
            )
        )
    return tuple(actions)


def _edits(
    tx_bytes: bytes | None, events: Sequence[AbciEvent]
) -> tuple[tuple[OperatorAddress, ...], bool]:
    """Validators edited by the tx, and whether some edit could not be attributed."""
    edit_events = sum(1 for ev in events if ev.type == "edit_validator")
    if tx_bytes is not None:
        try:
            decoded = edited_validators(tx_bytes)
        except InvalidChainData:
            decoded = ()
        if decoded or edit_events == 0:
            return decoded, False
    # Fallback: a direct MsgEditValidator's `message` event names the validator's
    # account as sender (same bytes as the operator address).
    senders: list[OperatorAddress] = []
    for ev in events:
        if ev.type == "message" and ev.get("action") == EDIT_VALIDATOR_ACTION:
            try:
                senders.append(operator_from_account(ev.get("sender") or ""))
            except InvalidChainData:
                continue
    edited = tuple(dict.fromkeys(senders))
    return edited, edit_events > len(senders)


def _tx_event(value: Mapping[str, object], events_map: Mapping[str, object]) -> TxCommitted:
    tx_result = _obj(value.get("TxResult"), "TxResult")
    height = _height(tx_result.get("height"), "TxResult.height")
    tx_b64 = _str(tx_result.get("tx"), "TxResult.tx", default="")
    try:
        tx_bytes = base64.b64decode(tx_b64, validate=True) if tx_b64 else None
    except (binascii.Error, ValueError) as e:
        raise FrameRejected("bad tx", "TxResult.tx is not base64") from e
    result = _obj(tx_result.get("result", {}), "TxResult.result")
    code = result.get("code", 0)
    if not isinstance(code, int) or isinstance(code, bool) or code < 0:
        raise FrameRejected("bad shape", "TxResult.result.code is not a uint32")
    events = _abci_events(result.get("events"), "TxResult.result.events")

    hashes = events_map.get("tx.hash")
    if isinstance(hashes, list) and hashes and isinstance(hashes[0], str):
        tx_hash = hashes[0].upper()
    elif tx_bytes is not None:
        tx_hash = hashlib.sha256(tx_bytes).hexdigest().upper()
    else:
        tx_hash = ""
    edited, unresolved = _edits(tx_bytes, events)
    return TxCommitted(
        height=height,
        tx_hash=tx_hash,
        code=code,
        edited=edited,
        edits_unresolved=unresolved,
        consumer_actions=_consumer_actions(events),
        authz=any(ev.type == "message" and ev.get("action") == AUTHZ_EXEC_ACTION for ev in events),
    )


# ---- block events ----------------------------------------------------------------


def _launches(events: Sequence[AbciEvent]) -> tuple[ConsumerLaunch, ...]:
    out: list[ConsumerLaunch] = []
    for ev in events:
        if ev.type != "consumer_client_created":
            continue
        consumer_id = _consumer_id(ev.get("consumer_id"))
        chain_id = ev.get("consumer_chain_id")
        if consumer_id is None or not chain_id:
            continue
        out.append(ConsumerLaunch(consumer_id, ChainId(chain_id), ev.get("client_id") or ""))
    return tuple(out)


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def block_time(text: object) -> float | None:
    """Seconds since the epoch of a CometBFT RFC 3339 time (with nanoseconds); None if not one."""
    if not isinstance(text, str):
        return None
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        whole = dt.datetime.fromisoformat(m.group(1) + zone)
    except ValueError:
        return None
    return whole.timestamp() + int((m.group(2) or "0").ljust(9, "0")) / 1e9


def _header(value: Mapping[str, object], what: str) -> tuple[int, float | None]:
    header = _obj(value.get("header"), f"{what}.header")
    return _height(header.get("height"), f"{what}.header.height"), block_time(header.get("time"))


def _block_event(kind: str, value: Mapping[str, object]) -> BlockCommitted:
    if kind == NEW_BLOCK_HEADER_EVENT:
        height, when = _header(value, "value")
        return BlockCommitted(height, time=when)
    if kind == NEW_BLOCK_EVENTS_EVENT:  # v0.38: height and block events, without the block
        height = _height(value.get("height"), "value.height")
        return BlockCommitted(height, _launches(_abci_events(value.get("events"), "events")))
    block = _obj(value.get("block"), "value.block")
    height, when = _header(block, "block")
    events: list[AbciEvent] = []
    if "result_finalize_block" in value:  # v0.38
        finalize = _obj(value["result_finalize_block"], "result_finalize_block")
        events += _abci_events(finalize.get("events"), "result_finalize_block.events")
    for part in ("result_begin_block", "result_end_block"):  # v0.37
        if part in value and value[part] is not None:
            section = _obj(value[part], part)
            events += _abci_events(section.get("events"), f"{part}.events")
    return BlockCommitted(height, _launches(events), when)


def parse_event(data: Mapping[str, object], events_map: Mapping[str, object]) -> ChainEvent:
    """Typed event of one `result.data` ({type, value}) with its `result.events` map."""
    kind = _str(data.get("type"), "data.type")
    value = _obj(data.get("value"), "data.value")
    if kind == TX_EVENT:
        return _tx_event(value, events_map)
    if kind in (NEW_BLOCK_EVENT, NEW_BLOCK_HEADER_EVENT, NEW_BLOCK_EVENTS_EVENT):
        return _block_event(kind, value)
    return OtherEvent(kind)


# ---- frames ----------------------------------------------------------------------


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
    response = _obj(doc, "frame")
    request_id = _request_id(response.get("id"))
    if "error" in response and response["error"] is not None:
        err = _obj(response["error"], "error")
        code = err.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise FrameRejected("bad shape", "error.code is not an integer")
        return ErrorReply(
            request_id=request_id,
            code=code,
            message=_str(err.get("message"), "error.message", default=""),
            data=_str(err.get("data"), "error.data", default=""),
        )
    if request_id is None:
        raise FrameRejected("no id", "a result without a request id")
    if "result" not in response:
        raise FrameRejected("bad shape", "neither result nor error")
    result = response["result"]
    if isinstance(result, dict) and "data" in result:
        events_map = result.get("events") or {}
        event = parse_event(_obj(result["data"], "result.data"), _obj(events_map, "result.events"))
        return EventFrame(request_id, _str(result.get("query"), "result.query", default=""), event)
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
