"""The `persistent_peers` a consumer node should use, decided from chain state alone.

CometBFT refuses to start when one `persistent_peers` entry is malformed, and
dials whatever the list names, so this is where hostile or broken published
endpoints must stop. `build_peer_list` takes plain data (validators keyed by
operator address with their endpoint read results, one consumer chain's
candidates (its validator set with powers, or its opted-in set), our own
operator address, the chain's P2P port, `max_peers`) and returns the sorted
entries plus every candidate it left out and why. What a validator publishes
can only affect its own entry: it cannot remove another validator. Validators
are identified by operator address, never by moniker, which anyone can copy.
Every entry is checked here as CometBFT checks it (and more strictly) before
it is returned, so nothing unvalidated ever reaches a node's configuration.
Pure: DNS names are not resolved here; CometBFT resolves them once at start.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from discovery.endpoints import (
    DEFAULT_POLICY,
    EndpointPolicy,
    EndpointRejection,
    Host,
    PublishedEndpoint,
    RejectReason,
    parse_host,
    read_details,
)
from discovery.errors import (
    EndpointRejected,
    InvalidInput,
    InvalidNodeId,
    InvalidPeerEntry,
    InvalidPort,
    quote_untrusted,
)
from discovery.types import (
    ChainId,
    ConsensusAddress,
    ConsumerId,
    NodeId,
    OperatorAddress,
    parse_node_id,
)

_NODE_ID = re.compile(r"[0-9a-f]{40}", re.ASCII)
_PORT = re.compile(r"[0-9]+", re.ASCII)
_IPV6_HOST = re.compile(r"[0-9a-f:]+", re.ASCII)
_PLAIN_HOST = re.compile(r"[a-z0-9.-]+", re.ASCII)
# What CometBFT splits `persistent_peers` on (`,`) and trims from entries (` `),
# plus every other whitespace: none of it may appear inside one entry.
_FORBIDDEN_CHARS = frozenset(", \t\n\r\x0b\x0c")
# Re-checking a host needs its syntax and the fixed address rules, not the
# caller's deny and allow lists (already applied when the details were read).
_SYNTAX_ONLY_POLICY = EndpointPolicy(deny_name_suffixes=())


@dataclass(frozen=True)
class ValidatorEndpoint:
    """One validator as peer-list building sees it.

    `endpoint` is what `endpoints.read_details` made of the validator's
    description details. `node_id` is the validator's node ID on the consumer
    chain in question when the caller knows it from elsewhere (for example an
    ID service, or the insecure moniker derivation on networks that use it);
    when absent, the `node=` token of the published endpoint is used.
    """

    operator_address: OperatorAddress
    consensus_address: ConsensusAddress
    endpoint: PublishedEndpoint | EndpointRejection
    node_id: NodeId | None = None

    @classmethod
    def from_details(
        cls,
        operator_address: str,
        consensus_address: str,
        details: str,
        policy: EndpointPolicy = DEFAULT_POLICY,
        node_id: NodeId | None = None,
    ) -> ValidatorEndpoint:
        """Build the record from raw staking data (as a validator registry returns it)."""
        return cls(
            OperatorAddress(operator_address),
            ConsensusAddress(consensus_address),
            read_details(details, policy),
            node_id,
        )

    def effective_node_id(self) -> NodeId | None:
        """The node ID to use: the caller's, else the published one."""
        if self.node_id is not None:
            return self.node_id
        if isinstance(self.endpoint, PublishedEndpoint):
            return self.endpoint.node_id
        return None


@dataclass(frozen=True)
class ConsumerMembers:
    """One consumer chain and the provider consensus addresses of its peer candidates.

    `opted_in` names the candidates. With `powers` (the consumer chain's
    validator set: provider consensus address to power on that chain) only
    addresses with power above zero are candidates, and when more than
    `max_peers` of them are usable the highest powers are kept.
    """

    consumer_id: ConsumerId
    chain_id: ChainId
    opted_in: frozenset[ConsensusAddress]
    powers: Mapping[ConsensusAddress, int] | None = None

    @classmethod
    def from_validator_set(
        cls, consumer_id: ConsumerId, chain_id: ChainId, powers: Mapping[ConsensusAddress, int]
    ) -> ConsumerMembers:
        """The validators with power on the consumer chain are the candidates."""
        return cls(
            consumer_id,
            chain_id,
            frozenset(a for a, p in powers.items() if p > 0),
            dict(powers),
        )

    def power(self, consensus: ConsensusAddress) -> int:
        return self.powers.get(consensus, 0) if self.powers is not None else 0


class LeftOutReason(StrEnum):
    """Why an opted-in validator is not in the peer list."""

    NO_ENDPOINT = "no-endpoint"
    INVALID_ENDPOINT = "invalid-endpoint"
    NO_NODE_ID = "no-node-id"
    # Claims our own node ID or host (ours are known to be genuine).
    DUPLICATE_NODE_ID = "duplicate-node-id"
    DUPLICATE_ADDRESS = "duplicate-address"
    # The opted-in consensus address matches no validator (or more than one).
    UNKNOWN_VALIDATOR = "unknown-validator"
    # Usable, but `max_peers` validators with more power (or equal power and a
    # lower consensus address) were chosen.
    OVER_MAX_PEERS = "over-max-peers"


@dataclass(frozen=True)
class Peer:
    """One `persistent_peers` entry and the validator it belongs to."""

    operator_address: OperatorAddress
    node_id: NodeId
    host: Host
    port: int

    def entry(self) -> str:
        """`id@host:port`, IPv6 in brackets."""
        return f"{self.node_id}@{self.host.address()}:{self.port}"


@dataclass(frozen=True)
class LeftOut:
    """An opted-in validator left out of the list; `detail` quotes untrusted input safely."""

    consensus_address: ConsensusAddress
    operator_address: OperatorAddress | None
    reason: LeftOutReason
    detail: str


@dataclass(frozen=True)
class PeerList:
    """The peers for one consumer chain, sorted by entry, and who was left out."""

    consumer_id: ConsumerId
    chain_id: ChainId
    peers: tuple[Peer, ...]
    left_out: tuple[LeftOut, ...]

    def entries(self) -> tuple[str, ...]:
        """The `persistent_peers` entries, sorted."""
        return tuple(p.entry() for p in self.peers)

    def persistent_peers(self) -> str:
        """The value for CometBFT's `p2p.persistent_peers`."""
        return join_peers(self.entries())


def check_peer_entry(entry: str) -> None:
    """Raise `InvalidPeerEntry` unless CometBFT would accept `entry` in `persistent_peers`.

    Mirrors `p2p.NewNetAddressString` (CometBFT v0.37/v0.38): exactly one `@`,
    an ID of 20 hex-encoded bytes, `net.SplitHostPort`, a non-empty host and a
    uint16 port. Stricter where CometBFT is lenient and our output never needs
    it: lower-case ID, no scheme prefix, no whitespace or commas, a port above
    0, and a host that is an IP literal or a plain DNS name.
    """
    problem = _peer_entry_problem(entry)
    if problem is not None:
        raise InvalidPeerEntry(entry, problem)


def _peer_entry_problem(entry: str) -> str | None:
    if any(c in _FORBIDDEN_CHARS for c in entry):
        return "contains a comma or whitespace"
    if "://" in entry:
        return "has a scheme prefix"
    if entry.count("@") != 1:
        return "needs exactly one '@'"
    node_id, host_port = entry.split("@")
    if not _NODE_ID.fullmatch(node_id):
        return "the ID must be 40 lower-case hexadecimal digits"
    # Go's net.SplitHostPort, restricted to the forms we emit.
    if host_port.startswith("["):
        end = host_port.find("]")
        if end < 0 or host_port[end + 1 : end + 2] != ":":
            return "malformed [IPv6]:port"
        host, port = host_port[1:end], host_port[end + 2 :]
        if not _IPV6_HOST.fullmatch(host):
            return "malformed IPv6 host"
    else:
        if host_port.count(":") != 1:
            return "expected host:port (IPv6 hosts in brackets)"
        host, port = host_port.split(":")
        if host and not _PLAIN_HOST.fullmatch(host):
            return "malformed host"
    if not host:
        return "host is empty"
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        return "the port must be a number in 1..65535"
    return None


def join_peers(entries: Iterable[str]) -> str:
    """CometBFT's `p2p.persistent_peers` value: the entries, comma-separated, in the given order."""
    return ",".join(entries)


def split_peers(value: str | None) -> tuple[str, ...]:
    """The entries of a `persistent_peers` value (ours or hand-written): trimmed, none empty."""
    return tuple(e.strip() for e in (value or "").split(",") if e.strip())


def hash_persistent_peers(persistent_peers: str) -> str:
    """SHA-256 (hex) of a `persistent_peers` value: changes exactly when the node must learn."""
    return hashlib.sha256(persistent_peers.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class _Candidate:
    record: ValidatorEndpoint
    node_id: NodeId
    host: Host


# The most persistent peers `build_peer_list` ever returns, whatever it is asked.
MAX_PEERS_LIMIT = 200
DEFAULT_MAX_PEERS = 50


def build_peer_list(
    chain: ConsumerMembers,
    validators: Mapping[OperatorAddress, ValidatorEndpoint],
    own_operator: OperatorAddress,
    p2p_port: int,
    max_peers: int = MAX_PEERS_LIMIT,
) -> PeerList:
    """The persistent peers for `chain`: its candidate validators but us, or why not.

    At most `max_peers` entries: usable candidates are ranked by power on the
    consumer chain (highest first), then by consensus address, and the rest are
    left out as `over-max-peers`.

    Duplicates: when two validators claim the same node ID or the same host,
    both are kept. No rule based on chain data could tell which one is genuine
    (operator addresses can be ground to sort first), and leaving both out
    would let anyone remove any validator from everyone's peers by copying its
    endpoint. Keeping both is safe: CometBFT refuses a peer whose node ID does
    not match the key it proves, so an impostor's entry only costs a failed
    dial. Our own claims are known to be genuine: a validator copying our node
    ID or host is left out (it cannot be a peer of ours), and we never are.
    """
    if isinstance(p2p_port, bool) or not isinstance(p2p_port, int):
        raise InvalidPort(p2p_port)
    if not 1 <= p2p_port <= 65535:
        raise InvalidPort(p2p_port)
    if isinstance(max_peers, bool) or not isinstance(max_peers, int):
        raise InvalidInput(f"max_peers {max_peers!r} is not an integer")
    if not 1 <= max_peers <= MAX_PEERS_LIMIT:
        raise InvalidInput(f"max_peers {max_peers} is outside 1..{MAX_PEERS_LIMIT}")
    for key, record in validators.items():
        if key != record.operator_address:
            raise InvalidInput(
                f"validator keyed {quote_untrusted(key)} carries operator address "
                f"{quote_untrusted(record.operator_address)}"
            )

    by_consensus: dict[ConsensusAddress, list[ValidatorEndpoint]] = defaultdict(list)
    for record in validators.values():
        by_consensus[record.consensus_address].append(record)

    left_out: list[LeftOut] = []
    candidates: list[_Candidate] = []
    for consensus in sorted(chain.opted_in):
        matches = by_consensus.get(consensus, [])
        if len(matches) != 1:
            problem = (
                "no validator has this consensus address"
                if not matches
                else f"{len(matches)} validators share this consensus address"
            )
            left_out.append(LeftOut(consensus, None, LeftOutReason.UNKNOWN_VALIDATOR, problem))
            continue
        record = matches[0]
        if record.operator_address == own_operator:
            continue
        verdict = _candidate(record)
        if isinstance(verdict, LeftOut):
            left_out.append(verdict)
        else:
            candidates.append(verdict)

    own = validators.get(own_operator)
    own_claim = _candidate(own) if own is not None else None
    ours = own_claim if isinstance(own_claim, _Candidate) else None

    usable: list[_Candidate] = []
    for c in candidates:
        operator = c.record.operator_address
        consensus = c.record.consensus_address
        if ours is not None and c.node_id == ours.node_id:
            left_out.append(
                LeftOut(
                    consensus,
                    operator,
                    LeftOutReason.DUPLICATE_NODE_ID,
                    f"node ID {c.node_id} also claimed by us",
                )
            )
            continue
        if ours is not None and c.host == ours.host:
            left_out.append(
                LeftOut(
                    consensus,
                    operator,
                    LeftOutReason.DUPLICATE_ADDRESS,
                    f"host {c.host.name} also claimed by us",
                )
            )
            continue
        usable.append(c)

    # Highest power first, then consensus address: the same choice on every validator.
    usable.sort(
        key=lambda c: (-chain.power(c.record.consensus_address), c.record.consensus_address)
    )
    peers: list[Peer] = []
    for c in usable:
        operator = c.record.operator_address
        consensus = c.record.consensus_address
        if len(peers) >= max_peers:
            left_out.append(
                LeftOut(
                    consensus,
                    operator,
                    LeftOutReason.OVER_MAX_PEERS,
                    f"power {chain.power(consensus)}: {max_peers} peers with more power "
                    "were chosen",
                )
            )
            continue
        peer = Peer(operator, c.node_id, c.host, p2p_port)
        try:
            check_peer_entry(peer.entry())
        except InvalidPeerEntry as e:
            left_out.append(LeftOut(consensus, operator, LeftOutReason.INVALID_ENDPOINT, e.problem))
            continue
        peers.append(peer)

    peers.sort(key=Peer.entry)
    left_out.sort(key=lambda x: (x.operator_address or "", x.consensus_address, x.reason))
    return PeerList(chain.consumer_id, chain.chain_id, tuple(peers), tuple(left_out))


@functools.lru_cache(maxsize=16384)
def _candidate(record: ValidatorEndpoint) -> _Candidate | LeftOut:
    """Whether one validator's record can be a peer (cached: it is the same for every chain)."""
    operator, consensus = record.operator_address, record.consensus_address
    endpoint = record.endpoint
    if isinstance(endpoint, EndpointRejection):
        reason = (
            LeftOutReason.NO_ENDPOINT
            if endpoint.reason is RejectReason.NO_ENDPOINT
            else LeftOutReason.INVALID_ENDPOINT
        )
        return LeftOut(consensus, operator, reason, str(endpoint))
    if not _host_is_canonical(endpoint.host):
        return LeftOut(
            consensus,
            operator,
            LeftOutReason.INVALID_ENDPOINT,
            f"host {quote_untrusted(endpoint.host.name)} was not produced by the endpoint parser",
        )
    raw_node_id = record.effective_node_id()
    if raw_node_id is None:
        return LeftOut(consensus, operator, LeftOutReason.NO_NODE_ID, "no node ID known")
    try:
        node_id = parse_node_id(raw_node_id)
    except InvalidNodeId as e:
        return LeftOut(consensus, operator, LeftOutReason.NO_NODE_ID, str(e))
    return _Candidate(record, node_id, endpoint.host)


def _host_is_canonical(host: Host) -> bool:
    """A Host built by hand rather than by `endpoints` is not trusted: re-read it."""
    try:
        reparsed = parse_host(host.address(), _SYNTAX_ONLY_POLICY)
    except EndpointRejected:
        return False
    return reparsed == host
