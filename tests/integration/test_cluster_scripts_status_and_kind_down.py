"""`make status` shows each cluster's LoadBalancer address, ports, peers; `make kind-down` cleans.

Status reads what ics-discovery writes (the Service, with ports named by
lbmanager, and the peers ConfigMaps built by `discovery.peers_configmap`), so the
objects seeded here come from the real builders. kind-down deletes only what
exists, removes the local state and the `kind` network unless other
containers still use it, and can run again without error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from discovery.peers_configmap import build_peers_configmap
from discovery.state import PeerRecord
from lbmanager.naming import service_port_name
from tests.support.standins.harness import CLUSTERS, ScriptBed, make_testbed

pytestmark = pytest.mark.helm

CHAIN = "consumer-0-1751686503-0"
NODE_A = "a" * 40
NODE_B = "b" * 40


def _service(ingress: list[str], ports: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "p2p-loadbalancer", "namespace": "provider-lb"},
        "spec": {
            "type": "LoadBalancer",
            "ports": [
                {"name": name, "port": port, "protocol": "TCP", "targetPort": 26656}
                for name, port in ports
            ]
            or [{"name": "placeholder", "port": 1, "protocol": "TCP", "targetPort": 1}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}},
    }


def _bed_with_clusters(tmp_path: Path, names: list[str], network: str) -> ScriptBed:
    bed = make_testbed(tmp_path, network=network)
    world = bed.world()
    for name in names:
        world["clusters"][name] = {"images": [], "objects": {}, "releases": {}}
    bed.update_world(clusters=world["clusters"], network_exists=True)
    return bed


def test_status_shows_address_ports_and_peers_per_cluster(tmp_path: Path) -> None:
    bed = _bed_with_clusters(tmp_path, ["alice", "bob"], "ipv4-first-16.json")
    p2p = service_port_name(CHAIN, "p2p")
    peers = build_peers_configmap(
        chain_id=CHAIN,
        consumer_id="0",
        namespace="consumers",
        peers=[
            PeerRecord("cosmosvaloper1b", "bob", NODE_B, "172.18.255.236", 30301),
            PeerRecord("cosmosvaloper1c", "charlie", NODE_A, "fc00:f853:ccd:e793::e2", 30301),
        ],
        left_out=[],
        ports={"p2p": 30301},
    )
    bed.seed("alice", [_service(["172.18.255.246"], [(p2p, 30301)]), peers.to_object()])
    # A ConfigMap that is not a peers list must not show up.
    bed.seed(
        "alice",
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "x", "namespace": "consumers"},
                "data": {"chain_id": "other"},
            }
        ],
    )
    bed.seed("bob", [_service([], [])])

    done = bed.run("status.sh")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    alice, rest = out.split("bob:")
    bob, charlie = rest.split("charlie:")
    assert "LoadBalancer provider-lb/p2p-loadbalancer: 172.18.255.246" in alice
    assert f"30301/TCP  {p2p}" in alice
    assert f"peers of {CHAIN} (ConfigMap consumers/{peers.name}): 2" in alice
    assert f"{NODE_B}@172.18.255.236:30301" in alice
    assert f"{NODE_A}@[fc00:f853:ccd:e793::e2]:30301" in alice
    assert "other" not in alice
    assert "no address yet" in bob
    assert "ports: none exposed yet" in bob
    assert "peers: no consumer chain yet" in bob
    assert "not running (make kind-up)" in charlie
    # Reading only: status changes nothing.
    verbs = {
        next(a for a in c["argv"] if a in ("get", "apply", "create", "delete", "version"))
        for c in bed.last_calls
        if c["tool"] == "kubectl"
    }
    assert verbs == {"version", "get"}


def test_status_makes_untrusted_text_printable(tmp_path: Path) -> None:
    bed = _bed_with_clusters(tmp_path, ["alice"], "ipv4-first-16.json")
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "ics-peers-evil",
            "namespace": "consumers",
            "labels": {
                "app.kubernetes.io/managed-by": "ics-discovery",
                "app.kubernetes.io/component": "peers",
            },
        },
        "data": {"chain_id": "evil\x1b[2J", "persistent_peers": ""},
    }
    bed.seed("alice", [_service(["172.18.255.246"], []), cm])
    done = bed.run("status.sh")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "peers of evil?[2J" in done.stdout


def test_kind_down_removes_clusters_state_and_network_then_runs_again(tmp_path: Path) -> None:
    bed = _bed_with_clusters(tmp_path, list(CLUSTERS), "ipv4-first-16.json")
    bed.state.mkdir()
    (bed.state / "metallb-pools.json").write_text("{}")
    done = bed.run("kind-down.sh")
    assert done.returncode == 0, done.stderr
    world = bed.world()
    assert world["clusters"] == {}
    assert world["network_exists"] is False
    assert not bed.state.exists()
    deleted = [
        c["argv"][3] for c in bed.last_calls if c["tool"] == "kind" and c["argv"][0] == "delete"
    ]
    assert deleted == list(CLUSTERS)

    again = bed.run("kind-down.sh")
    assert again.returncode == 0, again.stderr
    assert "cluster alice does not exist" in again.stderr
    assert not [
        c
        for c in bed.last_calls
        if c["argv"][0] in ("delete", "rm") or c["argv"][:2] == ["network", "rm"]
    ]


def test_kind_down_keeps_a_network_other_containers_use(tmp_path: Path) -> None:
    bed = _bed_with_clusters(tmp_path, ["bob"], "ipv6-first-24-no-gateway.json")
    done = bed.run("kind-down.sh")
    assert done.returncode == 0, done.stderr
    assert "cluster alice does not exist" in done.stderr
    assert "deleting cluster bob" in done.stderr
    assert "keeping the docker network kind: 1 other container(s) still use it" in done.stderr
    assert bed.world()["network_exists"] is True
