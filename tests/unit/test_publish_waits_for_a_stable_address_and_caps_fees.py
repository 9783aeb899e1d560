"""Publishing our endpoint: a new address must be stable, publications are spaced, fees capped.

A LoadBalancer address that flaps must cost one transaction, not one per flap;
every refusal says why, once per change of reason.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from chainmonitor.errors import FeeTooHigh
from chainmonitor.publish import fee_for
from discovery.publish_gate import (
    HOLD_DOWN,
    MAX_FEE,
    MIN_INTERVAL,
    Refusal,
    RefusalLog,
    publish_refusal,
)


def test_a_new_address_waits_for_the_hold_down() -> None:
    r = publish_refusal(
        now=110, address_since=100, last_published_at=None, hold_down=30, min_interval=300
    )
    assert r is not None
    assert r.reason == HOLD_DOWN
    assert r.retry_at == 130
    assert "30s" in r.detail
    assert (
        publish_refusal(
            now=130, address_since=100, last_published_at=None, hold_down=30, min_interval=300
        )
        is None
    )


def test_publications_are_spaced_by_the_minimum_interval() -> None:
    r = publish_refusal(
        now=1000, address_since=0, last_published_at=900, hold_down=30, min_interval=300
    )
    assert r is not None
    assert r.reason == MIN_INTERVAL
    assert r.retry_at == 1200
    assert "100s ago" in r.detail
    ok = publish_refusal(
        now=1200, address_since=0, last_published_at=900, hold_down=30, min_interval=300
    )
    assert ok is None


def test_a_refusal_is_reported_once_per_change_of_reason() -> None:
    log = RefusalLog()
    hold = Refusal(HOLD_DOWN, "x", 1.0)
    assert log.changed(hold)
    assert not log.changed(Refusal(HOLD_DOWN, "y", 2.0))
    assert log.changed(Refusal(MIN_INTERVAL, "z", 3.0))
    assert not log.changed(None)  # allowed again: nothing to report
    assert log.changed(hold)


@given(
    st.lists(st.floats(min_value=0.1, max_value=20, allow_nan=False), min_size=1, max_size=50),
    st.floats(min_value=1, max_value=60, allow_nan=False),
    st.floats(min_value=0, max_value=600, allow_nan=False),
)
@settings(max_examples=300, deadline=None)
def test_a_flapping_address_costs_at_most_one_publication_per_interval(
    flaps: list[float], hold_down: float, min_interval: float
) -> None:
    """Drive the gate as the service does: on each address change and at each retry time."""
    now, since = 0.0, 0.0
    sent: list[float] = []
    changes = []
    for gap in flaps:
        now += gap
        changes.append(now)
    end = now + hold_down + min_interval + 1
    # Look at every change and every retry time the gate asks for (as the wake-ups do).
    times = sorted(set(changes))
    checked: set[float] = set()
    pending = list(times)
    while pending:
        t = pending.pop(0)
        if t in checked or t > end:
            continue
        checked.add(t)
        since = max([c for c in changes if c <= t], default=0.0)
        last = sent[-1] if sent else None
        r = publish_refusal(
            now=t,
            address_since=since,
            last_published_at=last,
            hold_down=hold_down,
            min_interval=min_interval,
        )
        if r is None:
            if last is None or sent[-1] != t:
                sent.append(t)
        elif r.retry_at is not None:
            pending.append(r.retry_at)
            pending.sort()
    for a, b in itertools.pairwise(sent):
        assert b >= a + min_interval
    for t in sent:
        since = max([c for c in changes if c <= t], default=0.0)
        assert t >= since + hold_down  # only a stable address is published
    # The last address is published in the end (it stays stable).
    assert sent
    assert sent[-1] >= changes[-1]


def test_fee_is_gas_times_adjustment_times_price_rounded_up_and_capped() -> None:
    assert fee_for(100_000, 1.5, 0.01) == (150_000, 1500)
    assert fee_for(0, 1.5, 0.0) == (1, 0)
    e = FeeTooHigh(1500, 1000, "uatom")
    assert "1500uatom" in str(e)
    assert "1000uatom" in str(e)
    assert "publish_max_fee" in str(e)
    assert not e.transient
    assert MAX_FEE == "max_fee"
