"""The edit we sign changes only `details`, a grantee wraps it in MsgExec, errors map clearly."""

from __future__ import annotations

import pytest
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.staking.v1beta1.tx_pb2 import MsgEditValidator

from chainmonitor.addresses import bech32_encode
from chainmonitor.errors import (
    AuthzUnsupported,
    InsufficientFees,
    PublishError,
    TxRejected,
    UnauthorizedSigner,
    UnknownValidator,
)
from chainmonitor.keys import SigningKey, operator_of
from chainmonitor.publish import (
    DO_NOT_MODIFY,
    classify_failure,
    edit_details_msg,
    exec_msg,
    signing_mode,
)
from chainmonitor.txdecode import edited_validators

OPERATOR = bech32_encode("cosmosvaloper", b"\x05" * 20)


def test_every_other_description_field_is_left_alone() -> None:
    msg = edit_details_msg(OPERATOR, "Validator bob - p2p=192.168.97.110")
    d = msg.description
    assert (d.moniker, d.identity, d.website, d.security_contact) == (DO_NOT_MODIFY,) * 4
    assert d.details == "Validator bob - p2p=192.168.97.110"
    assert msg.validator_address == OPERATOR
    # Unset, not "": the chain would otherwise try to change the commission.
    assert not msg.commission_rate
    assert not msg.min_self_delegation


def test_details_limits() -> None:
    assert edit_details_msg(OPERATOR, "é" * 140).description.details
    with pytest.raises(PublishError, match="exceed"):
        edit_details_msg(OPERATOR, "é" * 141)
    with pytest.raises(PublishError):
        edit_details_msg(OPERATOR, DO_NOT_MODIFY)


def test_grantee_message_is_msg_exec_the_decoder_attributes_to_the_operator() -> None:
    grantee = bech32_encode("cosmos", b"\x07" * 20)
    wrapped = exec_msg(grantee, edit_details_msg(OPERATOR, "p2p=10.1.1.1"))
    assert wrapped.grantee == grantee
    [inner] = wrapped.msgs
    assert inner.type_url == "/cosmos.staking.v1beta1.MsgEditValidator"
    assert MsgEditValidator.FromString(inner.value).validator_address == OPERATOR
    from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import Tx, TxBody
    from google.protobuf import any_pb2

    outer = any_pb2.Any()
    outer.Pack(wrapped, type_url_prefix="/")
    assert edited_validators(Tx(body=TxBody(messages=[outer])).SerializeToString()) == (OPERATOR,)


def test_mode_follows_the_key() -> None:
    key = SigningKey("test", PrivateKey(bytes(range(1, 33))))
    assert signing_mode(key, operator_of(key)) == "operator"
    assert signing_mode(key, OPERATOR) == "grantee"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("insufficient fees; got: 0stake required: 200stake: insufficient fee", InsufficientFees),
        (
            "failed to execute message; message index: 0: authorization not found: unauthorized",
            UnauthorizedSigner,
        ),
        ("validator does not exist", UnknownValidator),
        (
            "unable to resolve type URL /cosmos.authz.v1beta1.MsgExec: tx parse error",
            AuthzUnsupported,
        ),
        ("spendable balance 0stake is smaller than 5stake: insufficient funds", TxRejected),
        ("something else", TxRejected),
    ],
)
def test_chain_failures_are_classified(text: str, kind: type[PublishError]) -> None:
    error = classify_failure(text, "ABC")
    assert isinstance(error, kind)
    assert not error.transient


def test_a_node_lost_after_broadcast_is_reported_as_not_committed_not_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Failing over after a broadcast would sign the same sequence again: the error must not
    look like an unreachable node (which the service answers by trying the next one)."""
    from chainmonitor.errors import ChainUnavailable, TxNotCommitted
    from chainmonitor.publish import ChainConnection, EndpointPublisher
    from chainmonitor.types import Description

    key = SigningKey("test", PrivateKey(bytes(range(1, 33))))
    publisher = EndpointPublisher(ChainConnection("127.0.0.1:1"), key)
    sent: list[object] = []
    monkeypatch.setattr(
        publisher, "current_description", lambda _op: Description("m", "", "", "", "")
    )

    def broadcast(msg: object, _prefix: str) -> str:
        sent.append(msg)
        return "ABCD"

    monkeypatch.setattr(publisher, "_broadcast", broadcast)

    def node_gone(tx_hash: str) -> int:
        raise ChainUnavailable(f"waiting for tx {tx_hash}: connection refused")

    monkeypatch.setattr(publisher, "_wait_for_commit", node_gone)
    with pytest.raises(TxNotCommitted) as info:
        publisher.publish_details(operator_of(key), lambda _d: "p2p=198.51.100.1")
    assert not isinstance(info.value, ChainUnavailable)
    assert info.value.tx_hash == "ABCD"
    assert "connection refused" in str(info.value)
    assert len(sent) == 1
