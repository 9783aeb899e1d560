"""Pure conversions from query answers (gRPC messages or REST JSON) to `chainmonitor.types`.

Both transports must yield identical values for the same chain state, so each
record goes through one function per transport into the same dataclasses, and
one unreadable record raises InvalidChainData for that record only: the caller
leaves it out and reports it, never the whole registry.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict

from google.protobuf.message import DecodeError

from chainmonitor._proto.cosmos.crypto.ed25519 import keys_pb2 as ed25519_pb2
from chainmonitor._proto.cosmos.staking.v1beta1 import staking_pb2
from chainmonitor._proto.interchain_security.ccv.provider.v1 import query_pb2 as provider_pb2
from chainmonitor.addresses import (
    ED25519_TYPE_URL,
    SECP256K1_TYPE_URL,
    ConsensusAddress,
    bech32_decode,
    consensus_address,
    parse_operator,
)
from chainmonitor.errors import InvalidChainData
from chainmonitor.types import (
    BondStatus,
    ChainId,
    ConsumerChain,
    ConsumerId,
    ConsumerPhase,
    ConsumerValidator,
    Description,
    Validator,
)

# ---- REST JSON shapes (grpc-gateway with the SDK's gogoproto marshaller) ------------


class RawPubKey(TypedDict):
    # JSON key "@type" cannot be a TypedDict field name; read it with .get("@type").
    key: str


class RawDescription(TypedDict):
    moniker: str
    identity: str
    website: str
    security_contact: str
    details: str


class RawValidator(TypedDict):
    operator_address: str
    consensus_pubkey: RawPubKey
    jailed: bool
    status: str
    tokens: str
    description: RawDescription


class RawMetadata(TypedDict):
    name: str
    description: NotRequired[str]


class RawChain(TypedDict):
    chain_id: str
    client_id: str
    top_N: int
    phase: str
    metadata: NotRequired[RawMetadata]
    consumer_id: str


class RawPagination(TypedDict):
    next_key: str | None
    total: NotRequired[str]


# ---- shared checks ---------------------------------------------------------------


def _bond_status(name: str, what: str) -> BondStatus:
    try:
        return BondStatus(name)
    except ValueError as e:
        raise InvalidChainData(what, f"unknown bond status {name!r}") from e


def _phase(name: str, what: str) -> ConsumerPhase:
    try:
        return ConsumerPhase(name)
    except ValueError as e:
        raise InvalidChainData(what, f"unknown phase {name!r}") from e


def _tokens(text: str, what: str) -> int:
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()):
        raise InvalidChainData(what, f"tokens {text[:40]!r} is not an integer")
    return int(text)


def _consensus(operator: str, type_url: str, key: bytes) -> tuple[ConsensusAddress | None, str]:
    """The consensus address, or None with the reason (the validator is still kept)."""
    try:
        return consensus_address(operator, type_url, key), ""
    except InvalidChainData as e:
        return None, str(e)


def consumer_id(text: str, what: str) -> ConsumerId:
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise InvalidChainData(what, f"consumer id {text[:40]!r} is not a decimal number")
    if int(text) >= 2**64:
        raise InvalidChainData(what, f"consumer id {text[:40]!r} is larger than a uint64")
    return ConsumerId(text)


def _chain_id(text: str, what: str) -> ChainId:
    if not text.strip() or len(text.encode()) > 50:
        raise InvalidChainData(what, f"chain id {text[:60]!r} is empty or over 50 bytes")
    return ChainId(text)


# ---- validators ------------------------------------------------------------------


def validator_from_proto(msg: staking_pb2.Validator) -> Validator:
    what = f"validator {msg.operator_address[:80]!r}"
    operator = parse_operator(msg.operator_address)
    type_url = "/" + msg.consensus_pubkey.type_url.rsplit("/", 1)[-1]
    key = b""
    if type_url in (ED25519_TYPE_URL, SECP256K1_TYPE_URL):
        # Both PubKey messages are `bytes key = 1`.
        try:
            key = ed25519_pb2.PubKey.FromString(msg.consensus_pubkey.value).key
        except DecodeError:
            key = b""
    address, error = _consensus(operator, type_url, key)
    d = msg.description
    return Validator(
        operator=operator,
        description=Description(d.moniker, d.identity, d.website, d.security_contact, d.details),
        status=_bond_status(staking_pb2.BondStatus.Name(msg.status), what),
        jailed=msg.jailed,
        consensus_address=address,
        consensus_key_type=type_url,
        tokens=_tokens(msg.tokens, what),
        consensus_error=error,
    )


def _field(doc: Mapping[str, object], key: str, what: str) -> str:
    value = doc.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidChainData(what, f"{key} is not a string")
    return value


def validator_from_json(doc: Mapping[str, object]) -> Validator:
    raw_operator = doc.get("operator_address")
    if not isinstance(raw_operator, str):
        raise InvalidChainData("validator", "no operator_address")
    what = f"validator {raw_operator[:80]!r}"
    operator = parse_operator(raw_operator)
    pubkey = doc.get("consensus_pubkey")
    type_url, key = "", b""
    if isinstance(pubkey, dict):
        type_url = str(pubkey.get("@type", ""))
        try:
            key = base64.b64decode(str(pubkey.get("key", "")), validate=True)
        except (binascii.Error, ValueError):
            key = b""
    address, error = _consensus(operator, type_url, key)
    desc = doc.get("description")
    if not isinstance(desc, dict):
        raise InvalidChainData(what, "no description")
    jailed = doc.get("jailed", False)
    if not isinstance(jailed, bool):
        raise InvalidChainData(what, "jailed is not a boolean")
    return Validator(
        operator=operator,
        description=Description(
            _field(desc, "moniker", what),
            _field(desc, "identity", what),
            _field(desc, "website", what),
            _field(desc, "security_contact", what),
            _field(desc, "details", what),
        ),
        status=_bond_status(_field(doc, "status", what), what),
        jailed=jailed,
        consensus_address=address,
        consensus_key_type=type_url,
        tokens=_tokens(_field(doc, "tokens", what), what),
        consensus_error=error,
    )


# ---- consumer chains -------------------------------------------------------------


def consumer_from_proto(msg: provider_pb2.Chain) -> ConsumerChain:
    what = f"consumer chain {msg.consumer_id[:40]!r}"
    return ConsumerChain(
        consumer_id=consumer_id(msg.consumer_id, what),
        chain_id=_chain_id(msg.chain_id, what),
        phase=_phase(msg.phase, what),
        client_id=msg.client_id,
        name=msg.metadata.name,
        top_n=msg.top_N,
    )


def consumer_from_json(doc: Mapping[str, object]) -> ConsumerChain:
    raw_id = doc.get("consumer_id")
    what = f"consumer chain {str(raw_id)[:40]!r}"
    metadata = doc.get("metadata")
    top_n = doc.get("top_N", 0)
    if not isinstance(top_n, int | str) or isinstance(top_n, bool) or not str(top_n).isdigit():
        raise InvalidChainData(what, "top_N is not a number")
    return ConsumerChain(
        consumer_id=consumer_id(str(raw_id or ""), what),
        chain_id=_chain_id(_field(doc, "chain_id", what), what),
        phase=_phase(_field(doc, "phase", what), what),
        client_id=_field(doc, "client_id", what),
        name=_field(metadata, "name", what) if isinstance(metadata, dict) else "",
        top_n=int(top_n),
    )


def opted_in_addresses(values: Sequence[object], what: str) -> tuple[ConsensusAddress, ...]:
    """Sorted, deduplicated consensus addresses; a malformed entry is an error for the chain."""
    out: set[ConsensusAddress] = set()
    for value in values:
        if not isinstance(value, str) or not bech32_decode(value)[0].endswith("valcons"):
            raise InvalidChainData(what, f"opted-in entry {str(value)[:80]!r} is not valcons")
        out.add(ConsensusAddress(value.lower()))
    return tuple(sorted(out))


def consumer_validators(
    entries: Sequence[tuple[object, object]], what: str
) -> tuple[ConsumerValidator, ...]:
    """(provider address, consumer power) pairs as checked values, sorted by address.

    A malformed entry is an error for the chain (as for opted-in sets): a
    partial validator set would silently drop peers.
    """
    out: dict[ConsensusAddress, int] = {}
    for address, power in entries:
        if not isinstance(address, str) or not bech32_decode(address)[0].endswith("valcons"):
            raise InvalidChainData(what, f"validator {str(address)[:80]!r} is not valcons")
        if isinstance(power, str) and power.isascii() and power.lstrip("-").isdigit():
            power = int(power)
        if isinstance(power, bool) or not isinstance(power, int) or not 0 <= power < 2**63:
            raise InvalidChainData(what, f"power {str(power)[:40]!r} is not a non-negative int64")
        out[ConsensusAddress(address.lower())] = power
    return tuple(ConsumerValidator(a, p) for a, p in sorted(out.items()))


_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,9}))?Z", re.ASCII
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Go's zero time: what the provider reports when no spawn time is set.
_GO_ZERO_SECONDS = -62135596800


def spawn_time_text(seconds: int, nanos: int, what: str) -> str:
    """Canonical RFC 3339 (UTC, nanoseconds without trailing zeros); "" for no spawn time."""
    if seconds == _GO_ZERO_SECONDS and nanos == 0:
        return ""
    if not 0 <= nanos < 1_000_000_000:
        raise InvalidChainData(what, f"spawn time nanos {nanos} out of range")
    try:
        at = _EPOCH + dt.timedelta(seconds=seconds)
    except OverflowError as e:
        raise InvalidChainData(what, f"spawn time {seconds} s is out of range") from e
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def spawn_time_from_json(text: object, what: str) -> str:
    """The REST form of a spawn time, made canonical like `spawn_time_text`."""
    if text is None or text == "":
        return ""
    if not isinstance(text, str):
        raise InvalidChainData(what, "spawn_time is not a string")
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise InvalidChainData(what, f"spawn time {text[:60]!r} is not RFC 3339 UTC")
    try:
        at = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError as e:
        raise InvalidChainData(what, f"spawn time {text[:60]!r}: {e}") from e
    seconds = (at - _EPOCH) // dt.timedelta(seconds=1)
    return spawn_time_text(seconds, int((m.group(2) or "").ljust(9, "0")), what)
