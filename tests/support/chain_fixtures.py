"""pytest fixtures for the real Interchain Security provider chain (`tests/support/chain.py`).

Starting a chain costs seconds, so the chains are session-scoped and shared:
`provider_chain` has one validator, `provider_chain3` three (one node each).
Tests that change chain state use names of their own (consumer chain IDs,
description nonces) so they do not depend on each other. Teardown stops every
node and fails loudly if any process of the chain is left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .chain import ProviderChain, start_provider_chain
from .procs import TestBedError, pids_alive, processes_mentioning


def stop_and_verify(chain: ProviderChain) -> None:
    """Stop the chain; raise if one of its processes survived."""
    pids = chain.pids
    chain.stop()
    left = sorted(set(pids_alive(pids)) | set(processes_mentioning(str(chain.workdir))))
    if left:
        raise TestBedError(f"{chain.name}: processes left after stop: {left}")


@contextlib.contextmanager
def running_provider_chain(
    name: str, workdir: Path, size: int = 1, min_gas_price: str = "0"
) -> Iterator[ProviderChain]:
    """A started chain for the duration of the block; stopped (and verified gone) after it."""
    chain = start_provider_chain(name, workdir, size=size, min_gas_price=min_gas_price)
    try:
        yield chain
    finally:
        stop_and_verify(chain)


@pytest.fixture(scope="session")
def provider_chain(testbed_dir: Path) -> Iterator[ProviderChain]:
    """A one-validator provider chain (chain ID `provider`) shared by the session."""
    with running_provider_chain("provider1", testbed_dir / "provider1", size=1) as chain:
        yield chain


@pytest.fixture(scope="session")
def provider_chain3(testbed_dir: Path) -> Iterator[ProviderChain]:
    """A three-validator provider chain, one node per validator, shared by the session."""
    with running_provider_chain("provider3", testbed_dir / "provider3", size=3) as chain:
        yield chain
