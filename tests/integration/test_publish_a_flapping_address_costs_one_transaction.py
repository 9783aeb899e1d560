"""A flapping LoadBalancer address costs one edit-validator transaction, not one per flap.

Against the real provider chain: alice publishes her own endpoint with a
hold-down. Her LoadBalancer's address (written as MetalLB would) changes every
second several times, then settles. The service refuses to publish while the
address is not stable (and says why, once), then publishes the address it
settled on in one transaction: her account's sequence grows by exactly one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

import pytest

from discovery.apply.effects import Wake
from discovery.metrics import sample_value
from tests.integration.test_service_publishes_our_endpoint_when_the_loadbalancer_changes import (
    endpoints_published_and_key_of,
    set_ingress,
)
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]

HOLD_DOWN = 8.0
FLAPS = ("198.51.100.141", "198.51.100.142", "198.51.100.143", "198.51.100.144")
SETTLED = "198.51.100.145"


def sequence(cluster: Cluster) -> int:
    doc = cluster.chain.rest_get(f"/cosmos/auth/v1beta1/accounts/{cluster.validator.account}")
    account = doc["account"]
    return int(account.get("sequence") or account.get("base_account", {}).get("sequence") or 0)


async def test_a_flapping_address_is_published_once_it_settles(
    clusters: list[Cluster], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = clusters[0]
    chain = alice.chain
    key_file = await endpoints_published_and_key_of(alice, clusters, tmp_path)
    caplog.set_level(logging.INFO, logger="discovery.service")
    chain_id = f"flapaddr-{secrets.token_hex(3)}-1"
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        async with running_service(
            alice,
            publish_endpoint=True,
            publish_key_file=key_file,
            publish_hold_down=HOLD_DOWN,
            publish_min_interval=600.0,
        ) as a:
            await eventually(
                "alice exposing the chain (its LoadBalancer Service exists)",
                lambda: (v := a.service.store.current.chain(chain_id)) and v.exposed,
                in_thread=False,
            )
            before = await asyncio.to_thread(sequence, alice)
            for ip in (*FLAPS, SETTLED):
                await asyncio.to_thread(set_ingress, alice, ip)
                await asyncio.sleep(1.0)

            def published() -> bool:
                details = chain.staking_validator(alice.validator.operator)["description"]
                return f"p2p={SETTLED}" in str(details.get("details", ""))

            def sent() -> float:
                text = a.service.metrics.render()[0].decode()
                counted = sample_value(
                    text, "ics_discovery_endpoint_publications_total", {"outcome": "sent"}
                )
                return counted or 0.0

            await eventually("the settled address on chain", published)
            # The chain may show the edit before the service's publisher has heard back
            # that its transaction is in a block (and counted it).
            await eventually("the service counting its publication", sent, in_thread=False)
            # Let a few more wake-ups and a resync pass: still one transaction.
            done = a.service.stats.full_reconciles
            a.service.wake(Wake.TIMER)
            await eventually(
                "a resync", lambda: a.service.stats.full_reconciles > done, in_thread=False
            )
            assert await asyncio.to_thread(sequence, alice) == before + 1
            assert sent() == 1
            text = a.service.metrics.render()[0].decode()
            refused = sample_value(
                text,
                "ics_discovery_endpoint_publication_refusals_total",
                {"reason": "address_hold_down"},
            )
            assert refused is not None
            assert refused >= 1
            lines = [
                r for r in caplog.records if r.getMessage() == "our endpoint not published yet"
            ]
            assert lines
            assert all(getattr(r, "reason", "") == "address_hold_down" for r in lines)
            assert len(lines) == refused  # one line per refusal decision change
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
        await publish_endpoints(clusters)
