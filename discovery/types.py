"""Domain identifiers shared by discovery's pure core, with their validating constructors.

Chain IDs, consumer IDs, addresses and node IDs are all strings on the wire;
giving each a `NewType` keeps them from being mixed up, and the `parse_*`
functions here are the one place that decides what a valid one looks like, so
every module (and every validator) accepts exactly the same values.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import NewType

# One definition per concept: the chain-side identifiers and the consumer phase
# are chainmonitor's (discovery may import chainmonitor, never the reverse).
from chainmonitor.addresses import ConsensusAddress as ConsensusAddress
from chainmonitor.addresses import OperatorAddress as OperatorAddress
from chainmonitor.types import ChainId as ChainId
from chainmonitor.types import ConsumerId as ConsumerId
from chainmonitor.types import ConsumerPhase as ConsumerPhase
from discovery.errors import InvalidChainId, InvalidConsumerId, InvalidInput, InvalidNodeId

NodeId = NewType("NodeId", str)
"""A CometBFT node ID: 40 lower-case hexadecimal digits."""

# CometBFT's types.MaxChainIDLen, which Interchain Security also applies to consumers.
MAX_CHAIN_ID_BYTES = 50

_UINT64_MAX = 2**64 - 1
_CANONICAL_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)", re.ASCII)
_NODE_ID = re.compile(r"[0-9a-fA-F]{40}", re.ASCII)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)


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


def parse_spawn_time(raw: str) -> int | None:
    """A consumer chain's spawn time as integer nanoseconds since the Unix epoch.

    Accepts RFC 3339 as the provider's REST answers and protobuf's JSON form
    write it (up to nanoseconds, any offset). "" and Go's zero time
    (`0001-01-01T00:00:00Z`, what the provider reports when no spawn time is
    set) give None. Integers, so every validator compares spawn times exactly.
    """
    if raw == "":
        return None
    m = _RFC3339.fullmatch(raw)
    if m is None:
        raise InvalidInput(f"spawn time {raw[:60]!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    nanos = int((m.group(7) or "").ljust(9, "0"))
    offset = 0
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        offset = offset if m.group(9) == "+" else -offset
    try:
        at = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as e:
        raise InvalidInput(f"spawn time {raw[:60]!r}: {e}") from e
    if at == dt.datetime(1, 1, 1, tzinfo=dt.UTC) and nanos == 0 and offset == 0:
        return None
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    seconds = (at - epoch) // dt.timedelta(seconds=1) - offset
    return seconds * 1_000_000_000 + nanos


class NotifyMode(StrEnum):
    """How a consumer node learns that its peers changed."""

    # Put a peers-hash annotation on the pod template: Kubernetes rolls the workload.
    RESTART = "restart"
    # CometBFT's unsafe `dial_peers` with the full list, persistent=true.
    DIAL = "dial"
    # Peers written into the operator's node resource (discovery.operators).
    COSMOS_OPERATOR = "cosmos-operator"
    COSMOPILOT = "cosmopilot"
    NONE = "none"
