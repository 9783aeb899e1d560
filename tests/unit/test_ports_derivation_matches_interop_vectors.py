"""Plain port derivation reproduces the interop check values and the documented formulas."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.errors import InvalidChainId
from discovery.ports import (
    PortKind,
    PortScheme,
    chain_offset,
    derive_ports,
    scheme_kinds,
    scheme_range,
)

# Check values from docs/interop.md.
INTEROP_CHAIN = "consumer-0-1751686503-0"

chain_ids = (
    st.text(min_size=1, max_size=50)
    .filter(lambda s: s.strip() != "" and len(s.encode("utf-8", "surrogatepass")) <= 50)
    .filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
)


def test_interop_chain_has_offset_201() -> None:
    assert chain_offset(INTEROP_CHAIN) == 201


def test_testchain_0_has_offset_59() -> None:
    assert chain_offset("testchain-0") == 59


def test_document_scheme_check_values() -> None:
    ports = derive_ports(INTEROP_CHAIN, PortScheme.DOCUMENT)
    assert (ports.p2p, ports.rpc, ports.grpc) == (30301, 30401, 30501)
    assert ports.grpc_web is None
    assert ports.rest is None


def test_ics_operator_scheme_check_values() -> None:
    ports = derive_ports(INTEROP_CHAIN, PortScheme.ICS_OPERATOR)
    assert (ports.p2p, ports.rpc, ports.grpc) == (28766, 28767, 11200)
    # gRPC-web = gRPC + 1 and REST = RPC + 660, as the Go implementation derives them.
    assert ports.grpc_web == 11201
    assert ports.rest == 29427


def test_document_is_the_default_scheme() -> None:
    assert derive_ports(INTEROP_CHAIN) == derive_ports(INTEROP_CHAIN, PortScheme.DOCUMENT)


@settings(max_examples=200)
@given(chain_ids)
def test_offset_is_first_eight_bytes_of_sha256_mod_1000(chain_id: str) -> None:
    digest = hashlib.sha256(chain_id.encode("utf-8")).digest()
    expected = int.from_bytes(digest[:8], "big") % 1000
    assert chain_offset(chain_id) == expected


@settings(max_examples=200)
@given(chain_ids)
def test_both_schemes_follow_their_formulas(chain_id: str) -> None:
    o = chain_offset(chain_id)
    doc = derive_ports(chain_id, PortScheme.DOCUMENT)
    assert (doc.p2p, doc.rpc, doc.grpc) == (30100 + o, 30200 + o, 30300 + o)
    ics = derive_ports(chain_id, PortScheme.ICS_OPERATOR)
    assert ics.p2p == 26656 + 100 + 10 * o
    assert ics.rpc == 26657 + 100 + 10 * o
    assert ics.grpc == 9090 + 100 + 10 * o
    assert ics.grpc_web == ics.grpc + 1
    assert ics.rest == ics.rpc + 660
    for scheme, ports in ((PortScheme.DOCUMENT, doc), (PortScheme.ICS_OPERATOR, ics)):
        by_kind = ports.by_kind()
        assert tuple(by_kind) == scheme_kinds(scheme)
        for kind, port in by_kind.items():
            assert port in scheme_range(scheme, kind)


def test_scheme_ranges_have_1000_ports_each() -> None:
    for scheme in PortScheme:
        for kind in scheme_kinds(scheme):
            assert len(scheme_range(scheme, kind)) == 1000
    assert scheme_range(PortScheme.DOCUMENT, PortKind.P2P) == range(30100, 31100)
    assert scheme_range(PortScheme.ICS_OPERATOR, PortKind.REST) == range(27417, 37408, 10)


def test_chain_id_of_exactly_50_bytes_is_accepted() -> None:
    # 25 two-byte characters: 50 bytes, as CometBFT's limit counts bytes.
    assert 0 <= chain_offset("é" * 25) < 1000


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "x" * 51, "é" * 26, "\ud800"],
    ids=["empty", "blank", "51-ascii-bytes", "52-utf8-bytes", "lone-surrogate"],
)
def test_invalid_chain_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidChainId):
        derive_ports(bad)
