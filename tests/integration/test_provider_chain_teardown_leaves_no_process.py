"""Stopping a provider chain, as the fixtures do, leaves none of its processes behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chain_fixtures import running_provider_chain
from tests.support.procs import pids_alive, processes_mentioning

pytestmark = pytest.mark.chain


def test_fixture_teardown_reaps_every_node_even_when_the_test_fails(tmp_path: Path) -> None:
    workdir = tmp_path / "chain"
    pids: list[int] = []

    def failing_test_body() -> None:
        with running_provider_chain("teardown", workdir, size=3) as chain:
            pids.extend(chain.pids)
            assert len(pids) == 3
            assert pids_alive(pids) == pids
            assert sorted(processes_mentioning(str(workdir))) == sorted(pids)
            raise RuntimeError("test body failed")

    with pytest.raises(RuntimeError, match="test body failed"):
        failing_test_body()
    assert len(pids) == 3
    assert pids_alive(pids) == []
    assert processes_mentioning(str(workdir)) == []
    # Homes and logs stay for the failure report.
    assert (workdir / "logs" / "val0.log").stat().st_size > 0
    assert (workdir / "val2" / "config" / "genesis.json").exists()
