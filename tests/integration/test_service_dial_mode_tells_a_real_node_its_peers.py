"""`dial` mode end to end: the service hands a real CometBFT node of the consumer chain its peers.

The consumer node is a real node (the provider daemon, started with the
consumer chain's chain ID and unsafe RPC) whose RPC answers on the consumer
pod's IP. With `notify_default=dial` the leader reads the node's `/status`
(right chain, caught up) and calls `dial_peers` with the chain's full
persistent peer list; the node then dials exactly those addresses, which its
own log shows. A peer list change (a validator's new address) is dialled again;
an unchanged list is not.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

import pytest

from discovery.metrics import sample_value
from tests.support.chain_fixtures import stop_and_verify
from tests.support.chainmonitor_support import TunedProviderChain
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]


def dialled_messages(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "consumer node dialed its peers"]


async def test_the_consumer_node_is_dialled_with_the_peer_list(
    clusters: list[Cluster], testbed_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob, charlie = clusters
    provider = alice.chain
    chain_id = f"dial-{secrets.token_hex(3)}-1"
    consumer = TunedProviderChain(
        name="consumer-node",
        workdir=testbed_dir / chain_id,
        size=1,
        chain_id=chain_id,
        config_overrides={"rpc": {"unsafe": True}},
    )
    await asyncio.to_thread(consumer.start)
    caplog.set_level(logging.INFO, logger="discovery.service")
    await publish_endpoints(clusters)
    consumer_id = await asyncio.to_thread(provider.launch_consumer, chain_id, [0, 1, 2])
    try:
        # The pod's IP is where its node answers (EndpointSlices refuse loopback
        # addresses, so this chain is not exposed: dialling does not depend on it).
        await asyncio.to_thread(alice.add_consumer_pod, chain_id, "127.0.0.1")
        async with running_service(
            alice, notify_default="dial", consumer_rpc_port=consumer.nodes[0].ports.rpc
        ) as a:
            view = await eventually(
                "alice's view of the chain", lambda: a.service.store.current.chain(chain_id)
            )
            port = view.ports.ports["p2p"]
            first = await eventually(
                "the consumer node dialled", lambda: dialled_messages(caplog), in_thread=False
            )
            assert getattr(first[0], "chain_id", None) == chain_id
            assert getattr(first[0], "peer_count", None) == 2
            log_path = consumer.nodes[0].log_path
            wanted = [f"{c.host}:{port}" for c in (bob, charlie)]

            def node_dials_them() -> bool:
                text = log_path.read_text(errors="replace")
                return all(w in text for w in wanted)

            await eventually(f"the consumer node dialling {wanted}", node_dials_them)

            # Bob moves: the changed list is dialled, the old one is not sent again.
            moved = "198.51.100.61"
            await publish_endpoints(clusters, {"bob": moved})
            await eventually(
                "the new list dialled",
                lambda: len(dialled_messages(caplog)) >= 2,
                in_thread=False,
            )

            def node_dials_the_new_address() -> bool:
                return f"{moved}:{port}" in log_path.read_text(errors="replace")

            await eventually("the consumer node dialling bob anew", node_dials_the_new_address)
            await asyncio.sleep(2)
            assert len(dialled_messages(caplog)) == 2
            # The alerts' counter says the same: two lists told, none failed.
            text = a.service.metrics.render()[0].decode()
            told = {"chain_id": chain_id, "mode": "dial"}
            name = "ics_discovery_consumer_notifications_total"
            assert sample_value(text, name, {**told, "outcome": "done"}) == 2
            assert sample_value(text, name, {**told, "outcome": "failed"}) is None
    finally:
        await asyncio.to_thread(provider.remove_consumer, 0, consumer_id)
        await asyncio.to_thread(stop_and_verify, consumer)
        await publish_endpoints(clusters)
