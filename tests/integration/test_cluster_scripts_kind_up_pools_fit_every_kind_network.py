"""`make kind-up` with stand-in docker, kind, kubectl and helm, on several kind networks.

For each recorded shape of `docker network inspect kind` (a /16, a /20, a /24
without Gateway, IPv6 listed first) the script must give every cluster a MetalLB
pool inside the network's IPv4 subnet (never the network, gateway, broadcast or
a container's address), no two pools may overlap, each cluster gets only its
own pool, and the fixed addresses of the provider node and of the chart's
LoadBalancer come from that cluster's pool. The expected subnet is read from
the recorded file here, independently of the planner.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from discovery.nodekey import decode_node_key
from tests.support.standins.harness import CLUSTERS, NETWORKS, ScriptBed, make_testbed

pytestmark = pytest.mark.helm

IPv4 = ipaddress.IPv4Address


def _expected_network(shape: str) -> tuple[ipaddress.IPv4Network, set[IPv4]]:
    """The IPv4 subnet (by family, not position) and the addresses a pool must avoid."""
    net = json.loads((NETWORKS / shape).read_text())[0]
    subnets = [c for c in net["IPAM"]["Config"] if ipaddress.ip_network(c["Subnet"]).version == 4]
    (cfg,) = subnets
    subnet = ipaddress.IPv4Network(cfg["Subnet"])
    gateway = IPv4(cfg["Gateway"]) if cfg.get("Gateway") else subnet.network_address + 1
    taken = {subnet.network_address, subnet.broadcast_address, gateway}
    for c in net["Containers"].values():
        if c.get("IPv4Address"):
            taken.add(ipaddress.IPv4Interface(c["IPv4Address"]).ip)
    return subnet, taken


def _range(text: str) -> tuple[IPv4, IPv4]:
    start, _, end = text.partition("-")
    return IPv4(start.strip()), IPv4(end.strip())


def _release_value(bed: ScriptBed, cluster: str, release: str, key: str) -> str:
    entry = bed.world()["clusters"][cluster]["releases"][f"provider/{release}"]
    values = entry["values"]
    found = [v for f, v in zip(values[::2], values[1::2], strict=True) if v.startswith(key + "=")]
    assert found, f"{release} in {cluster} has no {key}"
    return str(found[-1].split("=", 1)[1])


def _assert_pools(bed: ScriptBed, shape: str) -> None:
    subnet, taken = _expected_network(shape)

    pools: dict[str, tuple[IPv4, IPv4]] = {}
    for cluster in CLUSTERS:
        (pool,) = bed.objects(cluster, "IPAddressPool")
        (l2,) = bed.objects(cluster, "L2Advertisement")
        assert pool["metadata"]["name"] == f"ics-discovery-{cluster}"
        assert pool["apiVersion"] == "metallb.io/v1beta1"
        assert l2["spec"]["ipAddressPools"] == [pool["metadata"]["name"]]
        (addresses,) = pool["spec"]["addresses"]
        start, end = _range(addresses)
        assert start <= end
        assert start in subnet, (cluster, addresses, subnet)
        assert end in subnet, (cluster, addresses, subnet)
        assert not [a for a in taken if start <= a <= end], (cluster, addresses)
        pools[cluster] = (start, end)

    spans = sorted(pools.values())
    for (_, end_a), (start_b, _) in itertools.pairwise(spans):
        assert end_a < start_b, f"pools overlap: {pools}"

    for cluster, (start, end) in pools.items():
        lb_ip = IPv4(_release_value(bed, cluster, "ics-discovery", "loadBalancer.ip"))
        node_ip = IPv4(_release_value(bed, cluster, "provider-node", "loadBalancerIP"))
        assert start <= lb_ip <= end
        assert start <= node_ip <= end
        assert lb_ip != node_ip
        # What the chart rendered with those values: the pinned address (charlie's
        # example asks through spec.loadBalancerIP, the others through both annotations).
        (svc,) = [
            o
            for o in bed.objects(cluster, "Service")
            if o["metadata"]["name"] == "p2p-loadbalancer"
        ]
        if cluster == "charlie":
            assert svc["spec"]["loadBalancerIP"] == str(lb_ip)
        else:
            annotations = svc["metadata"]["annotations"]
            assert annotations["metallb.universe.tf/loadBalancerIPs"] == str(lb_ip)
            assert annotations["metallb.io/loadBalancerIPs"] == str(lb_ip)


@pytest.mark.parametrize(
    "shape", ["ipv4-first-16.json", "ipv6-first-16.json", "ipv6-first-24-no-gateway.json"]
)
def test_pools_lie_inside_the_ipv4_subnet_and_never_overlap(tmp_path: Path, shape: str) -> None:
    bed = make_testbed(tmp_path, network=shape, reuse_genesis=True)
    done = bed.run("kind-up.sh")
    assert done.returncode == 0, done.stderr
    _assert_pools(bed, shape)


def test_kind_up_builds_the_whole_testnet(tmp_path: Path) -> None:
    """From nothing (genesis included), on a /20 with other containers and a worker node."""
    bed = make_testbed(tmp_path, network="docker27-20.json")
    done = bed.run("kind-up.sh")
    assert done.returncode == 0, done.stderr
    _assert_pools(bed, "docker27-20.json")
    world = bed.world()
    assert sorted(world["clusters"]) == list(CLUSTERS)
    state = bed.state
    validators = json.loads((state / "provider" / "validators.json").read_text())
    by_name = {v["moniker"]: v for v in validators}
    assert sorted(by_name) == list(CLUSTERS)

    for cluster in CLUSTERS:
        c = world["clusters"][cluster]
        assert sorted(i.split("@")[0] for i in c["images"]) == [
            "ics-discovery:kind",
            "ics-provider:kind",
        ]
        urls = [k for k in c["objects"] if k.startswith("url/")]
        assert urls == [
            "url/https://raw.githubusercontent.com/metallb/metallb/v0.14.9/config/manifests/metallb-native.yaml"
        ]
        namespaces = {o["metadata"]["name"] for o in bed.objects(cluster, "Namespace")}
        assert {"provider", "consumers"} <= namespaces

        # The provider node's keys and genesis come from the generated state, as Secrets.
        secrets = {o["metadata"]["name"]: o for o in bed.objects(cluster, "Secret")}
        node_key = json.loads(
            __import__("base64").b64decode(secrets["provider-node-keys"]["data"]["node_key.json"])
        )
        on_disk = json.loads(
            (state / "provider" / cluster / "config" / "node_key.json").read_text()
        )
        assert node_key == on_disk
        assert "signing-key" in secrets["validator-signing-key"]["data"]
        configmaps = {o["metadata"]["name"]: o for o in bed.objects(cluster, "ConfigMap")}
        genesis = json.loads(configmaps["provider-genesis"]["data"]["genesis.json"])
        assert len(genesis["app_state"]["genutil"]["gen_txs"]) == 3
        # Keys never in a ConfigMap.
        for cm in configmaps.values():
            text = json.dumps(cm)
            assert "priv_key" not in text
            assert (state / "provider" / cluster / "signing.key").read_text().strip() not in text

        # The provider node peers with the other two clusters' nodes at their pool addresses.
        (statefulset,) = bed.objects(cluster, "StatefulSet")
        args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
        peers_arg = next(a for a in args if a.startswith("--p2p.persistent_peers="))
        peers = peers_arg.split("=", 1)[1].split(",")
        others = [n for n in CLUSTERS if n != cluster]
        assert sorted(p.split("@")[0] for p in peers) == sorted(
            by_name[o]["node_id"] for o in others
        )

        # The chart runs as this validator, with the testnet image.
        (deploy,) = bed.objects(cluster, "Deployment")
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["ICS_DISCOVERY_OPERATOR_ADDRESS"] == by_name[cluster]["operator"]
        assert container["image"] == "ics-discovery:kind"
        assert container["imagePullPolicy"] == "Never"

        # The endpoint is published by a Job with the cluster's LoadBalancer address.
        (job,) = bed.objects(cluster, "Job")
        job_env = {
            e["name"]: e.get("value")
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        lb_ip = _release_value(bed, cluster, "ics-discovery", "loadBalancer.ip")
        assert job_env["HOST"] == lb_ip
        key_ref = next(
            e
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
            if e["name"] == "ICS_PUBLISH_SIGNING_KEY"
        )
        assert key_ref["valueFrom"]["secretKeyRef"]["name"] == "validator-signing-key"
        # ...and the node ID of the consumer nodes' key, which their Secret holds.
        consumer_key = state / "consumer" / cluster / "node_key.json"
        assert consumer_key.stat().st_mode & 0o077 == 0
        consumer_node_id = decode_node_key(consumer_key.read_bytes()).node_id
        assert job_env["NODE_ID"] == consumer_node_id
        (consumer_secret,) = [
            o
            for o in bed.objects(cluster, "Secret")
            if o["metadata"]["name"] == "consumer-node-key"
        ]
        assert consumer_secret["metadata"]["namespace"] == "consumers"
        assert base64.b64decode(consumer_secret["data"]["node_key.json"]) == (
            consumer_key.read_bytes()
        )

    # Signing keys are private files.
    for cluster in CLUSTERS:
        assert (state / "provider" / cluster / "signing.key").stat().st_mode & 0o077 == 0
    assert (state).stat().st_mode & 0o077 == 0
    kinds: list[Any] = [c["argv"][:2] for c in bed.calls() if c["tool"] == "kind"]
    assert kinds.count(["create", "cluster"]) == 3
