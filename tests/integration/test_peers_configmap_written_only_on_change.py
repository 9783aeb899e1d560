"""The peers ConfigMap control writes a real API server only when the content differs."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from discovery.configmap_control import NotOurs, Outcome, PeersConfigMapControl
from discovery.peers_configmap import PeersConfigMap, build_peers_configmap, peers_configmap_name
from lbmanager.kube import KubeRest
from tests.support.discovery_states import build_state
from tests.support.kube import ControlPlane

pytestmark = pytest.mark.kube

CHAIN = "consumer-a"


def desired(namespace: str, *, drop_peers: int = 0) -> PeersConfigMap:
    state = build_state(chains={"1": CHAIN})
    chain = state.chains[0]
    assert chain.peers is not None
    assert chain.ports is not None
    return build_peers_configmap(
        chain_id=chain.chain_id,
        consumer_id=chain.consumer_id,
        namespace=namespace,
        peers=chain.peers.peers[drop_peers:],
        left_out=chain.peers.left_out,
        ports=chain.ports.ports,
    )


async def test_create_then_nothing_then_update_then_delete(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    control = PeersConfigMapControl(KubeRest(control_plane.admin_client()))
    core = client.CoreV1Api(kube)
    name = peers_configmap_name(CHAIN)

    assert await control.apply(desired(namespace)) is Outcome.CREATED
    cm = core.read_namespaced_config_map(name, namespace)
    version = cm.metadata.resource_version
    assert cm.data["peer_count"] == "2"
    assert len(json.loads(cm.data["peers.json"])) == 2
    assert cm.data["persistent_peers"] == desired(namespace).data["persistent_peers"]

    for _ in range(3):
        assert await control.apply(desired(namespace)) is Outcome.UNCHANGED
    assert core.read_namespaced_config_map(name, namespace).metadata.resource_version == version
    assert sum(control.writes.values()) == 1

    fewer = desired(namespace, drop_peers=1)
    assert await control.apply(fewer) is Outcome.UPDATED
    cm = core.read_namespaced_config_map(name, namespace)
    assert cm.data["peer_count"] == "1"
    assert cm.metadata.annotations["ics-discovery.io/peers-hash"] == fewer.peers_hash

    [listed] = await control.list_managed(namespace)
    assert (listed.name, listed.chain_id) == (name, CHAIN)

    assert await control.delete(namespace, name) is Outcome.DELETED
    assert await control.delete(namespace, name) is Outcome.ABSENT
    assert await control.list_managed(namespace) == []
    assert dict(control.writes) == {"create": 1, "update": 1, "delete": 1}


async def test_hand_edits_are_reverted_and_foreign_labels_kept(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    control = PeersConfigMapControl(KubeRest(control_plane.admin_client()))
    core = client.CoreV1Api(kube)
    name = peers_configmap_name(CHAIN)
    await control.apply(desired(namespace))
    core.patch_namespaced_config_map(
        name,
        namespace,
        {"metadata": {"labels": {"team": "ops"}}, "data": {"persistent_peers": "evil@1.2.3.4:1"}},
    )
    assert await control.apply(desired(namespace)) is Outcome.UPDATED
    cm = core.read_namespaced_config_map(name, namespace)
    assert cm.data["persistent_peers"] == desired(namespace).data["persistent_peers"]
    assert cm.metadata.labels["team"] == "ops"
    assert await control.apply(desired(namespace)) is Outcome.UNCHANGED


async def test_a_configmap_we_do_not_manage_is_never_touched(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    control = PeersConfigMapControl(KubeRest(control_plane.admin_client()))
    core = client.CoreV1Api(kube)
    name = peers_configmap_name(CHAIN)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"mine": "yes"}),
    )
    with pytest.raises(NotOurs) as exc:
        await control.apply(desired(namespace))
    assert not exc.value.transient
    with pytest.raises(NotOurs):
        await control.delete(namespace, name)
    assert core.read_namespaced_config_map(name, namespace).data == {"mine": "yes"}
    assert sum(control.writes.values()) == 0
