"""Whatever a validator writes in its details, no host read from it can break a peer list."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains

from discovery.endpoints import (
    EndpointRejection,
    HostKind,
    PublishedEndpoint,
    read_details,
)
from discovery.peers import check_peer_entry

NODE = "0123456789abcdef0123456789abcdef01234567"

# Pieces that hostile or careless details are made of, so that random strings
# reach the interesting branches far more often than uniform text would.
FRAGMENTS = st.sampled_from(
    [
        "p2p=",
        "node=",
        " ",
        "\n",
        "\t",
        ",",
        "@",
        ":",
        "[",
        "]",
        ".",
        "-",
        "%",
        "/",
        "1",
        "0",
        "127",
        "255",
        "169.254",
        "::",
        "::1",
        "ffff",
        "fe80",
        "0x7f",
        "localhost",
        "example",
        "com",
        "a",
        "Z",
        NODE,
        "26656",
        "\u0661",
        "\u00e9",
        "\x00",
        "\u00a0",
        "\u2028",
    ]
)
hostile_details = st.lists(FRAGMENTS | st.text(max_size=6), max_size=40).map("".join)


def _ip_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return str(address) if address.version == 4 else f"[{address}]"


# Near-valid endpoints: real addresses and names, sometimes with a port,
# sometimes with a hostile fragment glued on, among random text.
hosts = st.one_of(
    st.ip_addresses().map(_ip_text),
    st.ip_addresses(v=6).map(str),
    domains(),
    st.sampled_from(["localhost", "a.localhost", "x.svc.cluster.local", "127.1", "0x7f.1"]),
)
ports = st.none() | st.integers(0, 70000).map(str) | st.text(max_size=5)
node_tokens = st.none() | st.just(NODE) | st.text(alphabet="0123456789abcdefABCDEFg", max_size=41)


@st.composite
def endpointish(draw: st.DrawFn) -> str:
    host = draw(hosts)
    port = draw(ports)
    glue = draw(st.none() | FRAGMENTS)
    node = draw(node_tokens)
    value = host + (f":{port}" if port is not None else "") + (glue or "")
    parts = [draw(st.text(max_size=20)), f"p2p={value}"]
    if node is not None:
        parts.append(f"node={node}")
    if draw(st.booleans()):
        parts.append(f"p2p={draw(hosts)}")
    parts.append(draw(st.text(max_size=20)))
    separator = draw(st.sampled_from([" ", "\n", "\t", " \n "]))
    if draw(st.booleans()):
        return value
    return separator.join(parts)


def assert_safe(details: str) -> None:
    result = read_details(details)
    if isinstance(result, EndpointRejection):
        text = str(result)
        assert text.isascii()
        assert "\n" not in text
        assert "\r" not in text
        return
    assert isinstance(result, PublishedEndpoint)
    entry = f"{result.node_id or NODE}@{result.host.address()}:26656"
    assert entry.count("@") == 1
    assert "," not in entry
    assert not any(c.isspace() for c in entry)
    assert entry.isascii()
    check_peer_entry(entry)
    if result.host.kind is not HostKind.DNS:
        address = ipaddress.ip_address(result.host.name)
        assert not address.is_loopback
        assert not address.is_link_local
        assert not address.is_multicast
        assert not address.is_unspecified
    else:
        assert result.host.name != "localhost"
        assert not result.host.name.endswith(".localhost")


@settings(max_examples=700)
@given(st.text(max_size=300))
@example("p2p=1.2.3.4,5.6.7.8")
@example("p2p=[::1]:26656")
@example("p2p=a@b.example")
def test_any_text_is_rejected_or_gives_a_clean_host(details: str) -> None:
    assert_safe(details)


@settings(max_examples=400)
@given(hostile_details)
def test_crafted_fragments_are_rejected_or_give_a_clean_host(details: str) -> None:
    assert_safe(details)


@settings(max_examples=300)
@given(st.text(max_size=40), hostile_details, st.text(max_size=40))
def test_a_p2p_token_among_any_text_is_rejected_or_clean(
    before: str, value: str, after: str
) -> None:
    assert_safe(f"{before} p2p={value} {after}")


@settings(max_examples=700)
@given(endpointish())
def test_near_valid_endpoints_are_rejected_or_clean(details: str) -> None:
    assert_safe(details)
