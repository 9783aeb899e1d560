"""The shared L2 network of namespaces: nodes reach each other's announced addresses, pods reach
other clusters through their node, an address outside the subnet is unreachable, and teardown
leaves no namespace, process, address, route or rule behind (the root namespace is untouched).
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import dataplane, netlab
from tests.support.procs import pids_alive

pytestmark = pytest.mark.netns

CLUSTERS = ["alice", "bob", "charlie"]
PORT = 26656


@pytest.fixture
def network(tmp_path: Path) -> Iterator[netlab.Network]:
    before = netlab.root_network_state()
    net = netlab.build_network(CLUSTERS, workdir=tmp_path)
    pids: list[int] = []
    try:
        yield net
        pids = net.pids()
    finally:
        pids = pids or net.pids()
        net.close()
    assert netlab.our_namespaces() == [], "a namespace survived teardown"
    assert pids_alive(pids) == [], "a process survived teardown"
    assert netlab.root_network_state() == before, "the root network namespace changed"


def test_announced_pool_address_is_reachable_and_outside_subnet_is_not(
    network: netlab.Network, tmp_path: Path
) -> None:
    net = network
    pools = dataplane.planned_pools(net, CLUSTERS)
    alice_lb = ipaddress.IPv4Address(pools["alice"][0])
    assert alice_lb in net.plan.subnet
    # The original design's mistake: the subnet's first two octets with another third one.
    wrong = ipaddress.IPv4Address(f"172.30.{net.plan.subnet.network_address.packed[2] + 1}.100")
    assert wrong not in net.plan.subnet

    alice = net.node_netns("alice")
    net.add_address("alice", alice_lb)
    net.add_address("alice", wrong)
    net.serve(alice, alice_lb, PORT, "alice-lb")
    net.serve(alice, wrong, PORT, "alice-wrong")

    bob_pod = net.add_pod("bob", "consumer-0", 0)
    from_bob_node = net.prober(net.node_netns("bob"))
    from_bob_pod = net.prober(bob_pod.netns)
    from_charlie = net.prober(net.node_netns("charlie"))

    for prober, source in ((from_bob_node, "172.30.0.3"), (from_charlie, "172.30.0.4")):
        r = prober.connect(str(alice_lb), PORT, timeout=5)
        assert r == {"ok": True, "reply": f"alice-lb {alice_lb} peer={source}"}
    # A pod reaches another cluster's LoadBalancer address through its node (masqueraded).
    r = from_bob_pod.connect(str(alice_lb), PORT, timeout=5)
    assert r == {"ok": True, "reply": f"alice-lb {alice_lb} peer=172.30.0.3"}
    # Outside the shared subnet nothing answers, from a node or a pod.
    assert from_bob_node.connect(str(wrong), PORT, timeout=2) == {
        "ok": False,
        "error": "ENETUNREACH",
    }
    assert from_bob_pod.connect(str(wrong), PORT, timeout=2)["ok"] is False
    # Withdrawn, the pool address stops answering.
    net.remove_address("alice", alice_lb)
    assert from_charlie.connect(str(alice_lb), PORT, timeout=2)["ok"] is False


def test_pod_is_routed_through_its_node_and_follows_a_new_address(
    network: netlab.Network,
) -> None:
    net = network
    pod = net.add_pod("alice", "consumer-0", 3)
    assert str(pod.address) == "10.244.1.5"
    server = net.serve(pod.netns, pod.address, PORT, "consumer-0")
    on_node = net.prober(net.node_netns("alice"))
    assert on_node.connect("10.244.1.5", PORT, timeout=5) == {
        "ok": True,
        "reply": "consumer-0 10.244.1.5 peer=10.244.1.1",
    }
    # Another cluster's node has no route into alice's pod CIDR (only LoadBalancers are shared).
    assert net.prober(net.node_netns("bob")).connect("10.244.1.5", PORT, timeout=2) == {
        "ok": False,
        "error": "ENETUNREACH",
    }

    server.stop()
    pod.readdress(ipaddress.IPv4Address("10.244.1.9"))
    net.serve(pod.netns, pod.address, PORT, "consumer-0")
    assert on_node.connect("10.244.1.9", PORT, timeout=5)["ok"] is True
    assert on_node.connect("10.244.1.5", PORT, timeout=2)["ok"] is False


def test_sweep_removes_what_a_crashed_run_left() -> None:
    ghost = "icsdp-1999999999-net"  # no such pid can be alive
    subprocess.run(["ip", "netns", "add", ghost], check=True)
    try:
        assert ghost in netlab.our_namespaces()
        assert ghost in netlab.sweep()
        assert ghost not in netlab.our_namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", ghost], capture_output=True)
