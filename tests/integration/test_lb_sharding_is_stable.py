"""With max_ports_per_service, chains spill into p2p-loadbalancer-1, -2, ... and never move."""

from __future__ import annotations

import pytest
from kubernetes import client

from lbmanager import DesiredState, LbSettings
from lbmanager.naming import MANAGED_BY_LABEL, MANAGED_BY_VALUE, SERVICE_NAME_LABEL
from lbmanager.reconciler import LoadBalancerReconciler
from tests.support.lb import chain, counting_client, list_slices

pytestmark = pytest.mark.kube


def _placement(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """chain key -> Service name, read back from the cluster (slices name their Service)."""
    return {
        s.metadata.annotations["lbmanager.ics-discovery.io/key"]: s.metadata.labels[
            SERVICE_NAME_LABEL
        ]
        for s in list_slices(api, namespace, f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
    }


def _port_counts(api: client.ApiClient, namespace: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for svc in client.CoreV1Api(api).list_namespaced_service(namespace).items:
        out[str(svc.metadata.name)] = len([p for p in svc.spec.ports if p.name != "placeholder"])
    return out


def test_chains_spill_deterministically_and_stay_put(
    kube: client.ApiClient, namespace: str
) -> None:
    settings = LbSettings(namespace=namespace, max_ports_per_service=3)
    api = counting_client(kube)
    rec = LoadBalancerReconciler(api, settings)
    chains = {f"c{i}": chain(f"c{i}", 30000 + i) for i in range(7)}
    chains["wide"] = chain("wide", 30100, extra=[("rpc", 30101, 26657)])  # two ports
    report = rec.reconcile(DesiredState.of(chains.values()))
    assert report.ok
    first = _placement(kube, namespace)
    # Key order c0..c6 then wide: 3 + 3 + (1 + 2).
    assert first == {
        "c0": "p2p-loadbalancer",
        "c1": "p2p-loadbalancer",
        "c2": "p2p-loadbalancer",
        "c3": "p2p-loadbalancer-1",
        "c4": "p2p-loadbalancer-1",
        "c5": "p2p-loadbalancer-1",
        "c6": "p2p-loadbalancer-2",
        "wide": "p2p-loadbalancer-2",
    }
    assert {o.key: o.service for o in report.chains} == first
    assert _port_counts(kube, namespace) == {
        "p2p-loadbalancer": 3,
        "p2p-loadbalancer-1": 3,
        "p2p-loadbalancer-2": 3,
    }
    # Every slice is owned by the Service it routes for.
    uids = {
        s.metadata.name: s.metadata.uid
        for s in client.CoreV1Api(kube).list_namespaced_service(namespace).items
    }
    for s in list_slices(kube, namespace, f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"):
        assert s.metadata.owner_references[0].uid == uids[s.metadata.labels[SERVICE_NAME_LABEL]]

    # Remove c1 from shard 0 and add two chains: "a-new" (sorts first) takes the hole
    # in shard 0, "z-new" goes to shard 2... which is full, so to a new shard 3.
    del chains["c1"]
    chains["a-new"] = chain("a-new", 30200)
    chains["z-new"] = chain("z-new", 30201)
    api.reset()
    report = rec.reconcile(DesiredState.of(chains.values()))
    assert report.ok
    second = _placement(kube, namespace)
    for key in first.keys() & second.keys():
        assert second[key] == first[key], f"{key} moved"
    assert second["a-new"] == "p2p-loadbalancer"
    assert second["z-new"] == "p2p-loadbalancer-3"

    # A fresh reconciler (restart) reads placement from the cluster: same answer, no writes.
    fresh = LoadBalancerReconciler(api, settings)
    api.reset()
    assert fresh.reconcile(DesiredState.of(chains.values())).writes == 0
    assert api.writes == []
    assert _placement(kube, namespace) == second

    # Removing every chain of a shard keeps its Service (and address) with a placeholder.
    for key in [k for k, svc in second.items() if svc == "p2p-loadbalancer-3"]:
        del chains[key]
    rec.reconcile(DesiredState.of(chains.values()))
    svc3 = client.CoreV1Api(kube).read_namespaced_service("p2p-loadbalancer-3", namespace)
    assert [p.name for p in svc3.spec.ports] == ["placeholder"]
