"""Pure steps from one `ChainSnapshot` to the next, and the difference between two.

The monitor's I/O gathers query answers; these functions decide the new
immutable snapshot (a refreshed validator replaces only itself, a reload
replaces everything) and what changed, which is what a resync reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from chainmonitor.addresses import OperatorAddress
from chainmonitor.types import ChainSnapshot, ConsumerChain, ConsumerId, Validator


@dataclass(frozen=True)
class SnapshotChanges:
    """Keys added, removed or changed between two snapshots, each sorted."""

    validators_added: tuple[OperatorAddress, ...] = ()
    validators_removed: tuple[OperatorAddress, ...] = ()
    validators_changed: tuple[OperatorAddress, ...] = ()
    consumers_added: tuple[ConsumerId, ...] = ()
    consumers_removed: tuple[ConsumerId, ...] = ()
    consumers_changed: tuple[ConsumerId, ...] = ()
    # Of validators_changed, those whose description differs (only MsgEditValidator does that).
    descriptions_changed: tuple[OperatorAddress, ...] = ()
    details: tuple[str, ...] = field(default=(), compare=False)

    @property
    def empty(self) -> bool:
        return not (
            self.validators_added
            or self.validators_removed
            or self.validators_changed
            or self.consumers_added
            or self.consumers_removed
            or self.consumers_changed
        )

    def summary(self) -> str:
        if self.empty:
            return "no change"
        parts = []
        for label, keys in (
            ("validators added", self.validators_added),
            ("validators removed", self.validators_removed),
            ("validators changed", self.validators_changed),
            ("consumers added", self.consumers_added),
            ("consumers removed", self.consumers_removed),
            ("consumers changed", self.consumers_changed),
        ):
            if keys:
                parts.append(f"{label}: {', '.join(keys)}")
        return "; ".join(parts)


K = TypeVar("K", bound=str)
V = TypeVar("V")


def _diff_keys(old: Mapping[K, V], new: Mapping[K, V]) -> tuple[list[K], list[K], list[K]]:
    added = sorted(k for k in new if k not in old)
    removed = sorted(k for k in old if k not in new)
    changed = sorted(k for k in new if k in old and old[k] != new[k])
    return added, removed, changed


def diff_snapshots(old: ChainSnapshot | None, new: ChainSnapshot) -> SnapshotChanges:
    """What `new` says differently from `old` (everything is added when `old` is None)."""
    old_v: Mapping[OperatorAddress, Validator] = old.by_operator if old else {}
    old_c: Mapping[ConsumerId, ConsumerChain] = old.by_consumer_id if old else {}
    va, vr, vc = _diff_keys(old_v, new.by_operator)
    ca, cr, cc = _diff_keys(old_c, new.by_consumer_id)
    details = []
    for op in vc:
        before, after = old_v[op], new.by_operator[op]
        fields = [
            name
            for name in ("description", "status", "jailed", "consensus_address", "tokens")
            if getattr(before, name) != getattr(after, name)
        ]
        details.append(f"validator {op}: {', '.join(fields)}")
    for cid in cc:
        before_c, after_c = old_c[cid], new.by_consumer_id[cid]
        if before_c.phase != after_c.phase:
            details.append(f"consumer {cid}: {before_c.phase} -> {after_c.phase}")
        if before_c.opted_in != after_c.opted_in:
            count = f"{len(before_c.opted_in)} -> {len(after_c.opted_in)}"
            details.append(f"consumer {cid}: opted-in validators {count}")
    return SnapshotChanges(
        validators_added=tuple(va),
        validators_removed=tuple(vr),
        validators_changed=tuple(vc),
        consumers_added=tuple(sorted(ca, key=int)),
        consumers_removed=tuple(sorted(cr, key=int)),
        consumers_changed=tuple(sorted(cc, key=int)),
        descriptions_changed=tuple(
            op for op in vc if old_v[op].description != new.by_operator[op].description
        ),
        details=tuple(details),
    )


def _sorted_validators(items: Iterable[Validator]) -> tuple[Validator, ...]:
    return tuple(sorted(items, key=lambda v: v.operator))


def _sorted_consumers(items: Iterable[ConsumerChain]) -> tuple[ConsumerChain, ...]:
    return tuple(sorted(items, key=lambda c: int(c.consumer_id)))


def with_validators(
    snapshot: ChainSnapshot,
    updates: Mapping[OperatorAddress, Validator | None],
    height: int,
) -> ChainSnapshot:
    """`snapshot` with some validators replaced (None removes one) as read at `height`."""
    merged = dict(snapshot.by_operator)
    for operator, validator in updates.items():
        if validator is None:
            merged.pop(operator, None)
        else:
            merged[operator] = validator
    return replace(
        snapshot,
        height=max(snapshot.height, height),
        validators=_sorted_validators(merged.values()),
    )


def with_all_validators(
    snapshot: ChainSnapshot | None,
    validators: Iterable[Validator],
    height: int,
    rejected: Iterable[str] = (),
) -> ChainSnapshot:
    """`snapshot` with the whole validator set replaced."""
    base = snapshot or ChainSnapshot(height=0)
    return replace(
        base,
        height=max(base.height, height),
        validators=_sorted_validators(validators),
        rejected_validators=tuple(rejected),
    )


def with_consumers(
    snapshot: ChainSnapshot | None,
    consumers: Iterable[ConsumerChain],
    height: int,
    rejected: Iterable[str] = (),
) -> ChainSnapshot:
    """`snapshot` with every consumer chain replaced."""
    base = snapshot or ChainSnapshot(height=0)
    return replace(
        base,
        height=max(base.height, height),
        consumers=_sorted_consumers(consumers),
        rejected_consumers=tuple(rejected),
    )
