"""Decoding a committed tx names every validator its MsgEditValidator messages edit.

The edit event has no validator address and an authz grantee's tx has the
grantee as sender, so the monitor relies on this decoder; txs are built here
with cosmpy's full upstream protobuf definitions, which the chain uses too.
"""

from __future__ import annotations

import contextlib

import pytest
from cosmpy.protos.cosmos.authz.v1beta1.tx_pb2 import MsgExec
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.staking.v1beta1.staking_pb2 import Description
from cosmpy.protos.cosmos.staking.v1beta1.tx_pb2 import MsgEditValidator
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, Tx, TxBody
from google.protobuf import any_pb2
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from chainmonitor.addresses import bech32_encode
from chainmonitor.errors import InvalidChainData
from chainmonitor.txdecode import edited_validators, message_types
from tests.support.snapshots import op


def packed(msg: Message) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg, type_url_prefix="/")
    return a


def edit(n: int) -> MsgEditValidator:
    return MsgEditValidator(
        description=Description(moniker="[do-not-modify]", details=f"p2p=10.0.0.{n}"),
        validator_address=op(n),
    )


def tx_bytes(*msgs: Message) -> bytes:
    tx = Tx(body=TxBody(messages=[packed(m) for m in msgs], memo="m"), auth_info=AuthInfo())
    tx.signatures.append(b"\x01" * 64)
    data: bytes = tx.SerializeToString()
    return data


def test_direct_edit() -> None:
    assert edited_validators(tx_bytes(edit(1))) == (op(1),)


def test_edit_inside_authz_exec_names_the_validator_not_the_grantee() -> None:
    grantee = bech32_encode("cosmos", b"\x09" * 20)
    assert edited_validators(tx_bytes(MsgExec(grantee=grantee, msgs=[packed(edit(2))]))) == (op(2),)


def test_nested_exec_and_other_messages() -> None:
    inner = MsgExec(grantee="g", msgs=[packed(edit(3)), packed(MsgSend(from_address="x"))])
    outer = MsgExec(grantee="g", msgs=[packed(inner)])
    data = tx_bytes(MsgSend(from_address="y"), outer, edit(4), edit(3))
    assert edited_validators(data) == (op(3), op(4))
    assert message_types(data) == (
        "/cosmos.bank.v1beta1.MsgSend",
        "/cosmos.authz.v1beta1.MsgExec",
        "/cosmos.staking.v1beta1.MsgEditValidator",
        "/cosmos.staking.v1beta1.MsgEditValidator",
    )


def test_exec_nested_too_deep_is_refused() -> None:
    msg: Message = edit(5)
    for _ in range(6):
        msg = MsgExec(grantee="g", msgs=[packed(msg)])
    with pytest.raises(InvalidChainData):
        edited_validators(tx_bytes(msg))


def test_tx_without_edits() -> None:
    assert edited_validators(tx_bytes(MsgSend(from_address="a"))) == ()


def test_edit_with_a_malformed_address_is_an_error() -> None:
    bad = MsgEditValidator(validator_address="cosmosvaloper1notbech32")
    with pytest.raises(InvalidChainData):
        edited_validators(tx_bytes(bad))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_invalid_chain_data(data: bytes) -> None:
    with contextlib.suppress(InvalidChainData):
        edited_validators(data)
