"""Consumer chain ports: derived from the chain ID, made collision-free by a shared rule.

Every validator exposes each consumer chain on the same port of its own
LoadBalancer, with no coordination beyond the provider chain's state. So the
ports must be a pure function of that state: `derive_ports` hashes the chain ID
(the rule the existing Go implementation uses, in both its schemes), and
`allocate_ports` walks all consumer chains in the provider's own order and moves
only the ports that would collide, by a deterministic rule. Nothing here does
I/O or reads a clock.

The allocation rule, in full (it is the contract between validators):

0. Only chains that can need ports take them: those in phase LAUNCHED or
   STOPPED (`holds_ports`). Registered and initialized chains never launched,
   anyone can create thousands of them, and no node of theirs runs yet; a
   stopped chain keeps its ports until the provider deletes it (see below).
1. Chains are taken in ascending spawn time (integer nanoseconds), then
   numeric `consumer_id`, then `chain_id`; chains without a spawn time come
   after all those with one, by `consumer_id`.
2. A chain's derived ports are `scheme.port(kind, offset)` for every port kind
   of the scheme, `offset = uint64_be(SHA-256(chain_id)[0:8]) mod 1000`.
3. If none of them is taken (by a reserved port or by a chain earlier in the
   order), the chain gets exactly its derived ports.
4. Otherwise each derived port that is free is kept (so the P2P port, the one
   peers dial, still matches implementations that never move ports whenever it
   can), and each taken one is replaced by the first free port of its own kind
   along the probe sequence `slot_k = (start + k) mod 1000`, k = 0..999, where
   `start = uint64_be(SHA-256("ics-discovery/port-probe/v1" 0x00 consumer_id
   0x00 chain_id)[0:8]) mod 1000`. Kinds are resolved in the scheme's kind order.

Why this is stable: the ports of the chain at position i depend only on the
reserved ports, on chain i itself and on the chains before it. A chain's spawn
time and chain ID are frozen once it launches (the provider refuses new
initialization parameters for a launched chain) and the provider launches
chains when their spawn time passes, so a chain launching later sorts after
every launched one and cannot change their ports; registering, renaming or
opting in to a chain that has not launched changes nothing, because such a
chain is not an input. The one exception: an owner may set a spawn time in the
past just before launching, and that chain then sorts before launched chains
with a later spawn time (and can take a derived port one of them held). That
needs a launch, so an active provider validator that opts in; it is visible in
the `moved` ports the API and `plan` report. A stopped chain keeps its ports,
so nothing moves when a chain stops; when the provider deletes it (after the
unbonding period) its ports are freed, and a chain that had collided with it
may get its derived port back. The probe start is a domain-separated hash,
not the derived offset, so moved ports spread over the range instead of piling
up next to a busy offset; the `v1` tag names this rule should it ever change.
Every probe sequence visits all 1000 slots, so a kind runs out only when all
1000 of its ports are taken; in the `document` scheme that cannot happen
before about 333 launched chains, in `ics-operator` before 500.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from discovery.errors import DuplicateConsumerId, InvalidPort, PortSpaceExhausted
from discovery.types import (
    ChainId,
    ConsumerId,
    ConsumerPhase,
    consumer_id_number,
    parse_chain_id,
    parse_consumer_id,
    parse_spawn_time,
)

# Number of offsets (and of slots per port kind) in both schemes.
OFFSET_COUNT = 1000

_PROBE_DOMAIN = b"ics-discovery/port-probe/v1"

# Phases whose chains take ports (rule 0 of the module docstring).
PORT_HOLDING_PHASES = frozenset({ConsumerPhase.LAUNCHED, ConsumerPhase.STOPPED})


def holds_ports(phase: ConsumerPhase | None) -> bool:
    """Whether a chain in `phase` takes ports: launched, or stopped and not yet deleted."""
    return phase in PORT_HOLDING_PHASES


class PortKind(StrEnum):
    """A kind of port a consumer chain exposes; the value is its JSON key."""

    P2P = "p2p"
    RPC = "rpc"
    GRPC = "grpc"
    GRPC_WEB = "grpc_web"
    REST = "rest"


class PortScheme(StrEnum):
    """How ports follow from an offset (see `docs/interop.md`)."""

    # The design document: P2P 30100+o, RPC 30200+o, gRPC 30300+o.
    DOCUMENT = "document"
    # The deployed Go ics-operator: 26656+100+10o etc., gRPC-web = gRPC+1, REST = RPC+660.
    ICS_OPERATOR = "ics-operator"


@dataclass(frozen=True)
class _Line:
    """Ports of one kind: `base + step * slot` for slot in 0..999."""

    base: int
    step: int

    def port(self, slot: int) -> int:
        return self.base + self.step * slot


# Kind order matters: it is the order in which a collided chain's ports are resolved.
_SCHEMES: Mapping[PortScheme, Mapping[PortKind, _Line]] = {
    PortScheme.DOCUMENT: {
        PortKind.P2P: _Line(30100, 1),
        PortKind.RPC: _Line(30200, 1),
        PortKind.GRPC: _Line(30300, 1),
    },
    PortScheme.ICS_OPERATOR: {
        PortKind.P2P: _Line(26656 + 100, 10),
        PortKind.RPC: _Line(26657 + 100, 10),
        PortKind.GRPC: _Line(9090 + 100, 10),
        # gRPC-web = gRPC + 1 and REST = RPC + 660, as the Go implementation derives them.
        PortKind.GRPC_WEB: _Line(9090 + 100 + 1, 10),
        PortKind.REST: _Line(26657 + 100 + 660, 10),
    },
}


def scheme_kinds(scheme: PortScheme) -> tuple[PortKind, ...]:
    """The port kinds a scheme exposes, in resolution order."""
    return tuple(_SCHEMES[scheme])


def scheme_range(scheme: PortScheme, kind: PortKind) -> range:
    """Every port a kind can take in a scheme (its 1000 slots)."""
    line = _SCHEMES[scheme][kind]
    return range(line.port(0), line.port(OFFSET_COUNT - 1) + 1, line.step)


@dataclass(frozen=True)
class ChainPorts:
    """The ports of one consumer chain; `grpc_web` and `rest` exist only in `ics-operator`."""

    p2p: int
    rpc: int
    grpc: int
    grpc_web: int | None = None
    rest: int | None = None

    def by_kind(self) -> dict[PortKind, int]:
        """Ports present in this chain's scheme, keyed by kind, in kind order."""
        out: dict[PortKind, int] = {}
        for kind in PortKind:
            port = getattr(self, kind.value)
            if port is not None:
                out[kind] = port
        return out

    def ports(self) -> frozenset[int]:
        """Every port number this chain occupies."""
        return frozenset(self.by_kind().values())

    def as_json(self) -> dict[str, int]:
        """JSON object of the ports present, keyed by kind."""
        return {kind.value: port for kind, port in self.by_kind().items()}


def _ports_from_kinds(ports: Mapping[PortKind, int]) -> ChainPorts:
    return ChainPorts(
        p2p=ports[PortKind.P2P],
        rpc=ports[PortKind.RPC],
        grpc=ports[PortKind.GRPC],
        grpc_web=ports.get(PortKind.GRPC_WEB),
        rest=ports.get(PortKind.REST),
    )


def _hash_mod(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[0:8], "big") % OFFSET_COUNT


def chain_offset(chain_id: str) -> int:
    """`uint64_be(SHA-256(chain_id)[0:8]) mod 1000`, the shared root of every port scheme."""
    return _hash_mod(parse_chain_id(chain_id).encode("utf-8"))


def derive_ports(chain_id: str, scheme: PortScheme = PortScheme.DOCUMENT) -> ChainPorts:
    """The ports a chain gets when nothing collides: plain derivation from its chain ID."""
    offset = chain_offset(chain_id)
    return _ports_from_kinds({kind: line.port(offset) for kind, line in _SCHEMES[scheme].items()})


def probe_start(consumer_id: str, chain_id: str) -> int:
    """First slot a collided chain probes (see the module docstring for the rule)."""
    data = b"\x00".join((_PROBE_DOMAIN, consumer_id.encode("utf-8"), chain_id.encode("utf-8")))
    return _hash_mod(data)


@dataclass(frozen=True)
class ConsumerChainRef:
    """What the allocator needs to know about one consumer chain."""

    consumer_id: ConsumerId
    chain_id: ChainId
    # `allocate_ports` takes the chains it is given; which chains take ports
    # at all is `holds_ports(phase)`, applied by its callers.
    phase: ConsumerPhase | None = None
    # Spawn time in nanoseconds since the Unix epoch (`types.parse_spawn_time`).
    spawn_time: int | None = None

    def __post_init__(self) -> None:
        # Validate even when built directly, so the sort key can never fail.
        parse_consumer_id(self.consumer_id)
        parse_chain_id(self.chain_id)
        if self.spawn_time is not None and (
            isinstance(self.spawn_time, bool) or not isinstance(self.spawn_time, int)
        ):
            raise TypeError("spawn_time must be an int (nanoseconds) or None")

    @classmethod
    def parse(
        cls,
        consumer_id: str,
        chain_id: str,
        phase: ConsumerPhase | None = None,
        spawn_time: str = "",
    ) -> ConsumerChainRef:
        """Build a reference from raw strings, validating both IDs and the spawn time."""
        return cls(
            parse_consumer_id(consumer_id),
            parse_chain_id(chain_id),
            phase,
            parse_spawn_time(spawn_time),
        )

    def order_key(self) -> tuple[int, int, int, bytes]:
        """Allocation order: spawn time (none last), numeric consumer ID, chain ID bytes."""
        return (
            1 if self.spawn_time is None else 0,
            self.spawn_time or 0,
            consumer_id_number(self.consumer_id),
            self.chain_id.encode("utf-8"),
        )


@dataclass(frozen=True)
class Allocation:
    """The ports one consumer chain gets, with what plain derivation would have given."""

    consumer_id: ConsumerId
    chain_id: ChainId
    phase: ConsumerPhase | None
    offset: int
    derived: ChainPorts
    ports: ChainPorts
    # Kinds whose port differs from the derived one, in kind order.
    moved: tuple[PortKind, ...] = ()

    @property
    def collided(self) -> bool:
        """True when some derived port was already taken."""
        return bool(self.moved)


@dataclass(frozen=True)
class PortPlan:
    """Ports for a set of consumer chains, in allocation order, all distinct."""

    scheme: PortScheme
    reserved: frozenset[int]
    allocations: tuple[Allocation, ...]
    _by_consumer: Mapping[ConsumerId, Allocation] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_consumer", {a.consumer_id: a for a in self.allocations})

    def for_consumer(self, consumer_id: ConsumerId) -> Allocation:
        """The allocation of one consumer chain; KeyError if it is not in the plan."""
        return self._by_consumer[consumer_id]

    def all_ports(self) -> frozenset[int]:
        """Every port allocated to some chain (reserved ports excluded)."""
        return frozenset(p for a in self.allocations for p in a.ports.ports())


def _check_reserved(reserved: Iterable[int]) -> frozenset[int]:
    out = frozenset(reserved)
    for port in out:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidPort(port)
    return out


def allocate_ports(
    chains: Iterable[ConsumerChainRef],
    scheme: PortScheme = PortScheme.DOCUMENT,
    reserved: Iterable[int] = frozenset(),
) -> PortPlan:
    """Give every consumer chain distinct ports, keeping derived ports wherever free.

    Raises `DuplicateConsumerId` when two chains share a consumer ID and
    `PortSpaceExhausted` when some kind has no free port left.
    """
    reserved_ports = _check_reserved(reserved)
    ordered = sorted(chains, key=ConsumerChainRef.order_key)
    lines = _SCHEMES[scheme]
    taken: set[int] = set(reserved_ports)
    seen: set[ConsumerId] = set()
    allocations: list[Allocation] = []
    for chain in ordered:
        if chain.consumer_id in seen:
            raise DuplicateConsumerId(chain.consumer_id)
        seen.add(chain.consumer_id)
        offset = chain_offset(chain.chain_id)
        derived = {kind: line.port(offset) for kind, line in lines.items()}
        chosen = {kind: port for kind, port in derived.items() if port not in taken}
        # Keep every free derived port before probing, so a probed port never
        # lands on one of this chain's own kept ports.
        taken.update(chosen.values())
        moved: list[PortKind] = []
        if len(chosen) < len(derived):
            start = probe_start(chain.consumer_id, chain.chain_id)
            for kind, line in lines.items():
                if kind in chosen:
                    continue
                port = _first_free(line, start, taken)
                if port is None:
                    raise PortSpaceExhausted(chain.consumer_id, chain.chain_id, kind, scheme)
                chosen[kind] = port
                taken.add(port)
                moved.append(kind)
        allocations.append(
            Allocation(
                consumer_id=chain.consumer_id,
                chain_id=chain.chain_id,
                phase=chain.phase,
                offset=offset,
                derived=_ports_from_kinds(derived),
                ports=_ports_from_kinds(chosen),
                moved=tuple(moved),
            )
        )
    return PortPlan(scheme=scheme, reserved=reserved_ports, allocations=tuple(allocations))


def _first_free(line: _Line, start: int, taken: set[int]) -> int | None:
    for k in range(OFFSET_COUNT):
        port = line.port((start + k) % OFFSET_COUNT)
        if port not in taken:
            return port
    return None
