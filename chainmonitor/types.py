"""Plain, immutable values for what the chain says: validators, consumer chains, snapshots.

`chainmonitor` hands these to `discovery`; they carry raw chain data (the
description text, not a parsed endpoint) because deciding what an endpoint is
belongs to the domain core. Collections are tuples sorted by key so equal
states compare and render identically on every validator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import NewType

from chainmonitor.addresses import ConsensusAddress, OperatorAddress

ChainId = NewType("ChainId", str)
ConsumerId = NewType("ConsumerId", str)


class BondStatus(StrEnum):
    """A validator's staking status, by its protobuf enum name."""

    UNSPECIFIED = "BOND_STATUS_UNSPECIFIED"
    UNBONDED = "BOND_STATUS_UNBONDED"
    UNBONDING = "BOND_STATUS_UNBONDING"
    BONDED = "BOND_STATUS_BONDED"


class ConsumerPhase(StrEnum):
    """A consumer chain's phase on an ICS v6+ provider, by its protobuf enum name."""

    UNSPECIFIED = "CONSUMER_PHASE_UNSPECIFIED"
    REGISTERED = "CONSUMER_PHASE_REGISTERED"
    INITIALIZED = "CONSUMER_PHASE_INITIALIZED"
    LAUNCHED = "CONSUMER_PHASE_LAUNCHED"
    STOPPED = "CONSUMER_PHASE_STOPPED"
    DELETED = "CONSUMER_PHASE_DELETED"

    @property
    def has_opted_in_set(self) -> bool:
        """Whether the provider answers the opted-in validators query in this phase."""
        return self in (ConsumerPhase.REGISTERED, ConsumerPhase.INITIALIZED, ConsumerPhase.LAUNCHED)


# Protobuf enum numbers of ConsumerPhase (interchain_security.ccv.provider.v1).
CONSUMER_PHASE_NUMBERS: Mapping[ConsumerPhase, int] = {
    phase: number for number, phase in enumerate(ConsumerPhase)
}


@dataclass(frozen=True)
class Description:
    """`cosmos.staking.v1beta1.Description`, as published by the operator."""

    moniker: str = ""
    identity: str = ""
    website: str = ""
    security_contact: str = ""
    details: str = ""


@dataclass(frozen=True)
class Validator:
    """One validator of the provider chain, keyed by its operator address.

    `consensus_address` is None when the consensus key could not be read (the
    reason is in `consensus_error`); such a validator cannot be matched to an
    opted-in set but still carries its description.
    """

    operator: OperatorAddress
    description: Description
    status: BondStatus
    jailed: bool
    consensus_address: ConsensusAddress | None
    consensus_key_type: str = ""
    tokens: int = 0
    consensus_error: str = ""

    @property
    def moniker(self) -> str:
        return self.description.moniker


@dataclass(frozen=True)
class ConsumerValidator:
    """One validator of a consumer chain's current set, as the provider reports it."""

    provider_address: ConsensusAddress
    # The validator's power on the consumer chain (`consumer_power`).
    power: int


@dataclass(frozen=True)
class ConsumerChain:
    """A consumer chain known to the provider, with its opted-in validators (consensus addresses).

    `opted_in` is empty in the phases where the provider does not answer the
    opted-in query (STOPPED, DELETED), and sorted otherwise. `validators` is
    the provider's consumer validators answer for launched chains: the
    validators with power on that chain, which are the ones worth peering with.
    """

    consumer_id: ConsumerId
    chain_id: ChainId
    phase: ConsumerPhase
    opted_in: tuple[ConsensusAddress, ...] = ()
    client_id: str = ""
    name: str = ""
    top_n: int = 0
    # RFC 3339 UTC spawn time from the chain's initialization parameters; "" when
    # none is set (or it was not read).
    spawn_time: str = ""
    # The consumer chain's validator set (LAUNCHED chains only), sorted by
    # provider address; None when it was not read.
    validators: tuple[ConsumerValidator, ...] | None = None


@dataclass(frozen=True)
class ChainSnapshot:
    """Everything known about the provider at `height`: validators and consumer chains.

    Immutable; a change produces a new snapshot. `validators` is sorted by
    operator address, `consumers` by numeric consumer ID.
    """

    height: int
    validators: tuple[Validator, ...] = ()
    consumers: tuple[ConsumerChain, ...] = ()
    # Records left out because they could not be read (one reason each), for reports.
    rejected_validators: tuple[str, ...] = field(default=(), compare=False)
    rejected_consumers: tuple[str, ...] = field(default=(), compare=False)

    @cached_property
    def by_operator(self) -> Mapping[OperatorAddress, Validator]:
        return {v.operator: v for v in self.validators}

    @cached_property
    def by_consensus(self) -> Mapping[ConsensusAddress, Validator]:
        return {v.consensus_address: v for v in self.validators if v.consensus_address}

    @cached_property
    def by_consumer_id(self) -> Mapping[ConsumerId, ConsumerChain]:
        return {c.consumer_id: c for c in self.consumers}

    def validator(self, operator: str) -> Validator | None:
        return self.by_operator.get(OperatorAddress(operator))

    def consumer(self, consumer_id: str) -> ConsumerChain | None:
        return self.by_consumer_id.get(ConsumerId(consumer_id))

    def opted_in_operators(self, consumer_id: str) -> tuple[OperatorAddress, ...]:
        """Sorted operator addresses of the opted-in validators the registry knows."""
        chain = self.consumer(consumer_id)
        if chain is None:
            return ()
        found = (self.by_consensus.get(addr) for addr in chain.opted_in)
        return tuple(sorted(v.operator for v in found if v is not None))

    def same_content(self, other: ChainSnapshot | None) -> bool:
        """Equal validators and consumers, whatever the heights."""
        return (
            other is not None
            and self.validators == other.validators
            and self.consumers == other.consumers
        )
