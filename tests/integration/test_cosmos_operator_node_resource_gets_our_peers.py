"""cosmos-operator mode: the chain's peers land in its CosmosFullNode, beside the validator's own.

The real CosmosFullNode CRD (cosmos-operator v0.25.1, from its Go module) is
installed in the real API server, so its schema judges what is written. The
service finds the resource by `spec.chain.chainID`, writes the peers into
`spec.chain.config.peers` after the hand-added sentry, keeps every other
field, puts them back when they are removed by hand (its watch sees the edit),
and follows a peers change; before the resource exists it writes
nothing and says so in its state and its notifications counter. A write that
races another writer conflicts and is redone on a fresh read.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
from typing import Any

import pytest
from kubernetes import client

from discovery.apply.effects import Wake
from discovery.metrics import sample_value
from discovery.operator_notify import OperatorNotifier, ResourceOutcome
from discovery.operators import COSMOS_FULL_NODE, OWNED_PEERS_ANNOTATION
from lbmanager.kube import KubeRest
from tests.support.kube import ControlPlane
from tests.support.operators import cosmos_full_node, get_resource, install_cosmos_operator_crd
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube]

SENTRY = "ee" * 20 + "@sentry.validator.example:26656"
GROUP, VERSION, PLURAL = "cosmos.strange.love", "v1", "cosmosfullnodes"


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def read(cluster: Cluster, name: str) -> dict[str, Any]:
    return get_resource(cluster.plane.admin_client(), GROUP, PLURAL, cluster.namespace, name)


@pytest.mark.chain
async def test_peers_land_in_the_cosmos_full_node_and_follow_changes(
    clusters: list[Cluster],
) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    install_cosmos_operator_crd(alice.plane.admin_client())
    chain_id = f"cosmosop-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        async with running_service(
            alice, notify_modes={chain_id: "cosmos-operator"}, resync_interval=3600.0
        ) as a:
            # No CosmosFullNode yet: nothing written, the state and the counter say why.
            view = await eventually(
                "the missing resource reported",
                lambda: (
                    (v := a.service.store.current.chain(chain_id))
                    and "no CosmosFullNode" in v.problem
                    and v
                ),
                in_thread=False,
            )
            assert "peers not written" in view.problem
            assert view.notify == "cosmos-operator"
            assert view.node_resources == ""
            assert not view.node_peers_current
            text = a.service.metrics.render()[0].decode()
            labels = {"chain_id": chain_id, "mode": "cosmos-operator"}
            name = "ics_discovery_consumer_notifications_total"
            assert sample_value(text, name, {**labels, "outcome": "missing"}) == 1
            assert not [w for w in a.writes() if PLURAL in w[1]]

            # The validator creates its node, with a sentry of its own.
            created = cosmos_full_node("consumer-node", chain_id, peers=SENTRY)
            await asyncio.to_thread(
                custom(alice.plane.admin_client()).create_namespaced_custom_object,
                GROUP,
                VERSION,
                alice.namespace,
                PLURAL,
                created,
            )
            port = view.ports.ports["p2p"]
            ours = sorted([bob.entry(port), charlie.entry(port)])
            want = ",".join([SENTRY, *ours])
            node = await eventually(
                "our peers after the sentry",
                lambda: (
                    (o := read(alice, "consumer-node"))["spec"]["chain"]["config"].get("peers")
                    == want
                    and o
                ),
            )
            assert node["metadata"]["annotations"][OWNED_PEERS_ANNOTATION] == ",".join(
                sorted([bob.node_id, charlie.node_id])
            )
            # Every other field is as the validator wrote it.
            expected = copy.deepcopy(created["spec"])
            expected["chain"]["config"]["peers"] = want
            assert {k: node["spec"][k] for k in expected} == expected
            assert node["metadata"]["labels"] == {"team": "validators"}
            await eventually(
                "the problem cleared",
                lambda: (
                    (v := a.service.store.current.chain(chain_id)) is not None and v.problem == ""
                ),
                in_thread=False,
            )
            # Status and the API: the target, the resource, and that it carries the peers.
            shown = a.service.store.current.chain(chain_id)
            assert shown is not None
            assert shown.node_resources == f"CosmosFullNode {alice.namespace}/consumer-node"
            assert shown.node_peers_current

            # Someone drops our entries by hand: the watch sees the edit (the next
            # resync is an hour away) and they come back, the sentry untouched.
            await asyncio.to_thread(
                custom(alice.plane.admin_client()).patch_namespaced_custom_object,
                GROUP,
                VERSION,
                alice.namespace,
                PLURAL,
                "consumer-node",
                {"spec": {"chain": {"config": {"peers": SENTRY}}}},
            )
            await eventually(
                "our peers written back after the hand edit",
                lambda: (
                    read(alice, "consumer-node")["spec"]["chain"]["config"].get("peers") == want
                ),
                timeout=30,
            )

            # Bob moves: his entry is replaced, the sentry stays first.
            moved = "198.51.100.71"
            await publish_endpoints(clusters, {"bob": moved})
            moved_want = ",".join([SENTRY, *sorted([bob.entry(port, moved), charlie.entry(port)])])
            await eventually(
                "bob's new address in the CosmosFullNode",
                lambda: (
                    read(alice, "consumer-node")["spec"]["chain"]["config"].get("peers")
                    == moved_want
                ),
            )
            patches = [w for w in a.writes() if PLURAL in w[1]]
            assert [w[0] for w in patches] == ["PATCH", "PATCH", "PATCH"]
            text = a.service.metrics.render()[0].decode()
            assert sample_value(text, name, {**labels, "outcome": "done"}) == 3
            assert sample_value(text, name, {**labels, "outcome": "failed"}) is None

            # A full resync of an unchanged world writes nothing.
            a.service.wake(Wake.TIMER)
            await eventually(
                "a full resync", lambda: a.service.stats.full_reconciles >= 2, in_thread=False
            )
            await asyncio.sleep(1)
            assert len([w for w in a.writes() if PLURAL in w[1]]) == 3
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
        await publish_endpoints(clusters)


def test_a_conflicting_write_is_redone_on_a_fresh_read(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    install_cosmos_operator_crd(kube)
    api = custom(kube)
    api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, cosmos_full_node("node", "consumer-1")
    )
    stale = get_resource(kube, GROUP, PLURAL, namespace, "node")
    # Someone else writes after our read: our patch names the old resourceVersion.
    api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "node", {"spec": {"replicas": 2}}
    )
    notifier = OperatorNotifier(KubeRest(control_plane.admin_client()))
    entry = "ab" * 20 + "@203.0.113.5:30100"
    result = notifier.write(COSMOS_FULL_NODE, stale, (entry,))
    assert result.outcome is ResourceOutcome.PATCHED
    after = get_resource(kube, GROUP, PLURAL, namespace, "node")
    assert after["spec"]["replicas"] == 2
    assert after["spec"]["chain"]["config"]["peers"] == entry

    # No peers left: the field goes (the CRD refuses an empty string), the resource stays valid.
    result = notifier.write(COSMOS_FULL_NODE, after, ())
    assert result.outcome is ResourceOutcome.PATCHED
    emptied = get_resource(kube, GROUP, PLURAL, namespace, "node")
    assert "peers" not in emptied["spec"]["chain"]["config"]
    assert OWNED_PEERS_ANNOTATION not in (emptied["metadata"].get("annotations") or {})
