"""cosmopilot mode: the chain's peers land in every group of its ChainNodeSet.

The ChainNodeSet and ChainNode CRDs are a transcription of cosmopilot v3.0.0's
schema for the fields we touch (tests/support/crds/README.md says why), in the
real API server. The set is found by `status.chainID`, as cosmopilot reports
it; each group gets our peers as `{id, address, port}` after its own, and the
ChainNodes the set owns are left to the set. Before the set exists nothing is
written and the service says so.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from kubernetes import client

from discovery.metrics import sample_value
from discovery.operators import OWNED_PEERS_ANNOTATION
from tests.support.operators import get_resource, install_cosmopilot_crds
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]

GROUP = "cosmopilot.voluzi.com"
SENTRY = {"id": "ee" * 20, "address": "sentry.validator.example", "port": 26656, "private": True}


def record(entry: str) -> dict[str, Any]:
    node_id, _, rest = entry.partition("@")
    host, _, port = rest.rpartition(":")
    return {"id": node_id, "address": host, "port": int(port)}


def node_set(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ChainNodeSet",
        "metadata": {"name": name},
        "spec": {
            "app": {"image": "registry.invalid/consumerd", "version": "v1.0.0"},
            "genesis": {"url": "https://genesis.invalid/genesis.json"},
            "nodes": [
                {"name": "fullnodes", "instances": 2, "peers": [SENTRY]},
                {"name": "archive", "config": {"override": {"app.toml": {"pruning": "nothing"}}}},
            ],
        },
    }


def child(name: str, owner: Any, chain_id: str) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ChainNode",
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/v1",
                    "kind": "ChainNodeSet",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"app": {"image": "registry.invalid/consumerd"}, "genesis": {"chainID": chain_id}},
    }


async def test_peers_land_in_every_group_of_the_chain_node_set(clusters: list[Cluster]) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    admin = alice.plane.admin_client()
    api = client.CustomObjectsApi(admin)
    install_cosmopilot_crds(admin)
    chain_id = f"cosmopilot-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    ns = alice.namespace

    def the_set() -> dict[str, Any]:
        return get_resource(admin, GROUP, "chainnodesets", ns, "consumer-nodes")

    try:
        async with running_service(
            alice, notify_modes={chain_id: "cosmopilot"}, resync_interval=3600.0
        ) as a:
            view = await eventually(
                "the missing resource reported",
                lambda: (
                    (v := a.service.store.current.chain(chain_id))
                    and "no ChainNodeSet/ChainNode" in v.problem
                    and v
                ),
                in_thread=False,
            )
            text = a.service.metrics.render()[0].decode()
            labels = {"chain_id": chain_id, "mode": "cosmopilot", "outcome": "missing"}
            assert sample_value(text, "ics_discovery_consumer_notifications_total", labels) == 1

            # The validator's set; cosmopilot reports the chain ID once it read the genesis.
            created = await asyncio.to_thread(
                api.create_namespaced_custom_object,
                GROUP,
                "v1",
                ns,
                "chainnodesets",
                node_set("consumer-nodes"),
            )
            await asyncio.to_thread(
                api.patch_namespaced_custom_object_status,
                GROUP,
                "v1",
                ns,
                "chainnodesets",
                "consumer-nodes",
                {"status": {"chainID": chain_id}},
            )
            await asyncio.to_thread(
                api.create_namespaced_custom_object,
                GROUP,
                "v1",
                ns,
                "chainnodes",
                child("consumer-nodes-fullnodes-0", created, chain_id),
            )
            port = view.ports.ports["p2p"]
            ours = [record(e) for e in sorted([bob.entry(port), charlie.entry(port)])]

            def groups_carry(ours: list[dict[str, Any]]) -> bool:
                nodes = the_set()["spec"]["nodes"]
                return [g.get("peers") for g in nodes] == [[SENTRY, *ours], ours]

            await eventually("our peers in every group", lambda: groups_carry(ours))
            found = the_set()
            assert found["metadata"]["annotations"][OWNED_PEERS_ANNOTATION] == ",".join(
                sorted([bob.node_id, charlie.node_id])
            )
            # The rest of each group and of the set is as the validator wrote it.
            assert found["spec"]["nodes"][0]["instances"] == 2
            assert found["spec"]["nodes"][1]["config"] == {
                "override": {"app.toml": {"pruning": "nothing"}}
            }
            assert found["spec"]["genesis"] == {"url": "https://genesis.invalid/genesis.json"}
            # The ChainNode the set owns is the set's to write.
            owned = get_resource(admin, GROUP, "chainnodes", ns, "consumer-nodes-fullnodes-0")
            assert "peers" not in owned["spec"]
            assert OWNED_PEERS_ANNOTATION not in (owned["metadata"].get("annotations") or {})

            moved = "198.51.100.72"
            await publish_endpoints(clusters, {"bob": moved})
            moved_ours = [record(e) for e in sorted([bob.entry(port, moved), charlie.entry(port)])]
            await eventually("bob's new address in every group", lambda: groups_carry(moved_ours))
            text = a.service.metrics.render()[0].decode()
            labels["outcome"] = "done"
            assert sample_value(text, "ics_discovery_consumer_notifications_total", labels) == 2
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
        await publish_endpoints(clusters)
