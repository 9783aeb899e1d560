"""Reading details accepts exactly one routable host; anything else is rejected with a reason."""

from __future__ import annotations

import pytest

from discovery.endpoints import (
    DEFAULT_POLICY,
    EndpointPolicy,
    EndpointRejection,
    Host,
    HostKind,
    PublishedEndpoint,
    RejectReason,
    parse_details,
    parse_host,
    read_details,
)
from discovery.errors import EndpointRejected, InvalidEndpointPolicy
from discovery.types import NodeId

NODE = "abcdef0123456789abcdef0123456789abcdef01"

ACCEPTED: list[tuple[str, str, HostKind, str | None]] = [
    # (details, canonical host, kind, node id)
    ("Validator bob - p2p=192.168.97.110", "192.168.97.110", HostKind.IPV4, None),
    ("Validator bob\np2p=192.168.97.110", "192.168.97.110", HostKind.IPV4, None),
    ("p2p=192.168.97.110", "192.168.97.110", HostKind.IPV4, None),
    ("192.168.97.110", "192.168.97.110", HostKind.IPV4, None),
    ("  203.0.113.7\n", "203.0.113.7", HostKind.IPV4, None),
    ("203.0.113.7:26656", "203.0.113.7", HostKind.IPV4, None),
    ("p2p=203.0.113.7:26656 run by bob", "203.0.113.7", HostKind.IPV4, None),
    ("hi\tp2p=203.0.113.7\tbye", "203.0.113.7", HostKind.IPV4, None),
    ("p2p=10.0.0.1", "10.0.0.1", HostKind.IPV4, None),
    ("p2p=172.18.0.5", "172.18.0.5", HostKind.IPV4, None),
    ("2001:db8::1", "2001:db8::1", HostKind.IPV6, None),
    ("[2001:db8::1]:26656", "2001:db8::1", HostKind.IPV6, None),
    ("p2p=[2001:DB8:0:0:0:0:0:1]", "2001:db8::1", HostKind.IPV6, None),
    ("p2p=[2001:db8:0:0:1:0:0:1]:26656", "2001:db8::1:0:0:1", HostKind.IPV6, None),
    ("p2p=[fc00:f853:ccd:e793::5]", "fc00:f853:ccd:e793::5", HostKind.IPV6, None),
    ("p2p=[::ffff:10.1.2.3]", "10.1.2.3", HostKind.IPV4, None),
    ("p2p=[64:ff9b::203.0.113.7]", "64:ff9b::cb00:7107", HostKind.IPV6, None),
    ("p2p=Node-1.Example.COM", "node-1.example.com", HostKind.DNS, None),
    ("node.example.com", "node.example.com", HostKind.DNS, None),
    ("p2p=xn--bcher-kva.example", "xn--bcher-kva.example", HostKind.DNS, None),
    (f"p2p=203.0.113.7 node={NODE}", "203.0.113.7", HostKind.IPV4, NODE),
    (f"node={NODE.upper()} hello p2p=203.0.113.7", "203.0.113.7", HostKind.IPV4, NODE),
    # The same host twice (once with a port) is one endpoint, not two.
    ("p2p=203.0.113.7 p2p=203.0.113.7:26656", "203.0.113.7", HostKind.IPV4, None),
    (f"p2p=203.0.113.7 node={NODE} node={NODE.upper()}", "203.0.113.7", HostKind.IPV4, NODE),
    ("p2p=" + "a" * 63 + ".example", "a" * 63 + ".example", HostKind.DNS, None),
]


@pytest.mark.parametrize(("details", "host", "kind", "node_id"), ACCEPTED)
def test_accepted_forms(details: str, host: str, kind: HostKind, node_id: str | None) -> None:
    expected_node = NodeId(node_id) if node_id is not None else None
    assert read_details(details) == PublishedEndpoint(Host(host, kind), expected_node)


REJECTED: list[tuple[str, RejectReason]] = [
    ("", RejectReason.NO_ENDPOINT),
    ("Validator bob", RejectReason.NO_ENDPOINT),
    ("hello", RejectReason.NO_ENDPOINT),
    ("localhost", RejectReason.NO_ENDPOINT),
    ("see (p2p=203.0.113.7)", RejectReason.NO_ENDPOINT),
    ("xp2p=203.0.113.7", RejectReason.NO_ENDPOINT),
    ("P2P=203.0.113.7 and more", RejectReason.NO_ENDPOINT),
    ("\u00a0p2p=203.0.113.7 words", RejectReason.NO_ENDPOINT),
    (f"node={NODE} only", RejectReason.NO_ENDPOINT),
    ("203.0.113.7 203.0.113.8", RejectReason.NO_ENDPOINT),
    ("p2p=203.0.113.7 p2p=203.0.113.8", RejectReason.CONFLICTING_ENDPOINTS),
    ("p2p=a.example p2p=b.example", RejectReason.CONFLICTING_ENDPOINTS),
    # An empty p2p= names no host (written before IPv6 so the Go reader skips us).
    ("p2p=", RejectReason.NO_ENDPOINT),
    ("p2p=203.0.113.7,203.0.113.8", RejectReason.MALFORMED_HOST),
    ("p2p=a.example,b.example", RejectReason.MALFORMED_HOST),
    (f"p2p={NODE}@203.0.113.7:26656", RejectReason.MALFORMED_HOST),
    ("p2p=203.0.113.7;", RejectReason.MALFORMED_HOST),
    ("p2p=203.0.113.7abc", RejectReason.MALFORMED_HOST),
    ("p2p=203.0.113.7:", RejectReason.MALFORMED_HOST),
    ("p2p=203.0.113.7:0", RejectReason.MALFORMED_HOST),
    ("p2p=203.0.113.7:65536", RejectReason.MALFORMED_HOST),
    ("p2p=203.0.113.7:26656:1", RejectReason.MALFORMED_HOST),
    ("p2p=203.0.113.7:26a", RejectReason.MALFORMED_HOST),
    ("p2p=203.0.113.07", RejectReason.MALFORMED_HOST),
    ("p2p=010.0.0.1", RejectReason.MALFORMED_HOST),
    ("p2p=256.0.0.1", RejectReason.MALFORMED_HOST),
    ("p2p=1.2.3", RejectReason.MALFORMED_HOST),
    ("p2p=127.1", RejectReason.MALFORMED_HOST),
    ("p2p=0x7f.1", RejectReason.MALFORMED_HOST),
    ("p2p=0x7f.0x0.0x0.0x1", RejectReason.MALFORMED_HOST),
    ("p2p=\u0661.2.3.4", RejectReason.MALFORMED_HOST),
    ("p2p=1.2.3.\uff14", RejectReason.MALFORMED_HOST),
    ("p2p=b\u00fccher.example", RejectReason.MALFORMED_HOST),
    ("p2p=2001:db8::1", RejectReason.MALFORMED_HOST),
    ("p2p=[2001:db8::1", RejectReason.MALFORMED_HOST),
    ("p2p=[2001:db8::1]x", RejectReason.MALFORMED_HOST),
    ("p2p=[2001:db8::1]:", RejectReason.MALFORMED_HOST),
    ("p2p=[fe80::1%eth0]", RejectReason.MALFORMED_HOST),
    ("p2p=[203.0.113.7]", RejectReason.MALFORMED_HOST),
    ("p2p=[2001:db8::g]", RejectReason.MALFORMED_HOST),
    ("p2p=node", RejectReason.MALFORMED_HOST),
    ("p2p=-node.example", RejectReason.MALFORMED_HOST),
    ("p2p=node-.example", RejectReason.MALFORMED_HOST),
    ("p2p=node..example", RejectReason.MALFORMED_HOST),
    ("p2p=node.example.", RejectReason.MALFORMED_HOST),
    ("p2p=node_1.example", RejectReason.MALFORMED_HOST),
    ("p2p=" + "a" * 64 + ".example", RejectReason.MALFORMED_HOST),
    ("p2p=" + ".".join(["a" * 50] * 5) + ".example", RejectReason.MALFORMED_HOST),
    ("p2p=node.123", RejectReason.MALFORMED_HOST),
    ("01.2.3.4", RejectReason.MALFORMED_HOST),
    ("p2p=127.0.0.1", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=127.8.9.10:26656", RejectReason.FORBIDDEN_ADDRESS),
    ("127.0.0.1", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=0.0.0.0", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=0.1.2.3", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=169.254.169.254", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=224.0.0.1", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=239.255.255.250", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=255.255.255.255", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=240.0.0.1", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[::1]", RejectReason.FORBIDDEN_ADDRESS),
    ("::1", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[::]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[fe80::1]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[febf::1]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[ff02::1]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[::ffff:127.0.0.1]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[::ffff:7f00:1]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[::ffff:169.254.169.254]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[::ffff:0.0.0.0]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[::ffff:224.0.0.1]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[::ffff:255.255.255.255]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[::127.0.0.1]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=[64:ff9b::127.0.0.1]", RejectReason.FORBIDDEN_ADDRESS),
    ("p2p=localhost", RejectReason.FORBIDDEN_NAME),
    ("p2p=LOCALHOST:26656", RejectReason.FORBIDDEN_NAME),
    ("p2p=node.localhost", RejectReason.FORBIDDEN_NAME),
    ("p2p=a.b.LocalHost", RejectReason.FORBIDDEN_NAME),
    ("p2p=kube-dns.kube-system.svc.cluster.local", RejectReason.DENIED_BY_POLICY),
    ("p2p=203.0.113.7 node=xyz", RejectReason.MALFORMED_NODE_ID),
    (f"p2p=203.0.113.7 node={NODE}0", RejectReason.MALFORMED_NODE_ID),
    ("p2p=203.0.113.7 node=", RejectReason.MALFORMED_NODE_ID),
    (f"p2p=203.0.113.7 node={NODE} node={'0' * 40}", RejectReason.CONFLICTING_NODE_IDS),
    ("x" * 281, RejectReason.DETAILS_TOO_LONG),
    ("p2p=203.0.113.7 " + "\u00e9" * 133, RejectReason.DETAILS_TOO_LONG),
]


@pytest.mark.parametrize(("details", "reason"), REJECTED)
def test_rejected_forms(details: str, reason: RejectReason) -> None:
    result = read_details(details)
    assert isinstance(result, EndpointRejection), result
    assert result.reason is reason, result
    assert "\n" not in str(result)
    assert str(result).isascii()


def test_280_bytes_is_still_read() -> None:
    details = "p2p=203.0.113.7 " + "x" * (280 - 16)
    assert len(details.encode()) == 280
    assert isinstance(read_details(details), PublishedEndpoint)


def test_hostile_text_is_quoted_safely_in_reasons() -> None:
    result = read_details("p2p=evil\x1b[2J\nINFO forged.example")
    assert isinstance(result, EndpointRejection)
    text = str(result)
    assert "\x1b" not in text
    assert "\n" not in text
    assert "\\x1b" in text


def test_parse_details_raises_the_rejection() -> None:
    with pytest.raises(EndpointRejected) as info:
        parse_details("p2p=127.0.0.1")
    assert info.value.reason == RejectReason.FORBIDDEN_ADDRESS
    assert not info.value.transient


def test_private_ranges_are_allowed_by_default() -> None:
    for host in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "[fd00::1]"):
        assert isinstance(read_details(f"p2p={host}", DEFAULT_POLICY), PublishedEndpoint)


def test_deny_list_rejects_and_wins_over_allow_list() -> None:
    policy = EndpointPolicy.from_strings(deny=["10.0.0.0/8"], allow=["10.0.0.0/8", "fd00::/8"])
    denied = read_details("p2p=10.1.2.3", policy)
    assert isinstance(denied, EndpointRejection)
    assert denied.reason is RejectReason.DENIED_BY_POLICY
    mapped = read_details("p2p=[::ffff:10.1.2.3]", policy)
    assert isinstance(mapped, EndpointRejection)
    assert mapped.reason is RejectReason.DENIED_BY_POLICY
    assert isinstance(read_details("p2p=[fd00::1]", policy), PublishedEndpoint)


def test_allow_list_limits_addresses() -> None:
    policy = EndpointPolicy.from_strings(allow=["192.168.0.0/16"])
    assert isinstance(read_details("p2p=192.168.97.110", policy), PublishedEndpoint)
    outside = read_details("p2p=203.0.113.7", policy)
    assert isinstance(outside, EndpointRejection)
    assert outside.reason is RejectReason.NOT_IN_ALLOW_LIST
    v6 = read_details("p2p=[2001:db8::1]", policy)
    assert isinstance(v6, EndpointRejection)
    assert v6.reason is RejectReason.NOT_IN_ALLOW_LIST


def test_nat64_addresses_are_judged_by_their_ipv4_address() -> None:
    policy = EndpointPolicy.from_strings(deny=["203.0.113.0/24"])
    result = read_details("p2p=[64:ff9b::203.0.113.7]", policy)
    assert isinstance(result, EndpointRejection)
    assert result.reason is RejectReason.DENIED_BY_POLICY


def test_dns_names_can_be_turned_off() -> None:
    policy = EndpointPolicy.from_strings(allow_dns_names=False)
    result = read_details("p2p=node.example.com", policy)
    assert isinstance(result, EndpointRejection)
    assert result.reason is RejectReason.DENIED_BY_POLICY
    assert isinstance(read_details("p2p=203.0.113.7", policy), PublishedEndpoint)


def test_name_suffixes_can_be_denied_and_the_default_lifted() -> None:
    policy = EndpointPolicy.from_strings(deny_name_suffixes=["corp.example"])
    denied = read_details("p2p=a.corp.example", policy)
    assert isinstance(denied, EndpointRejection)
    assert denied.reason is RejectReason.DENIED_BY_POLICY
    assert isinstance(read_details("p2p=notcorp.example", policy), PublishedEndpoint)
    assert isinstance(read_details("p2p=printer.local", policy), PublishedEndpoint)


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "not-a-net", "10.0.0.0/33", ""])
def test_invalid_cidrs_are_refused(bad: str) -> None:
    with pytest.raises(InvalidEndpointPolicy):
        EndpointPolicy.from_strings(deny=[bad])


def test_parse_host_accepts_hosts_without_port() -> None:
    assert parse_host("2001:db8::1") == Host("2001:db8::1", HostKind.IPV6)
    assert parse_host("[2001:db8::1]") == Host("2001:db8::1", HostKind.IPV6)
    assert parse_host("Node.Example") == Host("node.example", HostKind.DNS)
    for bad in ("203.0.113.7:26656", "127.0.0.1", "[2001:db8::1", "", "a,b.example"):
        with pytest.raises(EndpointRejected):
            parse_host(bad)


def test_ipv6_text_is_rfc5952_canonical() -> None:
    cases = {
        "2001:0db8:0000:0000:0000:0000:0000:0001": "2001:db8::1",
        "2001:db8:0:0:1:0:0:1": "2001:db8::1:0:0:1",
        "2001:db8:0:1:1:1:1:1": "2001:db8:0:1:1:1:1:1",
        "2001:0:0:1:0:0:0:1": "2001:0:0:1::1",
        "fd00:0:0:0:0:0:0:0": "fd00::",
        "2001:db8:1:1:1:1:0:0": "2001:db8:1:1:1:1::",
    }
    for given, canonical in cases.items():
        assert parse_host(f"[{given}]").name == canonical
