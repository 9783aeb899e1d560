"""The provider chain state as a JSON document, for `ics-discovery snapshot` and `plan`. Pure.

`snapshot_document` writes what the chain monitor read; `read_snapshot`
checks a document (a file from `snapshot`, or one written by hand to try a
rule) and turns it back into the `ChainSnapshot` the service decides from.
Every field is checked as the monitor checks the chain's answers, and the
first problem is reported with its path (`consumers[2].validators[0].power`),
so a hand-edited file cannot reach the decision half-read.

    {"height": 1000,
     "validators": [{"operator", "moniker", "details", "status", "jailed",
                     "tokens", "consensus_address"}],
     "consumers": [{"consumer_id", "chain_id", "phase", "spawn_time"?,
                    "opted_in": [...], "validators"?: [{"provider_address", "power"}]}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chainmonitor.addresses import ConsensusAddress, bech32_decode, parse_operator
from chainmonitor.convert import consumer_id, consumer_validators, spawn_time_from_json
from chainmonitor.errors import ChainMonitorError
from chainmonitor.types import (
    BondStatus,
    ChainId,
    ChainSnapshot,
    ConsumerChain,
    ConsumerPhase,
    Description,
    Validator,
)
from discovery.errors import InvalidInput

_VALIDATOR_KEYS = frozenset(
    {"operator", "moniker", "details", "status", "jailed", "tokens", "consensus_address"}
)
_CONSUMER_KEYS = frozenset(
    {"consumer_id", "chain_id", "phase", "spawn_time", "opted_in", "validators"}
)
_CONSUMER_VALIDATOR_KEYS = frozenset({"provider_address", "power"})


class SnapshotInvalid(InvalidInput):
    """A snapshot document is not in the schema; `where` is the JSON path of the problem."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


# --- writing ---------------------------------------------------------------------


def snapshot_document(snapshot: ChainSnapshot) -> dict[str, Any]:
    """The schema's document for `snapshot` (validators and consumers in snapshot order)."""
    consumers: list[dict[str, Any]] = []
    for c in snapshot.consumers:
        doc: dict[str, Any] = {
            "consumer_id": c.consumer_id,
            "chain_id": c.chain_id,
            "phase": c.phase.value,
            "opted_in": list(c.opted_in),
        }
        if c.spawn_time:
            doc["spawn_time"] = c.spawn_time
        if c.validators is not None:
            doc["validators"] = [
                {"provider_address": v.provider_address, "power": v.power} for v in c.validators
            ]
        consumers.append(doc)
    return {
        "height": snapshot.height,
        "validators": [
            {
                "operator": v.operator,
                "moniker": v.moniker,
                "details": v.description.details,
                "status": v.status.value,
                "jailed": v.jailed,
                "tokens": str(v.tokens),
                "consensus_address": v.consensus_address or "",
            }
            for v in snapshot.validators
        ],
        "consumers": consumers,
    }


# --- reading ---------------------------------------------------------------------


def read_snapshot(document: object) -> ChainSnapshot:
    """The `ChainSnapshot` a document describes; `SnapshotInvalid` names the first problem."""
    top = _object(document, "snapshot", {"height", "validators", "consumers"}, {"height"})
    height = top["height"]
    if isinstance(height, bool) or not isinstance(height, int) or height < 0:
        raise SnapshotInvalid("height", "must be a non-negative integer")
    validators: list[Validator] = []
    seen_ops: set[str] = set()
    for i, raw in enumerate(_list(top.get("validators", []), "validators")):
        v = _validator(raw, f"validators[{i}]")
        if v.operator in seen_ops:
            raise SnapshotInvalid(f"validators[{i}].operator", f"{v.operator} is listed twice")
        seen_ops.add(v.operator)
        validators.append(v)
    consumers: list[ConsumerChain] = []
    seen_ids: set[str] = set()
    for i, raw in enumerate(_list(top.get("consumers", []), "consumers")):
        c = _consumer(raw, f"consumers[{i}]")
        if c.consumer_id in seen_ids:
            raise SnapshotInvalid(f"consumers[{i}].consumer_id", f"{c.consumer_id} listed twice")
        seen_ids.add(c.consumer_id)
        consumers.append(c)
    return ChainSnapshot(
        height=height,
        validators=tuple(sorted(validators, key=lambda v: v.operator)),
        consumers=tuple(sorted(consumers, key=lambda c: int(c.consumer_id))),
    )


def _object(
    raw: object, where: str, allowed: frozenset[str] | set[str], required: set[str]
) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise SnapshotInvalid(where, "must be a JSON object")
    for key in sorted(raw):
        if key not in allowed:
            raise SnapshotInvalid(f"{where}.{key}", "unknown field")
    for key in sorted(required):
        if key not in raw:
            raise SnapshotInvalid(f"{where}.{key}", "missing")
    return raw


def _list(raw: object, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise SnapshotInvalid(where, "must be a JSON list")
    return raw


def _string(doc: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise SnapshotInvalid(f"{where}.{key}", "must be a string")
    return value


def _checked(where: str, call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except (ChainMonitorError, ValueError) as e:
        raise SnapshotInvalid(where, str(e)) from e


def _validator(raw: object, where: str) -> Validator:
    doc = _object(raw, where, _VALIDATOR_KEYS, {"operator", "consensus_address"})
    operator = _checked(f"{where}.operator", parse_operator, _string(doc, "operator", where))
    consensus = _string(doc, "consensus_address", where)
    if consensus:
        _valcons(consensus, f"{where}.consensus_address")
    status_text = _string(doc, "status", where, BondStatus.BONDED.value)
    try:
        status = BondStatus(status_text)
    except ValueError as e:
        raise SnapshotInvalid(f"{where}.status", f"unknown bond status {status_text!r}") from e
    jailed = doc.get("jailed", False)
    if not isinstance(jailed, bool):
        raise SnapshotInvalid(f"{where}.jailed", "must be true or false")
    tokens = _string(doc, "tokens", where, "0")
    if not (tokens.isascii() and tokens.isdigit()):
        raise SnapshotInvalid(f"{where}.tokens", "must be a decimal integer string")
    return Validator(
        operator=operator,
        description=Description(
            moniker=_string(doc, "moniker", where, ""), details=_string(doc, "details", where, "")
        ),
        status=status,
        jailed=jailed,
        consensus_address=ConsensusAddress(consensus.lower()) if consensus else None,
        tokens=int(tokens),
    )


def _valcons(text: str, where: str) -> None:
    prefix = _checked(where, lambda t: bech32_decode(t)[0], text)
    if not prefix.endswith("valcons"):
        raise SnapshotInvalid(where, f"{text[:80]!r} is not a consensus address (...valcons1...)")


def _consumer(raw: object, where: str) -> ConsumerChain:
    doc = _object(raw, where, _CONSUMER_KEYS, {"consumer_id", "chain_id", "phase"})
    cid = _checked(f"{where}.consumer_id", consumer_id, _string(doc, "consumer_id", where), where)
    chain_id = _string(doc, "chain_id", where)
    if not chain_id.strip() or len(chain_id.encode()) > 50:
        raise SnapshotInvalid(f"{where}.chain_id", "must be 1..50 bytes, not blank")
    phase_text = _string(doc, "phase", where)
    try:
        phase = ConsumerPhase(phase_text)
    except ValueError as e:
        raise SnapshotInvalid(f"{where}.phase", f"unknown phase {phase_text!r}") from e
    spawn = _checked(f"{where}.spawn_time", spawn_time_from_json, doc.get("spawn_time"), where)
    opted: list[ConsensusAddress] = []
    for j, address in enumerate(_list(doc.get("opted_in", []), f"{where}.opted_in")):
        if not isinstance(address, str):
            raise SnapshotInvalid(f"{where}.opted_in[{j}]", "must be a string")
        _valcons(address, f"{where}.opted_in[{j}]")
        opted.append(ConsensusAddress(address.lower()))
    validators = None
    if "validators" in doc:
        pairs = []
        for j, v in enumerate(_list(doc["validators"], f"{where}.validators")):
            vdoc = _object(
                v, f"{where}.validators[{j}]", _CONSUMER_VALIDATOR_KEYS, {"provider_address"}
            )
            power = vdoc.get("power", 0)
            if isinstance(power, bool) or not isinstance(power, int) or power < 0:
                raise SnapshotInvalid(f"{where}.validators[{j}].power", "must be an integer >= 0")
            pairs.append((vdoc["provider_address"], power))
        validators = _checked(f"{where}.validators", consumer_validators, pairs, where)
    elif phase is ConsumerPhase.LAUNCHED:
        # "Absent where the chain has none": a launched chain without the key has none.
        validators = ()
    return ConsumerChain(
        consumer_id=cid,
        chain_id=ChainId(chain_id),
        phase=phase,
        opted_in=tuple(sorted(set(opted))),
        spawn_time=spawn,
        validators=validators,
    )
