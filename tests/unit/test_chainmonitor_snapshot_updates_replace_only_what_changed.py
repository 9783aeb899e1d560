"""Snapshot steps replace only what was re-read, and the diff names exactly what differs."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from chainmonitor.snapshot import (
    diff_snapshots,
    with_all_validators,
    with_consumers,
    with_validators,
)
from chainmonitor.types import ConsumerPhase
from tests.support.snapshots import consumer, op, snapshot, validator

BASE = snapshot(
    [validator(1), validator(2), validator(3)],
    [consumer(0, "c-0", [1, 2]), consumer(1, "c-1", phase=ConsumerPhase.STOPPED)],
    height=10,
)


def test_refresh_of_one_validator_keeps_the_others() -> None:
    new = with_validators(BASE, {op(2): validator(2, "p2p=10.0.0.2")}, 12)
    assert new.height == 12
    assert new.validator(op(2)) == validator(2, "p2p=10.0.0.2")
    assert new.validator(op(1)) is BASE.validator(op(1))
    assert new.consumers == BASE.consumers
    changes = diff_snapshots(BASE, new)
    assert changes.validators_changed == (op(2),)
    assert "description" in changes.details[0]
    assert not changes.validators_added
    assert not changes.consumers_changed


def test_refresh_can_remove_and_never_lowers_the_height() -> None:
    new = with_validators(BASE, {op(3): None, op(9): validator(9)}, 5)
    assert new.height == 10
    assert [v.operator for v in new.validators] == sorted([op(1), op(2), op(9)])
    changes = diff_snapshots(BASE, new)
    assert changes.validators_removed == (op(3),)
    assert changes.validators_added == (op(9),)


def test_consumer_reload_and_opted_in_operators() -> None:
    new = with_consumers(
        BASE,
        [consumer(2, "c-2", [3], ConsumerPhase.REGISTERED), consumer(0, "c-0", [1])],
        11,
    )
    assert [c.consumer_id for c in new.consumers] == ["0", "2"]
    assert new.opted_in_operators("0") == (op(1),)
    assert new.opted_in_operators("2") == (op(3),)
    assert new.opted_in_operators("7") == ()
    changes = diff_snapshots(BASE, new)
    assert changes.consumers_removed == ("1",)
    assert changes.consumers_added == ("2",)
    assert changes.consumers_changed == ("0",)
    assert "opted-in validators 2 -> 1" in " ".join(changes.details)


def test_consumer_ids_sort_numerically() -> None:
    new = with_consumers(
        None, [consumer(10, "c-10"), consumer(9, "c-9"), consumer(100, "c-100")], 1
    )
    assert [c.consumer_id for c in new.consumers] == ["9", "10", "100"]


def test_same_content_ignores_height_and_rejections() -> None:
    later = replace(BASE, height=99, rejected_validators=("x",))
    assert later.same_content(BASE)
    assert later == replace(BASE, height=99)
    assert diff_snapshots(BASE, later).empty


@given(st.lists(st.integers(0, 30), max_size=12), st.lists(st.integers(0, 30), max_size=12))
def test_diff_of_full_reloads_names_added_and_removed(a: list[int], b: list[int]) -> None:
    old = with_all_validators(None, [validator(n) for n in set(a)], 1)
    new = with_all_validators(old, [validator(n) for n in set(b)], 2)
    changes = diff_snapshots(old, new)
    assert set(changes.validators_added) == {op(n) for n in set(b) - set(a)}
    assert set(changes.validators_removed) == {op(n) for n in set(a) - set(b)}
    assert changes.validators_changed == ()
    assert diff_snapshots(new, new).empty
    assert list(new.validators) == sorted(new.validators, key=lambda v: v.operator)


def test_description_changes_are_named_apart_from_other_changes() -> None:
    jailed = replace(validator(1), jailed=True)
    new = with_validators(BASE, {op(1): jailed, op(2): validator(2, "p2p=10.0.0.2")}, 11)
    changes = diff_snapshots(BASE, new)
    assert changes.validators_changed == tuple(sorted((op(1), op(2))))
    assert changes.descriptions_changed == (op(2),)
