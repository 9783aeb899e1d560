"""Reading and writing the LoadBalancer endpoint validators publish in `description.details`.

Anyone can write anything into their validator description, and what we read
there ends up in other validators' consumer node configuration. This module is
the gate: it accepts only exactly one well-formed, routable host (IPv4, IPv6 or
an RFC 1123 DNS name) and rejects everything else with a reason, so a hostile
description can neither inject extra peers nor point consumer nodes at their
own loopback or link-local services. It also writes details that keep the
operator's own text and carry exactly one endpoint token. Pure: no I/O, and in
particular no DNS resolution.

Accepted forms (tokens are separated by ASCII whitespace):

- the whole details, surrounding whitespace aside, is one bare host, optionally
  `HOST:PORT`; a bare IPv6 address needs no brackets (then it takes no port);
- a token `p2p=HOST` or `p2p=HOST:PORT` (IPv6 in brackets) anywhere, beside
  any human text; repeating the same host is fine, two different hosts are not;
- an optional token `node=ID` (40 hex digits) giving the node ID.

Ports are accepted and ignored: every validator derives them from the chain ID.
Keys are matched case-sensitively (`p2p=`, `node=`), as the Go implementation does.

An empty `p2p=` token names no host and is ignored.

Written form (`format_details`): `node=ID` before `p2p=HOST`, and `p2p=HOST`
last, so that the Go implementation's reader (which takes everything after the
first `p2p=` to the end of its line and cuts at the last `:`; see
`go_extract_p2p_endpoint` and docs/interop.md) yields exactly the host. No
form of an IPv6 address survives the Go implementation (it cuts at the last
`:` once or twice, depending on the code path, and a node given the result
refuses to start), so an IPv6 endpoint is preceded by a line holding only
`p2p=`: Go reads that as "no endpoint" and leaves the validator out instead.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from discovery.errors import (
    DetailsTooLong,
    EndpointRejected,
    GoUnreadableDetails,
    InvalidEndpointPolicy,
    InvalidNodeId,
    quote_untrusted,
)
from discovery.types import NodeId, parse_node_id

# Cosmos SDK staking's MaxDetailsLength, in bytes.
DETAILS_MAX_BYTES = 280
# RFC 1123 / RFC 1035 limits, in bytes (the text form, without a trailing dot).
DNS_NAME_MAX_BYTES = 253
DNS_LABEL_MAX_BYTES = 63

P2P_KEY = "p2p="
NODE_KEY = "node="
# Written on a line of its own before an IPv6 endpoint: the Go reader stops at
# the first line holding `p2p=` and, finding nothing after it, skips the validator.
GO_SKIP_LINE = "p2p=\n"

_WHITESPACE = " \t\n\r\x0b\x0c"
_TOKEN = re.compile(f"[^{_WHITESPACE}]+")
_SPLIT_WHITESPACE = re.compile(f"([{_WHITESPACE}]+)")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_IPV4_LOOKALIKE = re.compile(r"[0-9.]+")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
# Characters of an attempted host: a bare token made only of these is a broken
# endpoint rather than human text.
_HOSTISH = re.compile(r"[A-Za-z0-9.:\[\]-]+")

_THIS_NETWORK_V4 = ipaddress.IPv4Network("0.0.0.0/8")
_RESERVED_V4 = ipaddress.IPv4Network("240.0.0.0/4")
_BROADCAST_V4 = ipaddress.IPv4Address("255.255.255.255")
_RESERVED_V6 = ipaddress.IPv6Network("::/8")
_NAT64_V6 = ipaddress.IPv6Network("64:ff9b::/96")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostKind(StrEnum):
    """What kind of host a published endpoint names."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DNS = "dns"


@dataclass(frozen=True)
class Host:
    """A validated host in canonical form.

    IPv4 in dotted quad; IPv6 in RFC 5952 form without brackets (IPv4-mapped
    addresses become plain IPv4, which is how CometBFT dials them anyway); DNS
    names in lower case. Canonical forms make equal hosts compare equal, so
    every validator renders the same bytes and duplicates are found.
    """

    name: str
    kind: HostKind

    def address(self) -> str:
        """The host as written before `:PORT` (IPv6 in brackets)."""
        return f"[{self.name}]" if self.kind is HostKind.IPV6 else self.name

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class PublishedEndpoint:
    """An accepted endpoint: a host, and the node ID if the validator published one."""

    host: Host
    node_id: NodeId | None = None


class RejectReason(StrEnum):
    """Why published details were not accepted as an endpoint."""

    NO_ENDPOINT = "no-endpoint"
    CONFLICTING_ENDPOINTS = "conflicting-endpoints"
    MALFORMED_HOST = "malformed-host"
    FORBIDDEN_ADDRESS = "forbidden-address"
    FORBIDDEN_NAME = "forbidden-name"
    DENIED_BY_POLICY = "denied-by-policy"
    NOT_IN_ALLOW_LIST = "not-in-allow-list"
    MALFORMED_NODE_ID = "malformed-node-id"
    CONFLICTING_NODE_IDS = "conflicting-node-ids"
    DETAILS_TOO_LONG = "details-too-long"


@dataclass(frozen=True)
class EndpointRejection:
    """A rejected endpoint, as a value; `detail` quotes untrusted input safely."""

    reason: RejectReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"

    def error(self) -> EndpointRejected:
        """The same rejection as an exception."""
        return EndpointRejected(self.reason.value, self.detail)


EndpointResult = PublishedEndpoint | EndpointRejection


class EndpointProfile(StrEnum):
    """A named starting point for the endpoint policy.

    `mainnet`: public unicast addresses only (`ipaddress` `is_global`: no
    private, CGNAT, ULA, documentation or benchmark ranges) and no DNS names,
    which could resolve to anything inside the reader's network
    (`kubernetes.default`, `metadata.google.internal`). `testnet`: private
    ranges and DNS names too, as Kind clusters and local testnets need.
    """

    MAINNET = "mainnet"
    TESTNET = "testnet"


@dataclass(frozen=True)
class EndpointPolicy:
    """Which syntactically valid hosts are acceptable, beyond the fixed rules.

    Always rejected: loopback, link-local, multicast, unspecified, broadcast
    and reserved addresses (and their IPv4-mapped and NAT64 forms), `localhost`
    and `*.localhost`. Private ranges are allowed: Kind testnets use them.

    - `deny`: CIDR networks never accepted (checked before `allow`).
    - `allow`: when not empty, IP addresses must fall in one of these.
    - `allow_dns_names`: CIDR lists cannot judge a DNS name without resolving
      it, so a network that needs that guarantee turns names off.
    - `deny_name_suffixes`: DNS suffixes never accepted. `local` by default:
      mDNS and Kubernetes cluster names resolve inside the reader's own network,
      never to another validator's cluster.
    """

    deny: tuple[IPNetwork, ...] = ()
    allow: tuple[IPNetwork, ...] = ()
    allow_dns_names: bool = True
    deny_name_suffixes: tuple[str, ...] = ("local",)
    # Accept only addresses that are globally reachable unicast (`mainnet`).
    public_only: bool = False

    @classmethod
    def from_strings(
        cls,
        deny: Iterable[str] = (),
        allow: Iterable[str] = (),
        allow_dns_names: bool = True,
        deny_name_suffixes: Iterable[str] = ("local",),
        public_only: bool = False,
    ) -> EndpointPolicy:
        """Build a policy from CIDR strings (strict: no host bits set) and DNS suffixes."""
        return cls(
            deny=tuple(_parse_network(n) for n in deny),
            allow=tuple(_parse_network(n) for n in allow),
            allow_dns_names=allow_dns_names,
            deny_name_suffixes=tuple(_parse_suffix(s) for s in deny_name_suffixes),
            public_only=public_only,
        )

    @classmethod
    def for_profile(
        cls,
        profile: EndpointProfile | str,
        deny: Iterable[str] = (),
        allow: Iterable[str] = (),
        allow_dns_names: bool | None = None,
        deny_name_suffixes: Iterable[str] = ("local",),
    ) -> EndpointPolicy:
        """A profile's policy, with the operator's lists on top.

        `allow_dns_names` None takes the profile's choice (mainnet: no names).
        """
        try:
            chosen = EndpointProfile(profile)
        except ValueError as e:
            raise InvalidEndpointPolicy(str(profile), "the profile is mainnet or testnet") from e
        mainnet = chosen is EndpointProfile.MAINNET
        return cls.from_strings(
            deny=deny,
            allow=allow,
            allow_dns_names=(not mainnet) if allow_dns_names is None else allow_dns_names,
            deny_name_suffixes=deny_name_suffixes,
            public_only=mainnet,
        )


# The library default (the `testnet` profile's rules); the service, the CLI and
# the chart default to the `mainnet` profile instead (`MAINNET_POLICY` below).
DEFAULT_POLICY = EndpointPolicy()


def _parse_network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise InvalidEndpointPolicy(text, str(e)) from e


def _parse_suffix(text: str) -> str:
    suffix = text.strip().strip(".").lower()
    labels = suffix.split(".")
    if not suffix or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise InvalidEndpointPolicy(text, "expected a DNS suffix such as 'local' or 'corp.example'")
    return suffix


MAINNET_POLICY = EndpointPolicy.for_profile(EndpointProfile.MAINNET)
TESTNET_POLICY = EndpointPolicy.for_profile(EndpointProfile.TESTNET)


# --- reading ---------------------------------------------------------------


def read_details(details: str, policy: EndpointPolicy = DEFAULT_POLICY) -> EndpointResult:
    """Read the endpoint out of `description.details`; never raises on bad input."""
    size = len(details.encode("utf-8", "surrogatepass"))
    if size > DETAILS_MAX_BYTES:
        return EndpointRejection(
            RejectReason.DETAILS_TOO_LONG,
            f"{size} bytes, over the chain's limit of {DETAILS_MAX_BYTES}",
        )
    tokens = _TOKEN.findall(details)
    # An empty `p2p=` names no host (we write one for the Go reader before IPv6).
    p2p_values = [t[len(P2P_KEY) :] for t in tokens if t.startswith(P2P_KEY) and t != P2P_KEY]
    node_values = [t[len(NODE_KEY) :] for t in tokens if t.startswith(NODE_KEY)]
    if p2p_values:
        return _read_tokens(p2p_values, node_values, policy)
    if len(tokens) == 1 and not node_values:
        return _read_bare(tokens[0], policy)
    if node_values:
        return EndpointRejection(RejectReason.NO_ENDPOINT, "a node= token without a p2p= token")
    return EndpointRejection(RejectReason.NO_ENDPOINT, "no p2p= token and not a bare host")


def parse_details(details: str, policy: EndpointPolicy = DEFAULT_POLICY) -> PublishedEndpoint:
    """Like `read_details`, but raise `EndpointRejected` instead of returning a rejection."""
    result = read_details(details, policy)
    if isinstance(result, EndpointRejection):
        raise result.error()
    return result


def parse_host(text: str, policy: EndpointPolicy = DEFAULT_POLICY) -> Host:
    """Validate one host given on its own (no port): IPv4, IPv6 with or without brackets, DNS."""
    if text.startswith("["):
        if not text.endswith("]"):
            raise EndpointRejection(
                RejectReason.MALFORMED_HOST, f"unterminated bracket in {quote_untrusted(text)}"
            ).error()
        result = _host_syntax(text[1:-1], bracketed=True)
    elif text.count(":") == 1:
        raise _malformed(text, "give the host alone, without a port").error()
    else:
        result = _host_syntax(text, bracketed=":" in text)
    if isinstance(result, EndpointRejection):
        raise result.error()
    rejection = _check_policy(result, policy)
    if rejection is not None:
        raise rejection.error()
    return result


def _read_tokens(
    p2p_values: list[str], node_values: list[str], policy: EndpointPolicy
) -> EndpointResult:
    hosts: list[Host] = []
    for value in p2p_values:
        parsed = _host_port_syntax(value, bare=False)
        if isinstance(parsed, EndpointRejection):
            return parsed
        if parsed not in hosts:
            hosts.append(parsed)
    if len(hosts) > 1:
        names = ", ".join(quote_untrusted(h.name) for h in hosts[:3])
        return EndpointRejection(
            RejectReason.CONFLICTING_ENDPOINTS, f"{len(hosts)} different p2p= hosts: {names}"
        )
    node_ids: list[NodeId] = []
    for value in node_values:
        try:
            node_id = parse_node_id(value)
        except InvalidNodeId:
            return EndpointRejection(
                RejectReason.MALFORMED_NODE_ID,
                f"node={quote_untrusted(value)} is not 40 hexadecimal digits",
            )
        if node_id not in node_ids:
            node_ids.append(node_id)
    if len(node_ids) > 1:
        return EndpointRejection(
            RejectReason.CONFLICTING_NODE_IDS, f"{len(node_ids)} different node= values"
        )
    host = hosts[0]
    rejection = _check_policy(host, policy)
    if rejection is not None:
        return rejection
    return PublishedEndpoint(host, node_ids[0] if node_ids else None)


def _read_bare(token: str, policy: EndpointPolicy) -> EndpointResult:
    # A single word is human text, not an endpoint; so is anything that is not
    # made of host characters. Only something that tries to be a host and fails
    # counts as a malformed endpoint.
    if ("." not in token and ":" not in token) or not _HOSTISH.fullmatch(token):
        return EndpointRejection(RejectReason.NO_ENDPOINT, "no p2p= token and not a bare host")
    parsed = _host_port_syntax(token, bare=True)
    if isinstance(parsed, EndpointRejection):
        return parsed
    rejection = _check_policy(parsed, policy)
    if rejection is not None:
        return rejection
    return PublishedEndpoint(parsed)


def _malformed(text: str, problem: str) -> EndpointRejection:
    return EndpointRejection(RejectReason.MALFORMED_HOST, f"{quote_untrusted(text)}: {problem}")


def _host_port_syntax(text: str, *, bare: bool) -> Host | EndpointRejection:
    """`HOST`, `HOST:PORT` or `[IPv6]:PORT`; a bare IPv6 only when `bare`."""
    if not text:
        return _malformed(text, "empty host")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return _malformed(text, "unterminated bracket")
        host_text, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return _malformed(text, "unexpected text after the bracketed address")
        if rest:
            port_problem = _port_problem(rest[1:])
            if port_problem:
                return _malformed(text, port_problem)
        return _host_syntax(host_text, bracketed=True)
    colons = text.count(":")
    if colons >= 2:
        if bare:
            return _host_syntax(text, bracketed=True)
        return _malformed(text, "an IPv6 address must be in brackets")
    if colons == 1:
        host_text, port_text = text.split(":")
        port_problem = _port_problem(port_text)
        if port_problem:
            return _malformed(text, port_problem)
        return _host_syntax(host_text, bracketed=False)
    return _host_syntax(text, bracketed=False)


def _port_problem(text: str) -> str | None:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        return "the port must be a number in 1..65535"
    return None


def _host_syntax(text: str, *, bracketed: bool) -> Host | EndpointRejection:
    """One host without port; `bracketed` means it must be an IPv6 address."""
    if not text:
        return _malformed(text, "empty host")
    if bracketed:
        return _ipv6_syntax(text)
    if _IPV4_LOOKALIKE.fullmatch(text):
        if not _IPV4.fullmatch(text):
            return _malformed(
                text, "not a dotted-quad IPv4 address (four numbers 0-255, no leading zeros)"
            )
        return Host(text, HostKind.IPV4)
    return _dns_syntax(text)


def _ipv6_syntax(text: str) -> Host | EndpointRejection:
    # Only hex digits, colons and dots: no zone IDs (`%eth0`), nothing else that
    # a permissive parser might accept.
    if not _IPV6_CHARS.fullmatch(text):
        return _malformed(text, "not an IPv6 address")
    try:
        address = ipaddress.IPv6Address(text)
    except ipaddress.AddressValueError:
        return _malformed(text, "not an IPv6 address")
    mapped = address.ipv4_mapped
    if mapped is not None:
        return Host(str(mapped), HostKind.IPV4)
    return Host(_rfc5952(address), HostKind.IPV6)


def _rfc5952(address: ipaddress.IPv6Address) -> str:
    """RFC 5952 text form, computed here so it cannot change with the Python version."""
    packed = address.packed
    groups = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best_start, best_len, run_start = -1, 0, -1
    for i, group in enumerate([*groups, 1]):
        if group == 0:
            if run_start < 0:
                run_start = i
        elif run_start >= 0:
            if i - run_start > best_len:
                best_start, best_len = run_start, i - run_start
            run_start = -1
    hexes = [f"{g:x}" for g in groups]
    if best_len < 2:
        return ":".join(hexes)
    head = ":".join(hexes[:best_start])
    tail = ":".join(hexes[best_start + best_len :])
    return f"{head}::{tail}"


def _dns_syntax(text: str) -> Host | EndpointRejection:
    if not text.isascii():
        return _malformed(text, "not ASCII (internationalised names must be in xn-- form)")
    name = text.lower()
    if len(name) > DNS_NAME_MAX_BYTES:
        return _malformed(text, f"a DNS name is at most {DNS_NAME_MAX_BYTES} bytes")
    if name == "localhost":
        return EndpointRejection(
            RejectReason.FORBIDDEN_NAME, "localhost names the reader's own host"
        )
    labels = name.split(".")
    if len(labels) < 2:
        return _malformed(text, "a DNS name needs at least two labels")
    for label in labels:
        if not label:
            return _malformed(text, "empty DNS label")
        if len(label) > DNS_LABEL_MAX_BYTES:
            return _malformed(text, f"a DNS label is at most {DNS_LABEL_MAX_BYTES} bytes")
        if not _DNS_LABEL.fullmatch(label):
            return _malformed(text, "a DNS label is letters, digits and inner hyphens (RFC 1123)")
    # Top-level domains start with a letter. Insisting on it also rules out
    # every form that a C resolver's inet_aton would read as an IPv4 address
    # (`127.1`, `0x7f.1`), which CometBFT's DNS lookup could turn into loopback.
    if not labels[-1][0].isalpha():
        return _malformed(text, "the last label of a DNS name must start with a letter")
    return Host(name, HostKind.DNS)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64_V6:
        return ipaddress.IPv4Address(address.packed[12:])
    return None


def _forbidden_ipv4(address: ipaddress.IPv4Address) -> str | None:
    if address in _THIS_NETWORK_V4:
        return "unspecified ('this network', 0.0.0.0/8)"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address == _BROADCAST_V4:
        return "broadcast"
    if address in _RESERVED_V4:
        return "reserved (240.0.0.0/4)"
    return None


def _forbidden_ipv6(address: ipaddress.IPv6Address) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    # NAT64 (64:ff9b::/96) lies inside ::/8 but is routable: judge the IPv4
    # address it carries instead.
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        problem = _forbidden_ipv4(embedded)
        return f"NAT64 form of a {problem}" if problem else None
    # IPv4-mapped addresses were turned into IPv4 already; the rest of ::/8
    # (IPv4-compatible addresses among them) is deprecated or unassigned.
    if address in _RESERVED_V6:
        return "reserved (::/8)"
    return None


def _check_policy(host: Host, policy: EndpointPolicy) -> EndpointRejection | None:
    if host.kind is HostKind.DNS:
        return _check_name(host.name, policy)
    address: IPAddress = ipaddress.ip_address(host.name)
    if isinstance(address, ipaddress.IPv4Address):
        problem = _forbidden_ipv4(address)
        candidates: list[IPAddress] = [address]
    else:
        problem = _forbidden_ipv6(address)
        candidates = [address]
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
    if problem:
        return EndpointRejection(
            RejectReason.FORBIDDEN_ADDRESS, f"{host.name} is forbidden: {problem} address"
        )
    if policy.public_only and not all(a.is_global for a in candidates):
        return EndpointRejection(
            RejectReason.DENIED_BY_POLICY,
            f"{host.name} is not a public unicast address (profile mainnet)",
        )
    for network in policy.deny:
        if any(a in network for a in candidates):
            return EndpointRejection(
                RejectReason.DENIED_BY_POLICY, f"{host.name} is in denied network {network}"
            )
    if policy.allow and not any(a in n for n in policy.allow for a in candidates):
        return EndpointRejection(
            RejectReason.NOT_IN_ALLOW_LIST, f"{host.name} is in no allowed network"
        )
    return None


def _check_name(name: str, policy: EndpointPolicy) -> EndpointRejection | None:
    if name == "localhost" or name.endswith(".localhost"):
        return EndpointRejection(RejectReason.FORBIDDEN_NAME, f"{name} names the reader's own host")
    if not policy.allow_dns_names:
        return EndpointRejection(
            RejectReason.DENIED_BY_POLICY, f"{name}: DNS names are not accepted by policy"
        )
    for suffix in policy.deny_name_suffixes:
        if name == suffix or name.endswith("." + suffix):
            return EndpointRejection(
                RejectReason.DENIED_BY_POLICY, f"{name} is under denied suffix .{suffix}"
            )
    return None


# --- writing ---------------------------------------------------------------


def format_details(
    old_details: str,
    host: Host | str,
    node_id: str | None = None,
    policy: EndpointPolicy = DEFAULT_POLICY,
) -> str:
    """New details: the operator's text from `old_details` plus one `p2p=` (and `node=`) token.

    Every existing `p2p=` and `node=` token is removed, and so is a bare host
    that made up the whole old details (it was an endpoint, not text). The new
    tokens go at the end, after a newline if the old `p2p=` token followed one,
    else after a space: `node=ID p2p=HOST`, for IPv6 after a `p2p=` line of its
    own (see the module docstring). Raises `EndpointRejected` for an
    unacceptable host, `InvalidNodeId` for a bad node ID, `DetailsTooLong` when
    the result would not fit the chain's 280-byte limit and `GoUnreadableDetails`
    when the operator's text would mislead the Go reader.
    """
    checked = parse_host(host.address() if isinstance(host, Host) else host, policy)
    checked_node = parse_node_id(node_id) if node_id is not None else None
    text, separator = _operator_text(old_details)
    # node= first and p2p= last: the Go reader takes the rest of the line after p2p=.
    tokens = f"{P2P_KEY}{checked.address()}"
    if checked_node is not None:
        tokens = f"{NODE_KEY}{checked_node} {tokens}"
    if checked.kind is HostKind.IPV6:
        tokens = GO_SKIP_LINE + tokens
    new_details = f"{text}{separator}{tokens}" if text else tokens
    size = len(new_details.encode("utf-8", "surrogatepass"))
    if size > DETAILS_MAX_BYTES:
        raise DetailsTooLong(size, DETAILS_MAX_BYTES)
    if go_extract_p2p_endpoint(new_details) != go_reads(checked):
        # Only operator text holding `p2p=` inside a longer word can cause this.
        raise GoUnreadableDetails(
            "the operator's text contains 'p2p=' inside a word; the Go implementation "
            "would read its endpoint from there: remove it"
        )
    return new_details


def go_reads(host: Host) -> str:
    """What the Go reader gets from details we write for `host`: the host, or "" (skip) for IPv6."""
    return "" if host.kind is HostKind.IPV6 else host.address()


# Go's unicode.IsSpace, which strings.TrimSpace trims (Python's str.strip differs:
# it also strips U+001C..U+001F).
_GO_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _go_trim_space(text: str) -> str:
    start, end = 0, len(text)
    while start < end and text[start] in _GO_SPACE:
        start += 1
    while end > start and text[end - 1] in _GO_SPACE:
        end -= 1
    return text[start:end]


def go_extract_p2p_endpoint(details: str) -> str:
    """The host text the Go implementation reads from `details` ("" when it finds none).

    Follows `extractP2PEndpoint` (roylee17/monitor at b5b303d,
    internal/monitor/validator_registry.go lines 68-108): the first line
    containing `p2p=`, everything after it, trimmed, cut at the last `:`;
    failing that the JSON-like form `"p2p":"VALUE"`, cut the same way. The
    result is unvalidated text, exactly as Go would use it.
    """
    for line in details.split("\n"):
        line = _go_trim_space(line)
        index = line.find(P2P_KEY)
        if index != -1:
            return _go_cut_port(_go_trim_space(line[index + len(P2P_KEY) :]))
    if '"p2p":' in details:
        start = details.find('"p2p":"') + 7
        if start > 6:
            end = details.find('"', start)
            if end - start > 0:
                return _go_cut_port(details[start:end])
    return ""


def _go_cut_port(endpoint: str) -> str:
    index = endpoint.rfind(":")
    return endpoint[:index] if index != -1 else endpoint


def _operator_text(details: str) -> tuple[str, str]:
    """The details without endpoint tokens, and the separator to put before new ones."""
    tokens = _TOKEN.findall(details)
    if len(tokens) == 1 and not tokens[0].startswith((P2P_KEY, NODE_KEY)):
        bare = tokens[0]
        if _HOSTISH.fullmatch(bare) and not isinstance(
            _host_port_syntax(bare, bare=True), EndpointRejection
        ):
            return "", " "
    parts = _SPLIT_WHITESPACE.split(details)
    # parts alternates token, whitespace, token, ...; pair each token with the
    # whitespace before it.
    leading = ""
    if parts[0] == "" and len(parts) > 1:
        leading, parts = parts[1], parts[2:]
    pairs = [("", parts[0])] + [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2)]
    kept: list[tuple[str, str]] = []
    separator = ""
    for before, token in pairs:
        if token.startswith((P2P_KEY, NODE_KEY)):
            if not separator and token.startswith(P2P_KEY):
                separator = "\n" if "\n" in before else " "
            continue
        if token:
            kept.append((before, token))
    if not kept:
        return "", " "
    body = kept[0][1] + "".join(before + token for before, token in kept[1:])
    return leading + body, separator or " "
