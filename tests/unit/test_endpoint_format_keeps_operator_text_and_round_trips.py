"""Formatting details keeps the operator's text, carries exactly one endpoint, and reads back."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains

from discovery.endpoints import (
    DETAILS_MAX_BYTES,
    Host,
    HostKind,
    PublishedEndpoint,
    format_details,
    go_extract_p2p_endpoint,
    go_reads,
    parse_host,
    read_details,
)
from discovery.errors import DetailsTooLong, EndpointRejected, GoUnreadableDetails, InvalidNodeId
from discovery.types import NodeId

NODE = "0123456789abcdef0123456789abcdef01234567"


def test_replaces_the_old_token_in_place_of_text() -> None:
    assert (
        format_details("Validator bob - p2p=192.168.97.110", "203.0.113.7")
        == "Validator bob - p2p=203.0.113.7"
    )


def test_keeps_the_newline_style_of_the_old_token() -> None:
    assert format_details("Validator bob\np2p=192.168.97.110", "203.0.113.7") == (
        "Validator bob\np2p=203.0.113.7"
    )


def test_appends_after_text_without_a_token() -> None:
    assert format_details("Validator bob", "node.example.com") == (
        "Validator bob p2p=node.example.com"
    )


def test_empty_details_become_just_the_token() -> None:
    assert format_details("", "203.0.113.7") == "p2p=203.0.113.7"
    assert format_details("   \n", "203.0.113.7") == "p2p=203.0.113.7"


def test_a_bare_host_is_replaced_not_kept_as_text() -> None:
    assert format_details("192.168.97.110", "203.0.113.7") == "p2p=203.0.113.7"
    assert format_details("[2001:db8::1]:26656", "203.0.113.7") == "p2p=203.0.113.7"


def test_every_old_endpoint_token_is_removed() -> None:
    old = f"p2p=1.1.1.1 Validator p2p=bad,host node={'f' * 40} bob node=junk"
    new = format_details(old, "2001:db8::7", NODE)
    assert new == f"Validator bob p2p=\nnode={NODE} p2p=[2001:db8::7]"


def test_ipv6_goes_in_brackets_and_node_id_is_lower_cased() -> None:
    new = format_details("hi", "2001:DB8::7", NODE.upper())
    assert new == f"hi p2p=\nnode={NODE} p2p=[2001:db8::7]"
    assert read_details(new) == PublishedEndpoint(Host("2001:db8::7", HostKind.IPV6), NodeId(NODE))


def test_a_host_object_is_accepted() -> None:
    host = parse_host("[2001:db8::7]")
    assert format_details("", host) == "p2p=\np2p=[2001:db8::7]"


def test_node_id_comes_before_the_host_which_ends_the_line() -> None:
    new = format_details("Validator bob\nsecond line", "203.0.113.7", NODE)
    assert new == f"Validator bob\nsecond line node={NODE} p2p=203.0.113.7"
    assert go_extract_p2p_endpoint(new) == "203.0.113.7"


def test_old_order_is_rewritten_in_the_new_order() -> None:
    old = f"Validator bob p2p=203.0.113.7 node={NODE}"
    # The Go implementation reads the old order as host "203.0.113.7 node=<id>".
    assert go_extract_p2p_endpoint(old) == f"203.0.113.7 node={NODE}"
    new = format_details(old, "203.0.113.7", NODE)
    assert new == f"Validator bob node={NODE} p2p=203.0.113.7"


def test_text_with_p2p_inside_a_word_is_refused() -> None:
    # The Go reader would take its endpoint from the first `p2p=` of the first such line.
    with pytest.raises(GoUnreadableDetails, match="p2p="):
        format_details("see xp2p=docs\nValidator bob", "203.0.113.7", NODE)


def test_result_over_280_bytes_fails_clearly() -> None:
    text = "x" * 270
    with pytest.raises(DetailsTooLong) as info:
        format_details(text, "node.example.com", NODE)
    assert info.value.limit == DETAILS_MAX_BYTES
    assert info.value.size > DETAILS_MAX_BYTES
    assert "280" in str(info.value)


def test_exactly_280_bytes_is_fine() -> None:
    token = "p2p=203.0.113.7"
    text = "x" * (DETAILS_MAX_BYTES - len(token) - 1)
    assert len(format_details(text, "203.0.113.7").encode()) == DETAILS_MAX_BYTES


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "a,b.example", "1.2.3.4:26656", ""])
def test_unacceptable_hosts_are_refused(host: str) -> None:
    with pytest.raises(EndpointRejected):
        format_details("hello", host)


def test_malformed_node_ids_are_refused() -> None:
    with pytest.raises(InvalidNodeId):
        format_details("hello", "203.0.113.7", "xyz")


def _host_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return str(address)


hosts = st.ip_addresses().map(_host_text) | domains()
operator_text = st.text(max_size=200)
node_ids = st.none() | st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40)


@settings(max_examples=400)
@given(operator_text, hosts, node_ids)
def test_format_then_read_round_trips(old: str, host: str, node_id: str | None) -> None:
    try:
        expected_host = parse_host(host)
    except EndpointRejected:
        # What cannot be read back can never be written.
        with pytest.raises(EndpointRejected):
            format_details(old, host, node_id)
        return
    try:
        new = format_details(old, host, node_id)
    except DetailsTooLong:
        assume(False)
        return
    except GoUnreadableDetails:
        # Only text with `p2p=` inside a word (not a token of its own) is refused.
        assert any("p2p=" in w and not w.startswith("p2p=") for w in old.split())
        return
    result = read_details(new)
    assert isinstance(result, PublishedEndpoint), result
    assert result.host == expected_host
    assert result.node_id == (node_id.lower() if node_id else None)
    assert len(new.encode("utf-8", "surrogatepass")) <= DETAILS_MAX_BYTES
    assert new.count("p2p=") >= 1
    # The Go implementation's reader yields exactly the host.
    assert go_extract_p2p_endpoint(new) == go_reads(expected_host)
    # Formatting again with the same endpoint changes nothing.
    assert format_details(new, host, node_id) == new


words = st.text(
    alphabet=st.characters(blacklist_characters=" \t\n\r\x0b\x0c"), min_size=1, max_size=12
)


@settings(max_examples=300)
@given(st.lists(words, min_size=2, max_size=12), hosts)
def test_operator_words_survive_in_order(old_words: list[str], host: str) -> None:
    assume(not _rejected(host))
    assume(not any("p2p=" in w for w in old_words))
    kept = [w for w in old_words if not w.startswith(("p2p=", "node="))]
    try:
        new = format_details(" ".join(old_words), host)
    except DetailsTooLong:
        assume(False)
        return
    parsed = parse_host(host)
    token = f"p2p={parsed.address()}"
    if parsed.kind is HostKind.IPV6:
        token = "p2p=\n" + token
    if kept:
        assert new == " ".join(kept) + " " + token
    else:
        assert new == token


def _rejected(host: str) -> bool:
    try:
        parse_host(host)
    except EndpointRejected:
        return True
    return False
