"""A validator's edit of its details on the real chain is in the snapshot within one block.

The monitor is the one a validator's cluster runs: connected to its own node
(node 0); another validator (the last one) edits. The edit must arrive through
the event path (a refresh of that validator), not a resync, and the chain may
be at most one block past the edit's block when the snapshot shows it.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from tests.support.chain import ProviderChain
from tests.support.chainmonitor_support import details_of, running_monitor, snapshot_where

pytestmark = pytest.mark.chain


@pytest.mark.parametrize("chain_fixture", ["provider_chain", "provider_chain3"])
async def test_edit_shows_in_snapshot_within_one_block(
    chain_fixture: str, request: pytest.FixtureRequest
) -> None:
    chain: ProviderChain = request.getfixturevalue(chain_fixture)
    editor = chain.validators[-1]
    others = [v for v in chain.validators if v is not editor]
    details = f"Validator {editor.moniker} {secrets.token_hex(4)} - p2p=192.168.97.120"

    async with running_monitor(chain, node=0) as monitor:
        before = monitor.snapshot
        assert before is not None
        assert len(before.validators) == len(chain.validators)
        resyncs = monitor.counters.resyncs_done

        async def seen() -> tuple[int, int]:
            snap = await snapshot_where(monitor, lambda s: details_of(s, editor) == details)
            # The chain's height at the moment the snapshot changed.
            return snap.height, await asyncio.to_thread(chain.height)

        watcher = asyncio.create_task(seen())
        tx = await asyncio.to_thread(chain.edit_validator, editor, details=details)
        snapshot_height, chain_height = await watcher

        assert snapshot_height >= tx.height
        assert chain_height <= tx.height + 1, (
            f"edit committed at {tx.height}, seen when the chain was at {chain_height}"
        )
        after = monitor.snapshot
        assert after is not None
        for other in others:
            assert after.validator(other.operator) == before.validator(other.operator)
        counters = monitor.counters
        assert counters.resyncs_done == resyncs, "the edit must come through the event path"
        assert counters.stream.last_event_height >= tx.height
        assert counters.stream.frames_rejected == 0
