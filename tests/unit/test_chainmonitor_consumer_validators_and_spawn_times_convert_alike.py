"""Consumer validator sets and spawn times read the same over gRPC and REST, and reject junk."""

from __future__ import annotations

import pytest

from chainmonitor.addresses import bech32_encode
from chainmonitor.convert import consumer_validators, spawn_time_from_json, spawn_time_text
from chainmonitor.errors import InvalidChainData
from chainmonitor.types import ConsumerValidator
from tests.support.snapshots import cons

A = cons(1)
B = cons(2)


def test_validator_sets_are_sorted_and_read_string_or_int_powers() -> None:
    # gRPC gives ints, REST (int64 as JSON) gives strings: same values.
    grpc = consumer_validators([(B, 5), (A, 10)], "c")
    rest = consumer_validators([(B, "5"), (A, "10")], "c")
    expected = [ConsumerValidator(A, 10), ConsumerValidator(B, 5)]
    assert grpc == rest == tuple(sorted(expected, key=lambda v: v.provider_address))


@pytest.mark.parametrize(
    "entry",
    [
        ("cosmosvaloper1xyz", 1),
        (bech32_encode("cosmosvaloper", b"\x01" * 20), 1),
        (A, -1),
        (A, "1.5"),
        (A, True),
        (A, 2**63),
        (None, 1),
    ],
)
def test_a_malformed_entry_is_an_error_for_the_chain(entry: tuple[object, object]) -> None:
    with pytest.raises(InvalidChainData):
        consumer_validators([entry], "consumer 7")


@pytest.mark.parametrize(
    ("seconds", "nanos", "rest", "text"),
    [
        (-62135596800, 0, "0001-01-01T00:00:00Z", ""),
        (1767225600, 0, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        (1767225600, 120_000_000, "2026-01-01T00:00:00.120Z", "2026-01-01T00:00:00.12Z"),
        (1767225600, 1, "2026-01-01T00:00:00.000000001Z", "2026-01-01T00:00:00.000000001Z"),
    ],
)
def test_spawn_times_are_canonical_over_both_transports(
    seconds: int, nanos: int, rest: str, text: str
) -> None:
    assert spawn_time_text(seconds, nanos, "c") == spawn_time_from_json(rest, "c") == text


@pytest.mark.parametrize(
    "bad", ["2026-01-01", "2026-01-01T00:00:00+01:00", 5, "2026-02-30T00:00:00Z"]
)
def test_malformed_spawn_times_are_refused(bad: object) -> None:
    with pytest.raises(InvalidChainData):
        spawn_time_from_json(bad, "c")
