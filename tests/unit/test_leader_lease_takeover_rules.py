"""Lease decisions follow client-go: take a lease only when free, ours, or expired on our clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lbmanager.leader import (
    LeaseConfig,
    LeaseError,
    LeaseRecord,
    lease_record,
    lease_spec,
    micro_time,
    released_spec,
    takeover_allowed,
)

NOW = datetime(2025, 7, 5, 3, 35, 3, 123456, tzinfo=UTC)
CONFIG = LeaseConfig("ns", "lease", "me", lease_duration=15, renew_deadline=10, retry_period=2)


def record(holder: str, duration: int = 15, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder, duration, "t0", "t1", transitions, "42")


def test_free_and_own_leases_may_be_written_at_once() -> None:
    assert takeover_allowed(record(""), "me", observed_at=100.0, now=100.0)
    assert takeover_allowed(record("me"), "me", observed_at=100.0, now=100.0)


def test_other_holder_only_after_its_duration_on_our_clock() -> None:
    other = record("them", duration=15)
    assert not takeover_allowed(other, "me", observed_at=100.0, now=114.9)
    assert takeover_allowed(other, "me", observed_at=100.0, now=115.0)
    released = record("them", duration=1)
    assert takeover_allowed(released, "me", observed_at=100.0, now=101.0)


def test_renewal_keeps_acquire_time_and_transitions_takeover_counts_one() -> None:
    renewed = lease_spec(CONFIG, record("me"), NOW)
    assert renewed["acquireTime"] == "t0"
    assert renewed["leaseTransitions"] == 3
    assert renewed["renewTime"] == "2025-07-05T03:35:03.123456Z"
    assert renewed["holderIdentity"] == "me"
    assert renewed["leaseDurationSeconds"] == 15
    taken = lease_spec(CONFIG, record("them"), NOW)
    assert taken["acquireTime"] == micro_time(NOW)
    assert taken["leaseTransitions"] == 4
    assert lease_spec(CONFIG, None, NOW)["leaseTransitions"] == 0


def test_release_empties_the_holder_like_client_go() -> None:
    spec = released_spec(record("me"), NOW)
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 3


def test_reading_a_lease_object() -> None:
    obj = {
        "metadata": {"resourceVersion": "9"},
        "spec": {"holderIdentity": "x", "leaseDurationSeconds": 15, "leaseTransitions": 2},
    }
    assert lease_record(obj) == LeaseRecord("x", 15, "", "", 2, "9")
    assert lease_record({}).holder == ""


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [(10, 10, 2), (15, 10, 9), (15, 20, 2), (15, 10, 0)],
)
def test_timing_that_could_let_two_lead_is_refused(
    duration: float, deadline: float, retry: float
) -> None:
    with pytest.raises(LeaseError):
        LeaseConfig("ns", "l", "me", duration, deadline, retry)
    with pytest.raises(LeaseError):
        LeaseConfig("ns", "l", "", 15, 10, 2)
