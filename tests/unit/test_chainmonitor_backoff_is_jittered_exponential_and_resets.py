"""Reconnect delays grow exponentially up to a cap, are jittered, and start over after a reset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainmonitor.backoff import JitteredBackoff


def test_grows_to_the_cap_without_jitter() -> None:
    b = JitteredBackoff(initial=0.5, maximum=4.0, factor=2.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5


def test_jitter_draws_from_the_upper_part_of_the_window() -> None:
    draws = iter([0.0, 1.0, 0.5])
    b = JitteredBackoff(initial=1.0, maximum=100.0, factor=2.0, jitter=0.5, rng=lambda: next(draws))
    assert b.next_delay() == 1.0
    assert b.next_delay() == 1.0  # window 2, full jitter half: 2 * (1 - 0.5)
    assert b.next_delay() == 3.0  # window 4 * 0.75


@given(
    st.floats(0.01, 5),
    st.floats(1, 120),
    st.floats(1, 4),
    st.floats(0, 1),
    st.lists(st.floats(0, 1), min_size=1, max_size=80),
)
def test_delays_stay_within_bounds(
    initial: float, maximum: float, factor: float, jitter: float, draws: list[float]
) -> None:
    maximum = max(maximum, initial)
    it = iter(draws)
    b = JitteredBackoff(initial, maximum, factor, jitter, rng=lambda: next(it))
    for n in range(len(draws)):
        delay = b.next_delay()
        window = min(maximum, initial * factor**n)
        assert (1 - jitter) * window - 1e-9 <= delay <= window + 1e-9


def test_long_outages_do_not_overflow() -> None:
    b = JitteredBackoff(initial=1.0, maximum=30.0, jitter=0.0)
    for _ in range(5000):
        d = b.next_delay()
    assert d == 30.0


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 5, "maximum": 1}, {"factor": 0.5}, {"jitter": 2}]
)
def test_invalid_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need 0 < initial"):
        JitteredBackoff(**kwargs)  # type: ignore[arg-type]
