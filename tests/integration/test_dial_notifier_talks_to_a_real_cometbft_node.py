"""`dial` mode against real CometBFT nodes (the provider daemon's): status, refusal, success.

A node without `[rpc] unsafe = true` has no `dial_peers`: the notifier must
say so plainly (a permanent error, not a retry loop). A node serving another
chain is never dialled. A node with unsafe RPC accepts the full list with
`persistent=true`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.notify import DialOutcome, NotifyError, PeerDialer
from tests.support.chain import ProviderChain
from tests.support.chain_fixtures import stop_and_verify
from tests.support.chainmonitor_support import start_tuned_chain

pytestmark = pytest.mark.chain

PEERS = [f"{'ab' * 20}@203.0.113.5:30150", f"{'cd' * 20}@[2001:db8::7]:30150"]


async def test_safe_node_refuses_and_other_chains_are_skipped(
    provider_chain: ProviderChain,
) -> None:
    dialer = PeerDialer(provider_chain.nodes[0].ports.rpc, timeout=10)
    skipped = await dialer.dial("127.0.0.1", "some-consumer-1", PEERS)
    assert skipped.outcome is DialOutcome.SKIPPED
    assert provider_chain.chain_id in skipped.detail

    with pytest.raises(NotifyError) as refused:
        await dialer.dial("127.0.0.1", provider_chain.chain_id, PEERS)
    assert not refused.value.transient
    assert "unsafe" in refused.value.problem

    nobody = PeerDialer(1, timeout=2)  # nothing listens on port 1
    with pytest.raises(NotifyError) as unreachable:
        await nobody.dial("127.0.0.1", provider_chain.chain_id, PEERS)
    assert unreachable.value.transient


async def test_unsafe_node_takes_the_list(testbed_dir: Path) -> None:
    chain = start_tuned_chain(
        "unsafe-rpc", testbed_dir / "unsafe-rpc", 1, {"rpc": {"unsafe": True}}
    )
    try:
        dialer = PeerDialer(chain.nodes[0].ports.rpc, timeout=10)
        result = await dialer.dial("127.0.0.1", chain.chain_id, PEERS)
        assert result.outcome is DialOutcome.DIALED
        assert result.detail == "2 peers"
        # An empty list is never sent (it would be refused, and could not remove peers anyway).
        empty = await dialer.dial("127.0.0.1", chain.chain_id, [])
        assert empty.outcome is DialOutcome.SKIPPED
    finally:
        stop_and_verify(chain)
