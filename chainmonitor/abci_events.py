"""What the provider's events mean: ABCI events of txs and blocks as typed chain events.

The JSON-RPC envelope around them is `chainmonitor.frames`; this module reads
the event data inside it (`tendermint/event/Tx`, `.../NewBlock`,
`.../NewBlockHeader`, `.../NewBlockEvents`) into `chainmonitor.events` values.
Pure: every shape is tested on recorded bytes, and anything that does not
match is a `FrameRejected`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
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
from chainmonitor.jsonshape import as_height, as_list, as_object, as_text
from chainmonitor.txdecode import edited_validators
from chainmonitor.types import ChainId, ConsumerId

TX_EVENT: Final = "tendermint/event/Tx"
NEW_BLOCK_EVENT: Final = "tendermint/event/NewBlock"
NEW_BLOCK_HEADER_EVENT: Final = "tendermint/event/NewBlockHeader"
NEW_BLOCK_EVENTS_EVENT: Final = "tendermint/event/NewBlockEvents"


# ---- the event data, as CometBFT writes it (documentation for the parser below) ----


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


def _abci_events(value: object, what: str) -> tuple[AbciEvent, ...]:
    out: list[AbciEvent] = []
    for i, raw in enumerate(as_list(value, what)):
        ev = as_object(raw, f"{what}[{i}]")
        attrs: list[tuple[str, str]] = []
        for j, raw_attr in enumerate(as_list(ev.get("attributes"), f"{what}[{i}].attributes")):
            attr = as_object(raw_attr, f"{what}[{i}].attributes[{j}]")
            attrs.append(
                (
                    as_text(attr.get("key"), "attribute key", default=""),
                    as_text(attr.get("value"), "attribute value", default=""),
                )
            )
        out.append(AbciEvent(as_text(ev.get("type"), f"{what}[{i}].type"), tuple(attrs)))
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
    tx_result = as_object(value.get("TxResult"), "TxResult")
    height = as_height(tx_result.get("height"), "TxResult.height")
    tx_b64 = as_text(tx_result.get("tx"), "TxResult.tx", default="")
    try:
        tx_bytes = base64.b64decode(tx_b64, validate=True) if tx_b64 else None
    except (binascii.Error, ValueError) as e:
        raise FrameRejected("bad tx", "TxResult.tx is not base64") from e
    result = as_object(tx_result.get("result", {}), "TxResult.result")
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
    header = as_object(value.get("header"), f"{what}.header")
    return as_height(header.get("height"), f"{what}.header.height"), block_time(header.get("time"))


def _block_event(kind: str, value: Mapping[str, object]) -> BlockCommitted:
    if kind == NEW_BLOCK_HEADER_EVENT:
        height, when = _header(value, "value")
        return BlockCommitted(height, time=when)
    if kind == NEW_BLOCK_EVENTS_EVENT:  # v0.38: height and block events, without the block
        height = as_height(value.get("height"), "value.height")
        return BlockCommitted(height, _launches(_abci_events(value.get("events"), "events")))
    block = as_object(value.get("block"), "value.block")
    height, when = _header(block, "block")
    events: list[AbciEvent] = []
    if "result_finalize_block" in value:  # v0.38
        finalize = as_object(value["result_finalize_block"], "result_finalize_block")
        events += _abci_events(finalize.get("events"), "result_finalize_block.events")
    for part in ("result_begin_block", "result_end_block"):  # v0.37
        if part in value and value[part] is not None:
            section = as_object(value[part], part)
            events += _abci_events(section.get("events"), f"{part}.events")
    return BlockCommitted(height, _launches(events), when)


def parse_event(data: Mapping[str, object], events_map: Mapping[str, object]) -> ChainEvent:
    """Typed event of one `result.data` ({type, value}) with its `result.events` map."""
    kind = as_text(data.get("type"), "data.type")
    value = as_object(data.get("value"), "data.value")
    if kind == TX_EVENT:
        return _tx_event(value, events_map)
    if kind in (NEW_BLOCK_EVENT, NEW_BLOCK_HEADER_EVENT, NEW_BLOCK_EVENTS_EVENT):
        return _block_event(kind, value)
    return OtherEvent(kind)
