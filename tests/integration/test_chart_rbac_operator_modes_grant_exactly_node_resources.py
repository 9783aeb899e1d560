"""The operator notify modes get exactly get, list, watch, patch on their node resources.

The chart is installed with `helm` into the test control plane with one chain
in cosmos-operator mode and one in cosmopilot mode; the operators' CRDs are in
the API server (cosmos-operator's released one, cosmopilot's transcription).
Then `discovery.operator_notify` and `discovery.operator_watch` run with a
real token of the chart's ServiceAccount: a resource not there yet (list), a
write (patch), a write that conflicts (get, patch again), and the watch of
each kind (list, watch). Every node-resource request is allowed and covered
by a rendered rule, every rendered node-resource rule was used, the grants sit
in the consumers namespace only, and a chart without those modes grants
nothing on these resources.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client

from discovery.operator_notify import OperatorNotifier, ResourceOutcome
from discovery.operator_watch import NodeResourceWatch
from discovery.operators import CHAIN_NODE, CHAIN_NODE_SET, COSMOS_FULL_NODE
from lbmanager.kube import KubeRest
from tests.support.helm import RecordingApiClient, covers, granted_permissions, template, values
from tests.support.helm_fixtures import ChartReleases
from tests.support.kube import ControlPlane
from tests.support.operators import (
    cosmos_full_node,
    get_resource,
    install_cosmopilot_crds,
    install_cosmos_operator_crd,
)
from tests.support.polling import eventually

pytestmark = [pytest.mark.kube, pytest.mark.helm]

OPERATOR = "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2"
BASE: dict[str, Any] = {
    "provider.operatorAddress": OPERATOR,
    "provider.rpcUrls": ["http://provider:26657"],
    "loadBalancer.keepOnUninstall": False,
}
SA = "ics-ics-validator"
NODE_GROUPS = {"cosmos.strange.love", "cosmopilot.voluzi.com"}
ENTRY = "ab" * 20 + "@203.0.113.9:30301"


def _node_set(chain_id: str) -> dict[str, Any]:
    return {
        "apiVersion": "cosmopilot.voluzi.com/v1",
        "kind": "ChainNodeSet",
        "metadata": {"name": "nodes"},
        "spec": {
            "app": {"image": "registry.invalid/app"},
            "genesis": {"chainID": chain_id},
            "nodes": [{"name": "full"}],
        },
    }


def test_operator_modes_grant_get_list_watch_patch_in_the_consumers_namespace(
    control_plane: ControlPlane,
    chart_releases: ChartReleases,
    kube: client.ApiClient,
    namespace: str,
) -> None:
    install_cosmos_operator_crd(kube)
    install_cosmopilot_crds(kube)
    consumers = chart_releases.new_namespace("consumers")
    chart_releases.install(
        values(
            **BASE,
            **{
                "consumers.namespace": consumers,
                "consumers.notifyModes": {"chain-a": "cosmos-operator", "chain-b": "cosmopilot"},
            },
        )
    )
    granted = granted_permissions(chart_releases.manifest(), namespace, SA)
    operator_grants = {g for g in granted if g[1] in NODE_GROUPS}
    assert operator_grants == {
        (consumers, "cosmos.strange.love", "cosmosfullnodes", verb, "")
        for verb in ("get", "list", "watch", "patch")
    } | {
        (consumers, "cosmopilot.voluzi.com", resource, verb, "")
        for resource in ("chainnodesets", "chainnodes")
        for verb in ("get", "list", "watch", "patch")
    }
    chart_releases.wait_for_rbac(namespace, SA, granted)

    rec = RecordingApiClient(control_plane.service_account_client(namespace, SA).configuration)
    notifier = OperatorNotifier(KubeRest(rec))
    custom = client.CustomObjectsApi(kube)

    async def exercise() -> None:
        for target in ("cosmos-operator", "cosmopilot"):
            missing = await notifier.notify(target, "chain-a", [ENTRY], [consumers])
            assert missing.missing, missing
        custom.create_namespaced_custom_object(
            "cosmos.strange.love",
            "v1",
            consumers,
            "cosmosfullnodes",
            cosmos_full_node("node-a", "chain-a"),
        )
        custom.create_namespaced_custom_object(
            "cosmopilot.voluzi.com", "v1", consumers, "chainnodesets", _node_set("chain-b")
        )
        node = _node_set("chain-b")
        node.update(kind="ChainNode", metadata={"name": "node-b"})
        del node["spec"]["nodes"]
        custom.create_namespaced_custom_object(
            "cosmopilot.voluzi.com", "v1", consumers, "chainnodes", node
        )
        a = await notifier.notify("cosmos-operator", "chain-a", [ENTRY], [consumers])
        b = await notifier.notify("cosmopilot", "chain-b", [ENTRY], [consumers])
        assert [r.outcome for r in (*a.results, *b.results)] == [ResourceOutcome.PATCHED] * 3
        # Someone writes between our read and our patch: re-read (get) and patch again.
        for kind, name in (
            (COSMOS_FULL_NODE, "node-a"),
            (CHAIN_NODE_SET, "nodes"),
            (CHAIN_NODE, "node-b"),
        ):
            stale = get_resource(kube, kind.group, kind.plural, consumers, name)
            custom.patch_namespaced_custom_object(
                kind.group,
                "v1",
                consumers,
                kind.plural,
                name,
                {"metadata": {"labels": {"touched": "yes"}}},
            )
            result = await asyncio.to_thread(
                notifier.write, kind, stale, ("cd" * 20 + "@203.0.113.8:1",)
            )
            assert result.outcome is ResourceOutcome.PATCHED, result

    async def watch() -> None:
        # The service watches each kind in each served namespace.
        woken = asyncio.Event()
        watches = [
            NodeResourceWatch(KubeRest(rec), kind.path(consumers), woken.set)
            for kind in (COSMOS_FULL_NODE, CHAIN_NODE_SET, CHAIN_NODE)
        ]
        for w in watches:
            w.start()
        try:
            await eventually(
                "a watch of every kind",
                lambda: sum("watch=true" in url for _, url, _s in rec.requests) >= len(watches),
                timeout=30,
                interval=0.05,
                in_thread=False,
            )
            async with asyncio.timeout(30):
                await woken.wait()
        finally:
            for w in watches:
                await w.stop()

    asyncio.run(exercise())
    asyncio.run(watch())
    assert not rec.refused(), rec.refused()
    used = {p for p in rec.permissions() if p[1] in NODE_GROUPS}
    assert sorted(u for u in used if not any(covers(g, u) for g in granted)) == []
    assert sorted(g for g in operator_grants if not any(covers(g, u) for u in used)) == []


def test_without_an_operator_mode_nothing_on_node_resources_is_granted() -> None:
    for mode in ("restart", "dial", "none"):
        extra: dict[str, Any] = {"consumers.namespace": "consumers", "consumers.notify": mode}
        if mode == "restart":
            extra["consumers.restartWorkloads"] = [{"kind": "StatefulSet", "name": "node"}]
        objects = template(values(**BASE, **extra))
        granted = granted_permissions(objects, "provider", SA)
        assert not {g for g in granted if g[1] in NODE_GROUPS}, mode
