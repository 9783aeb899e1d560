"""Our minimal cosmos protos keep upstream's names, numbers and types, and coexist with cosmpy's.

cosmpy ships the full upstream cosmos-sdk definitions, so each field of our
copies is checked against the same field there. The provider (ICS) copies are
proven against the real chain by the chain monitor's integration tests.
"""

from __future__ import annotations

import pytest
from cosmpy.protos.cosmos.authz.v1beta1 import tx_pb2 as up_authz
from cosmpy.protos.cosmos.base.query.v1beta1 import pagination_pb2 as up_pagination
from cosmpy.protos.cosmos.crypto.ed25519 import keys_pb2 as up_ed25519
from cosmpy.protos.cosmos.staking.v1beta1 import query_pb2 as up_query
from cosmpy.protos.cosmos.staking.v1beta1 import staking_pb2 as up_staking
from cosmpy.protos.cosmos.staking.v1beta1 import tx_pb2 as up_tx
from cosmpy.protos.cosmos.tx.v1beta1 import tx_pb2 as up_txs
from google.protobuf.descriptor import Descriptor

from chainmonitor._proto.cosmos.authz.v1beta1 import tx_pb2 as authz
from chainmonitor._proto.cosmos.base.query.v1beta1 import pagination_pb2 as pagination
from chainmonitor._proto.cosmos.crypto.ed25519 import keys_pb2 as ed25519
from chainmonitor._proto.cosmos.staking.v1beta1 import query_pb2, staking_pb2, tx_pb2
from chainmonitor._proto.cosmos.tx.v1beta1 import tx_pb2 as txs
from chainmonitor._proto.interchain_security.ccv.provider.v1 import provider_pb2
from chainmonitor._proto.interchain_security.ccv.provider.v1 import query_pb2 as provider_query

PAIRS = [
    (pagination.PageRequest, up_pagination.PageRequest),
    (pagination.PageResponse, up_pagination.PageResponse),
    (staking_pb2.Description, up_staking.Description),
    (staking_pb2.Validator, up_staking.Validator),
    (query_pb2.QueryValidatorsRequest, up_query.QueryValidatorsRequest),
    (query_pb2.QueryValidatorsResponse, up_query.QueryValidatorsResponse),
    (query_pb2.QueryValidatorRequest, up_query.QueryValidatorRequest),
    (query_pb2.QueryValidatorResponse, up_query.QueryValidatorResponse),
    (tx_pb2.MsgEditValidator, up_tx.MsgEditValidator),
    (authz.MsgExec, up_authz.MsgExec),
    (txs.Tx, up_txs.Tx),
    (txs.TxBody, up_txs.TxBody),
    (ed25519.PubKey, up_ed25519.PubKey),
]


@pytest.mark.parametrize(("ours", "upstream"), PAIRS, ids=lambda c: c.DESCRIPTOR.full_name)
def test_fields_match_upstream(ours: type, upstream: type) -> None:
    mine: Descriptor = ours.DESCRIPTOR  # type: ignore[attr-defined]
    theirs: Descriptor = upstream.DESCRIPTOR  # type: ignore[attr-defined]
    assert mine.full_name == theirs.full_name
    for field in mine.fields:
        other = theirs.fields_by_number[field.number]
        assert field.name == other.name
        assert field.type == other.type
        # `label` is missing from the protobuf type stubs, not from the runtime.
        assert field.label == other.label  # type: ignore[attr-defined]
        if field.message_type is not None:
            assert field.message_type.full_name == other.message_type.full_name


def test_bond_status_enum_matches_upstream() -> None:
    assert dict(staking_pb2.BondStatus.items()) == dict(up_staking.BondStatus.items())


def test_messages_round_trip_through_upstream_bytes() -> None:
    v = up_staking.Validator(operator_address="op", jailed=True, status=3, tokens="5")
    v.description.details = "p2p=1.2.3.4"
    v.consensus_pubkey.Pack(up_ed25519.PubKey(key=b"k" * 32), type_url_prefix="/")
    v.commission.commission_rates.rate = "0.1"  # a field our copy does not have
    mine = staking_pb2.Validator.FromString(v.SerializeToString())
    assert (mine.operator_address, mine.jailed, mine.status, mine.tokens) == ("op", True, 3, "5")
    assert mine.description.details == "p2p=1.2.3.4"
    assert mine.consensus_pubkey.type_url == "/cosmos.crypto.ed25519.PubKey"


def test_provider_enum_numbers() -> None:
    assert dict(provider_pb2.ConsumerPhase.items()) == {
        "CONSUMER_PHASE_UNSPECIFIED": 0,
        "CONSUMER_PHASE_REGISTERED": 1,
        "CONSUMER_PHASE_INITIALIZED": 2,
        "CONSUMER_PHASE_LAUNCHED": 3,
        "CONSUMER_PHASE_STOPPED": 4,
        "CONSUMER_PHASE_DELETED": 5,
    }
    fields = provider_query.Chain.DESCRIPTOR.fields_by_name
    assert (fields["chain_id"].number, fields["phase"].number, fields["consumer_id"].number) == (
        1,
        9,
        13,
    )
