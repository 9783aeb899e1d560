"""Our own endpoint: when the LoadBalancer gets an address the chain does not show, we publish it.

With `publish_endpoint` on, the service watches its LoadBalancer Service's
`status.loadBalancer.ingress` (written here as MetalLB would) and, when the
address differs from what the chain shows for our validator, signs and
broadcasts `MsgEditValidator` with the real provider chain. The operator's text
and node ID stay; the other clusters' peers follow the new address.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from functools import partial
from pathlib import Path

import pytest
from kubernetes import client

from chainmonitor.addresses import bech32_decode, bech32_encode
from discovery.metrics import sample_value
from discovery.nodekey import derive_node_key
from tests.support.chain import export_key_hex, write_key_file
from tests.support.polling import eventually
from tests.support.procs import free_ports
from tests.support.service_fixtures import SERVICE_NAME, Cluster, publish_endpoints, running_service

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
    key_file = await endpoints_published_and_key_of(alice, clusters, tmp_path)
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        async with (
            running_service(alice, publish_endpoint=True, publish_key_file=key_file) as a,
            running_service(bob),
        ):
            view = await eventually(
                "alice exposing the chain (its LoadBalancer Service exists)",
                lambda: (v := a.service.store.current.chain(chain_id)) and v.exposed and v,
                in_thread=False,
            )
            port = view.ports.ports["p2p"]
            new_ip = "198.51.100.123"
            await asyncio.to_thread(set_ingress, alice, new_ip)

            def published() -> bool:
                details = chain.staking_validator(alice.validator.operator)["description"]
                return f"p2p={new_ip}" in str(details.get("details", ""))

            await eventually("alice's new address on chain", published)
            details = chain.staking_validator(alice.validator.operator)["description"]["details"]
            assert details == f"Validator alice node={alice.node_id} p2p={new_ip}"
            metrics = a.service.metrics

            def counted() -> bool:
                # One publication sent, and the chain now shows the LoadBalancer's address.
                text = metrics.render()[0].decode()
                name = "ics_discovery_endpoint_publications_total"
                return (
                    sample_value(text, name, {"outcome": "sent"}) == 1
                    and sample_value(text, "ics_discovery_own_endpoint_matches") == 1
                )

            await eventually("the publication in the metrics", counted, in_thread=False)
            await eventually(
                "bob following alice's new address",
                partial(
                    bob.has_peers,
                    chain_id,
                    ",".join(sorted([alice.entry(port, new_ip), clusters[2].entry(port)])),
                ),
            )
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)


async def endpoints_published_and_key_of(
    cluster: Cluster, clusters: list[Cluster], folder: Path
) -> Path:
    """Every validator's usual endpoint on chain; `cluster`'s operator key in a 0600 file."""
    await publish_endpoints(clusters)
    key_hex = await asyncio.to_thread(export_key_hex, cluster.chain, cluster.validator)
    return write_key_file(folder, f"{cluster.name}.key", key_hex)


async def test_node_id_from_the_secret_is_published_through_a_live_endpoint_with_fees(
    clusters: list[Cluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The derived node ID goes on chain; a dead first gRPC endpoint is skipped; the fee is paid."""
    alice = clusters[0]
    chain = alice.chain
    key_file = await endpoints_published_and_key_of(alice, clusters, tmp_path)
    secret = secrets.token_hex(32)
    monkeypatch.setenv("ALICE_NODE_SECRET", secret)
    derived = derive_node_key(secret.encode()).node_id
    assert derived != alice.node_id
    (dead_port,) = free_ports(1)
    before = await asyncio.to_thread(chain.stake_balance, alice.validator.account)
    new_ip = "198.51.100.124"
    try:
        async with running_service(
            alice,
            publish_endpoint=True,
            publish_key_file=key_file,
            node_key_secret_env="ALICE_NODE_SECRET",
            provider_grpc_urls=[f"127.0.0.1:{dead_port}", alice.node.grpc_address],
            publish_gas_price=0.01,
        ):
            await asyncio.to_thread(set_ingress, alice, new_ip)

            def published() -> str:
                details = chain.staking_validator(alice.validator.operator)["description"]
                text = str(details.get("details", ""))
                return text if f"p2p={new_ip}" in text else ""

            details = await eventually("alice's address and derived node ID on chain", published)
            assert details == f"Validator alice node={derived} p2p={new_ip}"
        paid = before - await asyncio.to_thread(chain.stake_balance, alice.validator.account)
        # Gas of one MsgEditValidator is tens of thousands of units: at 0.01 a unit, a
        # fee of some hundreds of stake, and nothing else moved alice's balance.
        assert 100 <= paid <= 10_000, paid
    finally:
        await publish_endpoints(clusters)


async def test_a_granter_setting_that_contradicts_the_key_sends_nothing(
    clusters: list[Cluster], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = clusters[0]
    chain = alice.chain
    key_file = await endpoints_published_and_key_of(alice, clusters, tmp_path)
    granter = bech32_encode("cosmos", bech32_decode(alice.validator.operator)[1])
    before = chain.staking_validator(alice.validator.operator)["description"]["details"]
    caplog.set_level(logging.WARNING, logger="discovery.service")
    async with running_service(
        alice, publish_endpoint=True, publish_key_file=key_file, publish_authz_granter=granter
    ) as a:
        await asyncio.to_thread(set_ingress, alice, "198.51.100.125")

        def refused() -> str:
            for r in caplog.records:
                if r.getMessage() == "publishing our endpoint failed":
                    return str(getattr(r, "error", ""))
            return ""

        error = await eventually("the refusal logged", refused, in_thread=False)
        assert "publish_authz_granter" in error
        assert "operator's own key" in error
        assert a.service.settings.publish_authz_granter == granter
    assert chain.staking_validator(alice.validator.operator)["description"]["details"] == before
