"""Domain identifiers shared by discovery's pure core, with their validating constructors.

Chain IDs, consumer IDs, addresses and node IDs are all strings on the wire;
giving each a `NewType` keeps them from being mixed up, and the `parse_*`
functions here are the one place that decides what a valid one looks like, so
every module (and every validator) accepts exactly the same values.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NewType

from discovery.errors import InvalidChainId, InvalidConsumerId, InvalidNodeId

ChainId = NewType("ChainId", str)
"""A consumer chain's CometBFT chain ID (1..50 bytes of UTF-8)."""

ConsumerId = NewType("ConsumerId", str)
"""A consumer chain's provider-assigned ID: a canonical decimal uint64 string."""

OperatorAddress = NewType("OperatorAddress", str)
"""A validator's operator address (`cosmosvaloper1...`): the key for everything per validator."""

ConsensusAddress = NewType("ConsensusAddress", str)
"""A validator's provider consensus address (`cosmosvalcons1...`), as opted-in sets list them."""

NodeId = NewType("NodeId", str)
"""A CometBFT node ID: 40 lower-case hexadecimal digits."""

# CometBFT's types.MaxChainIDLen, which Interchain Security also applies to consumers.
MAX_CHAIN_ID_BYTES = 50

_UINT64_MAX = 2**64 - 1
_CANONICAL_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)", re.ASCII)
_NODE_ID = re.compile(r"[0-9a-fA-F]{40}", re.ASCII)


class ConsumerPhase(StrEnum):
    """Phase of a consumer chain on an ICS v6+ provider, by its protobuf enum name."""

    UNSPECIFIED = "CONSUMER_PHASE_UNSPECIFIED"
    REGISTERED = "CONSUMER_PHASE_REGISTERED"
    INITIALIZED = "CONSUMER_PHASE_INITIALIZED"
    LAUNCHED = "CONSUMER_PHASE_LAUNCHED"
    STOPPED = "CONSUMER_PHASE_STOPPED"
    DELETED = "CONSUMER_PHASE_DELETED"


def parse_chain_id(raw: str) -> ChainId:
    """Accept a chain ID as Interchain Security does: not blank, at most 50 bytes of UTF-8."""
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise InvalidChainId(raw, "not valid UTF-8") from e
    if not raw.strip():
        raise InvalidChainId(raw, "empty")
    if size > MAX_CHAIN_ID_BYTES:
        raise InvalidChainId(raw, f"{size} bytes, over the limit of {MAX_CHAIN_ID_BYTES}")
    return ChainId(raw)


def parse_consumer_id(raw: str) -> ConsumerId:
    """Accept the provider's consumer ID form: decimal uint64 without sign or leading zeros.

    Only the canonical form is accepted, so that two spellings of one number
    ("7" and "07") can never name two different chains.
    """
    if not _CANONICAL_DECIMAL.fullmatch(raw):
        raise InvalidConsumerId(raw, "expected a decimal number without sign or leading zeros")
    if int(raw) > _UINT64_MAX:
        raise InvalidConsumerId(raw, "larger than a uint64")
    return ConsumerId(raw)


def consumer_id_number(consumer_id: ConsumerId) -> int:
    """The numeric value of a consumer ID (the order in which the provider assigned them)."""
    return int(consumer_id)


def parse_node_id(raw: str) -> NodeId:
    """Accept 40 hexadecimal digits in any case; normalise to lower case."""
    if not _NODE_ID.fullmatch(raw):
        raise InvalidNodeId(raw)
    return NodeId(raw.lower())
