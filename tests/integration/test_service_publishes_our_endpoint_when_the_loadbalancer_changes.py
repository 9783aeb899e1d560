"""Our own endpoint: when the LoadBalancer gets an address the chain does not show, we publish it.

With `publish_endpoint` on, the service watches its LoadBalancer Service's
`status.loadBalancer.ingress` (written here as MetalLB would) and, when the
address differs from what the chain shows for our validator, signs and
broadcasts `MsgEditValidator` with the real provider chain. The operator's text
and node ID stay; the other clusters' peers follow the new address.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import partial
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration.chainmonitor_support import export_key_hex, write_key_file
from tests.support.service_fixtures import (
    SERVICE_NAME,
    Cluster,
    eventually,
    publish_endpoints,
    running_service,
)

pytestmark = [pytest.mark.kube, pytest.mark.chain]


def set_ingress(cluster: Cluster, ip: str) -> None:
    client.CoreV1Api(cluster.plane.admin_client()).patch_namespaced_service_status(
        SERVICE_NAME,
        cluster.namespace,
        {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}},
        _content_type="application/merge-patch+json",
    )


async def test_a_new_loadbalancer_address_is_published_and_followed(
    clusters: list[Cluster], tmp_path: Path
) -> None:
    alice, bob, _ = clusters
    chain = alice.chain
    chain_id = f"own-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    key_file = write_key_file(
        tmp_path, "alice.key", await asyncio.to_thread(export_key_hex, chain, alice.validator)
    )
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        async with (
            running_service(alice, publish_endpoint=True, publish_key_file=key_file) as a,
            running_service(bob),
        ):
            view = await eventually(
                lambda: (v := a.service.store.current.chain(chain_id)) and v.exposed and v,
                "alice exposing the chain (its LoadBalancer Service exists)",
                in_thread=False,
            )
            port = view.ports.ports["p2p"]
            new_ip = "198.51.100.123"
            await asyncio.to_thread(set_ingress, alice, new_ip)

            def published() -> bool:
                details = chain.staking_validator(alice.validator.operator)["description"]
                return f"p2p={new_ip}" in str(details.get("details", ""))

            await eventually(published, "alice's new address on chain")
            details = chain.staking_validator(alice.validator.operator)["description"]["details"]
            assert details == f"Validator alice p2p={new_ip} node={alice.node_id}"
            await eventually(
                partial(
                    bob.has_peers,
                    chain_id,
                    ",".join(sorted([alice.entry(port, new_ip), clusters[2].entry(port)])),
                ),
                "bob following alice's new address",
            )
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
