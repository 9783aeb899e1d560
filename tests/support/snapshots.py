"""The one builder of chain state for tests: addresses, validators, consumer chains, snapshots.

`validator(n)`, `consumer(id, chain_id, ...)` and `snapshot(validators,
consumers)` build the `chainmonitor.types` values the monitor hands out;
`op(n)`, `cons(n)` and `node_id(n)` are validator n's operator address,
consensus address and node ID everywhere (`discovery_states` uses them too).
Addresses are real bech32 strings (`chainmonitor.addresses`), validators are
sorted by operator and consumers by numeric ID, as the monitor hands them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from chainmonitor.addresses import ConsensusAddress, OperatorAddress, bech32_encode
from chainmonitor.types import (
    BondStatus,
    ChainId,
    ChainSnapshot,
    ConsumerChain,
    ConsumerId,
    ConsumerPhase,
    ConsumerValidator,
    Description,
    Validator,
)
from discovery.ports import chain_offset

LAUNCHED = ConsumerPhase.LAUNCHED


def op(n: int) -> OperatorAddress:
    raw = bytes([n]) * 20 if n < 256 else b"\xfe" + n.to_bytes(19, "big")
    return OperatorAddress(bech32_encode("cosmosvaloper", raw))


def cons(n: int) -> ConsensusAddress:
    raw = bytes([n + 100]) * 20 if n < 156 else b"\xff" + n.to_bytes(19, "big")
    return ConsensusAddress(bech32_encode("cosmosvalcons", raw))


def node_id(n: int) -> str:
    return f"{n:02x}" * 20


def validator(
    n: int,
    details: str | None = None,
    *,
    moniker: str | None = None,
    with_consensus: bool = True,
) -> Validator:
    """Validator `n`; by default it publishes `p2p=203.0.113.<n> node=<id>`."""
    text = details if details is not None else f"Validator {n} p2p=203.0.113.{n} node={node_id(n)}"
    return Validator(
        operator=op(n),
        description=Description(moniker=moniker if moniker is not None else f"v{n}", details=text),
        status=BondStatus.BONDED,
        jailed=False,
        consensus_address=cons(n) if with_consensus else None,
        consensus_key_type="/cosmos.crypto.ed25519.PubKey",
        tokens=1000,
    )


def consumer(
    consumer_id: int,
    chain_id: str,
    opted_in: Iterable[int] = (),
    phase: ConsumerPhase = LAUNCHED,
    *,
    spawn_time: str = "",
    powers: Mapping[int, int] | None = None,
) -> ConsumerChain:
    """Consumer chain `consumer_id`; `powers` (validator n to power) is its validator set."""
    return ConsumerChain(
        consumer_id=ConsumerId(str(consumer_id)),
        chain_id=ChainId(chain_id),
        phase=phase,
        opted_in=tuple(sorted(cons(n) for n in opted_in)) if phase.has_opted_in_set else (),
        spawn_time=spawn_time,
        validators=(
            tuple(sorted((ConsumerValidator(cons(n), p) for n, p in powers.items()), key=str))
            if powers is not None
            else None
        ),
    )


def snapshot(
    validators: Iterable[Validator], consumers: Iterable[ConsumerChain], height: int = 100
) -> ChainSnapshot:
    return ChainSnapshot(
        height=height,
        validators=tuple(sorted(validators, key=lambda v: v.operator)),
        consumers=tuple(sorted(consumers, key=lambda c: int(c.consumer_id))),
    )


def colliding_chain_ids(prefix: str = "chain") -> tuple[str, str]:
    """Two chain IDs with the same port offset (found by search, so no constant is assumed)."""
    seen: dict[int, str] = {}
    i = 0
    while True:
        chain_id = f"{prefix}-{i}"
        offset = chain_offset(chain_id)
        if offset in seen:
            return seen[offset], chain_id
        seen[offset] = chain_id
        i += 1
