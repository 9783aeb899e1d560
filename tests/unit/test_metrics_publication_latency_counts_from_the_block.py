"""The publication latency metric counts from the block's time, unless clocks make that a lie."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.service import publication_latency

NOW = 1_800_000_000.0


def test_from_the_block_time_when_known() -> None:
    # Block committed 0.45 s ago, snapshot received 0.2 s ago: 0.45 s.
    assert publication_latency(NOW, NOW - 0.45, 0.2) == pytest.approx(0.45, abs=1e-6)


def test_from_the_snapshot_without_a_block_time() -> None:
    assert publication_latency(NOW, None, 0.2) == 0.2


def test_clocks_that_disagree_fall_back_to_what_we_measured() -> None:
    # The block seems to come from our future (its proposer's clock runs ahead).
    assert publication_latency(NOW, NOW + 5, 0.2) == 0.2
    # ... or from long before anything our own wait explains.
    assert publication_latency(NOW, NOW - 3600, 0.2) == 0.2


@given(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
    st.floats(min_value=0, max_value=1e3, allow_nan=False),
)
def test_never_below_our_own_measurement_nor_absurdly_above(offset: float, waited: float) -> None:
    latency = publication_latency(NOW, NOW - offset, waited)
    assert waited <= latency <= waited + 60.0
