"""What we publish, the Go implementation reads as exactly our host (checked against its code).

`tests/support/go_reference.py` translates the Go reader (`extractP2PEndpoint`)
and the peer it builds statement by statement; these tests feed it what
`format_details` writes.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains

from discovery.endpoints import (
    EndpointRejection,
    Host,
    HostKind,
    PublishedEndpoint,
    RejectReason,
    format_details,
    go_extract_p2p_endpoint,
    parse_host,
    read_details,
)
from discovery.errors import DetailsTooLong, EndpointRejected, GoUnreadableDetails, InvalidPeerEntry
from discovery.peers import check_peer_entry
from discovery.types import NodeId
from tests.support.go_reference import go_extract_p2p_endpoint as go_reference
from tests.support.go_reference import go_peer_entry

NODE = "0123456789abcdef0123456789abcdef01234567"


def _text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return str(address)


hosts = st.ip_addresses().map(_text) | domains()
node_ids = st.none() | st.just(NODE)
# Operator text with the characters that matter to the Go reader mixed in.
operator_text = st.text(
    alphabet=st.sampled_from(list('ab :=[]"{}\n\r\t\u00a0\u2028p2')) | st.characters(),
    max_size=120,
)


@pytest.mark.parametrize(
    ("details", "go_reads"),
    [
        # What we used to write: Go read the node ID as part of the host.
        (f"Validator bob - p2p=203.0.113.7 node={NODE}", f"203.0.113.7 node={NODE}"),
        ("p2p=[2001:db8::7]", "[2001:db8:"),
        ("p2p=2001:db8::7", "2001:db8:"),
        # What we write now.
        (f"Validator bob - node={NODE} p2p=203.0.113.7", "203.0.113.7"),
        (f"p2p=\nnode={NODE} p2p=[2001:db8::7]", ""),
        ("p2p=node.example.com", "node.example.com"),
        # Go's other forms.
        ('{"moniker":"bob","p2p":"203.0.113.7:26656"}', "203.0.113.7"),
        ("  p2p=203.0.113.7:26656  \nsecond line", "203.0.113.7"),
        ("first line\nxp2p=203.0.113.7", "203.0.113.7"),
        ("no endpoint here", ""),
        ('"p2p": "203.0.113.7"', ""),
    ],
)
def test_go_reader_vectors(details: str, go_reads: str) -> None:
    assert go_reference(details) == go_reads
    assert go_extract_p2p_endpoint(details) == go_reads


def test_no_ipv6_form_survives_go_so_go_is_told_to_skip_it() -> None:
    # Go cuts the endpoint at its last ':' (validator_registry.go:80-82), then at deploy
    # time once more (peer_discovery.go:207-215), at update time not (line 155); CometBFT
    # refuses to start on a malformed persistent_peers entry.
    once = go_reference("p2p=[2001:db8::7]")
    with pytest.raises(InvalidPeerEntry):
        check_peer_entry(go_peer_entry(NODE, once, 26766))
    with_port = go_reference("p2p=[2001:db8::7]:26656")
    assert with_port == "[2001:db8::7]"
    with pytest.raises(InvalidPeerEntry):  # the deploy-time path cuts again
        check_peer_entry(go_peer_entry(NODE, with_port, 26766))
    two_ports = go_reference("p2p=[2001:db8::7]:1:1")
    with pytest.raises(InvalidPeerEntry):  # the update-time path does not cut
        check_peer_entry(f"{NODE}@{two_ports}:26766")
    # What we write: Go reads no endpoint and skips the validator
    # (validator_registry.go:44-50); we still read the host and the node ID.
    new = format_details("Validator bob", "2001:db8::7", NODE)
    assert new == f"Validator bob p2p=\nnode={NODE} p2p=[2001:db8::7]"
    assert go_reference(new) == ""
    assert read_details(new) == PublishedEndpoint(Host("2001:db8::7", HostKind.IPV6), NodeId(NODE))


def test_an_empty_p2p_token_alone_is_no_endpoint() -> None:
    result = read_details("p2p=")
    assert isinstance(result, EndpointRejection)
    assert result.reason is RejectReason.NO_ENDPOINT


@settings(max_examples=500)
@given(operator_text, hosts, node_ids)
def test_go_reads_exactly_our_host(old: str, host: str, node_id: str | None) -> None:
    try:
        expected = parse_host(host)
    except EndpointRejected:
        assume(False)
        return
    try:
        new = format_details(old, host, node_id)
    except (DetailsTooLong, GoUnreadableDetails):
        assume(False)
        return
    go_host = go_reference(new)
    if expected.kind is HostKind.IPV6:
        assert go_host == ""  # Go skips the validator (see above)
        return
    assert go_host == expected.address()
    entry = go_peer_entry(NODE, go_host, 26766)
    check_peer_entry(entry)
    assert entry == f"{NODE}@{expected.address()}:26766"
    # The update-time path (no second cut) builds the same entry.
    assert f"{NODE}@{go_host}:26766" == entry


@settings(max_examples=300)
@given(operator_text, hosts)
def test_only_p2p_inside_a_word_makes_details_unreadable_by_go(old: str, host: str) -> None:
    assume(not _rejected(host))
    try:
        format_details(old, host, NODE)
    except DetailsTooLong:
        assume(False)
    except GoUnreadableDetails:
        assert any("p2p=" in w and not w.startswith("p2p=") for w in old.split())


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list('p2=:"{} \n\t\u3000x1.[]')), max_size=60))
def test_product_reader_agrees_with_the_translation(details: str) -> None:
    assert go_extract_p2p_endpoint(details) == go_reference(details)


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_product_reader_agrees_on_any_text(details: str) -> None:
    assert go_extract_p2p_endpoint(details) == go_reference(details)


def _rejected(host: str) -> bool:
    try:
        parse_host(host)
    except EndpointRejected:
        return True
    return False
