"""Decode a committed transaction's bytes to learn which validators its edits touched.

The `edit_validator` event carries no validator address, and when a grantee
edits through authz `MsgExec` the tx's `message.sender` is the grantee, not the
validator. The signed tx itself names the validator in every `MsgEditValidator`,
so it is decoded here (minimal protobuf definitions, nested `MsgExec` followed).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from chainmonitor._proto.cosmos.authz.v1beta1 import tx_pb2 as authz_tx_pb2
from chainmonitor._proto.cosmos.staking.v1beta1 import tx_pb2 as staking_tx_pb2
from chainmonitor._proto.cosmos.tx.v1beta1 import tx_pb2
from chainmonitor.addresses import OperatorAddress, parse_operator
from chainmonitor.errors import InvalidChainData
from chainmonitor.events import AUTHZ_EXEC_ACTION, EDIT_VALIDATOR_ACTION

# MsgExec may nest MsgExec; the SDK does not bound it, this decoder does.
_MAX_DEPTH = 4


def _type_name(type_url: str) -> str:
    return "/" + type_url.rsplit("/", 1)[-1]


def _walk(messages: list[tuple[str, bytes]], depth: int, out: list[OperatorAddress]) -> None:
    for type_url, value in messages:
        name = _type_name(type_url)
        if name == EDIT_VALIDATOR_ACTION:
            edit = staking_tx_pb2.MsgEditValidator.FromString(value)
            out.append(parse_operator(edit.validator_address))
        elif name == AUTHZ_EXEC_ACTION:
            if depth >= _MAX_DEPTH:
                raise InvalidChainData("tx", f"MsgExec nested deeper than {_MAX_DEPTH}")
            exec_msg = authz_tx_pb2.MsgExec.FromString(value)
            _walk([(m.type_url, m.value) for m in exec_msg.msgs], depth + 1, out)


def edited_validators(tx_bytes: bytes) -> tuple[OperatorAddress, ...]:
    """Operator addresses of every MsgEditValidator in the tx, in message order, deduplicated.

    Raises InvalidChainData when the bytes are not a decodable tx or an address is malformed.
    """
    try:
        tx = tx_pb2.Tx.FromString(tx_bytes)
        found: list[OperatorAddress] = []
        _walk([(m.type_url, m.value) for m in tx.body.messages], 0, found)
    except DecodeError as e:
        raise InvalidChainData("tx", f"not a decodable cosmos tx: {e}") from e
    return tuple(dict.fromkeys(found))


def message_types(tx_bytes: bytes) -> tuple[str, ...]:
    """Type URLs of the tx's top-level messages (for logs and tests)."""
    try:
        tx = tx_pb2.Tx.FromString(tx_bytes)
    except DecodeError as e:
        raise InvalidChainData("tx", f"not a decodable cosmos tx: {e}") from e
    return tuple(_type_name(m.type_url) for m in tx.body.messages)
