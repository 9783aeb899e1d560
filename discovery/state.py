"""What one cluster's discovery service knows and does, as one immutable value, plus its store.

The service loop computes a new `DiscoveryState` after every reconcile and hands
it to `StateStore.update`; the gRPC API, `ics-discovery status` and the peers
ConfigMaps all read from it. Keeping it a plain frozen value means a reader can
never see half an update, and keeping the records plain (strings, ints,
tuples) means the API and the ConfigMap builder do not depend on how the core
computed them: `peer_records` and `left_out_records` are the one bridge from
`discovery.peers`' output. The store wakes a whole-state watcher on every
change, and a watcher of one chain's peers only when that chain's peers change
(hundreds of WatchPeers streams over many chains cost one comparison per
watched chain per change, not one wake-up per stream); a slow watcher skips
intermediate states but always sees the latest one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from discovery.endpoints import EndpointResult
from discovery.peers import (
    LeftOut,
    Peer,
    PeerList,
    check_peer_entry,
    hash_persistent_peers,
    join_peers,
)
from discovery.ports import Allocation
from discovery.types import OperatorAddress

# Monikers by operator address, for the records (monikers are display text only).
Monikers = Mapping[OperatorAddress, str]


@dataclass(frozen=True)
class PeerRecord:
    """One peer in a chain's list: who it is and where its consumer node listens."""

    operator_address: str
    moniker: str
    node_id: str
    # Canonical host without brackets (IPv6 is bracketed only in `entry`).
    host: str
    port: int

    def entry(self) -> str:
        """`node_id@host:port`, IPv6 in brackets, as `persistent_peers` wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.node_id}@{host}:{self.port}"

    def checked_entry(self) -> str:
        """`entry()`, after CometBFT's own checks (`InvalidPeerEntry` otherwise)."""
        text = self.entry()
        check_peer_entry(text)
        return text


@dataclass(frozen=True)
class LeftOutRecord:
    """An opted-in validator that is not a peer, and why."""

    consensus_address: str
    # Empty when no validator of the registry has this consensus address.
    operator_address: str
    moniker: str
    reason: str
    detail: str


def peer_records(peers: PeerList, monikers: Monikers) -> tuple[PeerRecord, ...]:
    """The records of a `PeerList`'s peers, with monikers by operator address ("" if unknown)."""
    return tuple(_peer_record(p, monikers) for p in peers.peers)


def _peer_record(peer: Peer, monikers: Monikers) -> PeerRecord:
    return PeerRecord(
        operator_address=peer.operator_address,
        moniker=monikers.get(peer.operator_address, ""),
        node_id=peer.node_id,
        host=peer.host.name,
        port=peer.port,
    )


def left_out_records(peers: PeerList, monikers: Monikers) -> tuple[LeftOutRecord, ...]:
    """The records of a `PeerList`'s left-out validators."""
    return tuple(_left_out_record(x, monikers) for x in peers.left_out)


def _left_out_record(item: LeftOut, monikers: Monikers) -> LeftOutRecord:
    operator = item.operator_address or ""
    return LeftOutRecord(
        consensus_address=item.consensus_address,
        operator_address=operator,
        moniker=monikers.get(OperatorAddress(operator), "") if operator else "",
        reason=item.reason.value,
        detail=item.detail,
    )


def _sorted_peers(peers: tuple[PeerRecord, ...]) -> tuple[PeerRecord, ...]:
    return tuple(sorted(peers, key=lambda p: (p.entry(), p.operator_address)))


def _sorted_left_out(items: tuple[LeftOutRecord, ...]) -> tuple[LeftOutRecord, ...]:
    return tuple(
        sorted(items, key=lambda x: (x.operator_address, x.consensus_address, x.reason, x.detail))
    )


@dataclass(frozen=True)
class ChainPeers:
    """The peer list of one consumer chain; sorted on construction whatever the input order."""

    chain_id: str
    consumer_id: str
    peers: tuple[PeerRecord, ...] = ()
    left_out: tuple[LeftOutRecord, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "peers", _sorted_peers(tuple(self.peers)))
        object.__setattr__(self, "left_out", _sorted_left_out(tuple(self.left_out)))

    @classmethod
    def from_peer_list(cls, peers: PeerList, monikers: Monikers) -> ChainPeers:
        """The records of what `discovery.peers.build_peer_list` returned."""
        return cls(
            chain_id=peers.chain_id,
            consumer_id=peers.consumer_id,
            peers=peer_records(peers, monikers),
            left_out=left_out_records(peers, monikers),
        )

    def entries(self) -> tuple[str, ...]:
        """The `persistent_peers` entries in order, each checked as CometBFT checks it."""
        return tuple(p.checked_entry() for p in self.peers)

    def persistent_peers(self) -> str:
        """The value for CometBFT's `p2p.persistent_peers` (each entry checked)."""
        return join_peers(self.entries())

    def peers_hash(self) -> str:
        """SHA-256 of `persistent_peers`: changes exactly when the node must learn."""
        return hash_persistent_peers(self.persistent_peers())


@dataclass(frozen=True)
class ChainPortsView:
    """The ports of one chain as the API shows them (kind name to port)."""

    scheme: str
    ports: Mapping[str, int]
    derived: Mapping[str, int]
    moved: tuple[str, ...] = ()

    @classmethod
    def from_allocation(cls, allocation: Allocation, scheme: str) -> ChainPortsView:
        return cls(
            scheme=scheme,
            ports=allocation.ports.as_json(),
            derived=allocation.derived.as_json(),
            moved=tuple(k.value for k in allocation.moved),
        )

    def __post_init__(self) -> None:
        # Read-only copies, so a frozen view cannot change under a reader.
        object.__setattr__(self, "ports", MappingProxyType(dict(self.ports)))
        object.__setattr__(self, "derived", MappingProxyType(dict(self.derived)))

    def __hash__(self) -> int:
        return hash(
            (self.scheme, tuple(sorted(self.ports.items())), tuple(sorted(self.derived.items())))
        )


@dataclass(frozen=True)
class ChainView:
    """One consumer chain and what this cluster does about it."""

    consumer_id: str
    chain_id: str
    phase: str
    opted_in: bool = False
    exposed: bool = False
    ports: ChainPortsView | None = None
    peers: ChainPeers | None = None
    # Why the chain is not exposed although it should be ("" when all is well).
    problem: str = ""
    # How its consumer node learns peers (a NotifyMode value; "" when not told).
    notify: str = ""
    # Operator modes: the node resources written, and whether all carry the current peers.
    node_resources: str = ""
    node_peers_current: bool = False


@dataclass(frozen=True)
class ValidatorView:
    """One provider validator and what its published endpoint parsed to."""

    operator_address: str
    consensus_address: str
    moniker: str
    status: str
    jailed: bool
    endpoint: EndpointResult


def _consumer_order(chain: ChainView) -> tuple[int, str, str]:
    number = int(chain.consumer_id) if chain.consumer_id.isdigit() else -1
    return (number, chain.consumer_id, chain.chain_id)


@dataclass(frozen=True)
class DiscoveryState:
    """Everything the API serves, computed from one provider snapshot.

    `chains` is sorted by numeric consumer ID and `validators` by operator
    address on construction, so equal content always renders equal answers.
    """

    height: int = 0
    operator_address: str = ""
    chains: tuple[ChainView, ...] = ()
    validators: tuple[ValidatorView, ...] = ()
    _by_chain_id: Mapping[str, ChainView] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        chains = tuple(sorted(self.chains, key=_consumer_order))
        object.__setattr__(self, "chains", chains)
        object.__setattr__(
            self, "validators", tuple(sorted(self.validators, key=lambda v: v.operator_address))
        )
        by_id: dict[str, ChainView] = {}
        for chain in chains:
            held = by_id.get(chain.chain_id)
            if held is None or _preference(chain) >= _preference(held):
                by_id[chain.chain_id] = chain
        object.__setattr__(self, "_by_chain_id", by_id)

    def chain(self, chain_id: str) -> ChainView | None:
        """The chain with this chain ID.

        Consumer chain IDs need not be unique on an ICS v6+ provider (a chain can
        be relaunched under a new consumer ID); then the one this cluster exposes
        wins, else the one with a peer list or ports, else the newest.
        """
        return self._by_chain_id.get(chain_id)


def _preference(chain: ChainView) -> tuple[bool, bool, bool, int]:
    return (
        chain.exposed,
        chain.peers is not None,
        chain.ports is not None,
        _consumer_order(chain)[0],
    )


EMPTY_STATE = DiscoveryState()


def watched_peers(state: DiscoveryState, chain_id: str) -> ChainPeers | None:
    """What a watcher of `chain_id`'s peers follows in `state` (None: no peer list)."""
    chain = state.chain(chain_id)
    return None if chain is None else chain.peers


@dataclass
class _ChainWaiters:
    """The watchers of one chain's peers: one event for all, and how many wait on it."""

    event: asyncio.Event
    count: int = 0


class StateStore:
    """Holds the current `DiscoveryState` and wakes watchers when it changes.

    Use it from one event loop: `update` from the service loop, `changes` and
    `peer_changes` from API handlers on the same loop. Per-chain waiters exist
    only while someone waits, so the store's memory follows the open watchers.
    """

    def __init__(self, initial: DiscoveryState = EMPTY_STATE) -> None:
        self._state = initial
        self._version = 0
        self._changed = asyncio.Event()
        self._closed = False
        self._chain_waiters: dict[str, _ChainWaiters] = {}
        # Wake-ups of waiting watchers (whole-state and per-chain), for tests and benchmarks.
        self.wakeups = 0

    @property
    def current(self) -> DiscoveryState:
        return self._state

    @property
    def version(self) -> int:
        """Counts `update` calls that changed the state."""
        return self._version

    @property
    def watched_chains(self) -> int:
        """Chains someone is waiting on right now."""
        return len(self._chain_waiters)

    @property
    def waiting(self) -> int:
        """Per-chain watchers waiting for a change right now."""
        return sum(w.count for w in self._chain_waiters.values())

    def update(self, state: DiscoveryState) -> bool:
        """Make `state` current; True when it differs from the last one.

        Whole-state watchers are woken on any change; a chain's watchers only
        when `watched_peers` of that chain differs between the two states.
        """
        if state == self._state:
            return False
        previous, self._state = self._state, state
        self._version += 1
        self._wake_all_state()
        for chain_id in changed_chains(previous, state, self._chain_waiters):
            self._wake_chain(chain_id)
        return True

    def close(self) -> None:
        """End every `changes()` and `peer_changes()` iteration (at shutdown)."""
        self._closed = True
        self._wake_everyone()

    def wake(self) -> None:
        """Wake every watcher without a change, so each re-checks its own `stopped` event."""
        self._wake_everyone()

    def _wake_everyone(self) -> None:
        self._wake_all_state()
        for chain_id in list(self._chain_waiters):
            self._wake_chain(chain_id)

    def _wake_all_state(self) -> None:
        # Each waiter holds the event of the moment it started waiting: setting
        # it and swapping in a fresh one wakes exactly the current waiters.
        self._changed.set()
        self._changed = asyncio.Event()

    def _wake_chain(self, chain_id: str) -> None:
        waiters = self._chain_waiters.pop(chain_id, None)
        if waiters is not None:
            waiters.event.set()

    async def changes(self, stopped: asyncio.Event | None = None) -> AsyncIterator[DiscoveryState]:
        """The current state, then each newer one (the latest at wake-up time).

        Ends when the store is closed, or when `stopped` is set and `wake()` called.
        """
        seen = -1
        while not self._closed and not (stopped is not None and stopped.is_set()):
            if self._version != seen:
                seen = self._version
                yield self._state
                continue
            await self._changed.wait()
            self.wakeups += 1

    async def peer_changes(
        self, chain_id: str, stopped: asyncio.Event | None = None
    ) -> AsyncIterator[DiscoveryState]:
        """The current state, then the latest state each time `chain_id`'s peers change.

        A change elsewhere (another chain, the height, the registry) does not
        wake this watcher. Ends like `changes()`.
        """
        first = True
        seen: ChainPeers | None = None
        while not self._closed and not (stopped is not None and stopped.is_set()):
            content = watched_peers(self._state, chain_id)
            if first or content != seen:
                first, seen = False, content
                yield self._state
                continue
            await self._wait_chain(chain_id)
            self.wakeups += 1

    async def _wait_chain(self, chain_id: str) -> None:
        waiters = self._chain_waiters.get(chain_id)
        if waiters is None:
            waiters = self._chain_waiters[chain_id] = _ChainWaiters(asyncio.Event())
        waiters.count += 1
        try:
            await waiters.event.wait()
        finally:
            waiters.count -= 1
            # A cancelled last waiter takes its entry with it (a woken one was popped already).
            if waiters.count == 0 and self._chain_waiters.get(chain_id) is waiters:
                del self._chain_waiters[chain_id]


def changed_chains(
    before: DiscoveryState, after: DiscoveryState, chain_ids: Iterable[str]
) -> list[str]:
    """The chain IDs among `chain_ids` whose watched peers differ between the states. Pure."""
    return [c for c in chain_ids if watched_peers(before, c) != watched_peers(after, c)]
