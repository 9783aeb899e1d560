"""Property: the same chain state always renders the same desired bytes, and they are safe.

Same snapshot (in any input order) gives byte-identical output; every exposed
port is distinct and equals the allocation's P2P port; peers never include us
and every entry passes CometBFT's checks, whatever validators publish.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from chainmonitor.types import ChainSnapshot, ConsumerChain, ConsumerPhase, Validator
from discovery.desired import ExposurePolicy, desired_cluster
from discovery.endpoints import DEFAULT_POLICY
from discovery.peers import check_peer_entry
from tests.support.snapshots import consumer, node_id, op, snapshot, validator

US = 1
DETAILS = st.one_of(
    st.integers(1, 250).map(lambda n: f"p2p=198.51.100.{n} node={node_id(n)}"),
    st.integers(1, 250).map(lambda n: f"p2p=host{n}.example.org node={node_id(n)}"),
    st.just(f"p2p=127.0.0.1 node={node_id(9)}"),
    st.just("p2p=10.0.0.1,evil@1.2.3.4:1 node=zz"),
    st.just(f"p2p=[2001:db8::7] node={node_id(7)}"),
    # Two validators may claim the same host or node ID: both are left out.
    st.just(f"p2p=198.51.100.1 node={node_id(1)}"),
    st.just("no endpoint here"),
    st.text(max_size=40),
)
PHASES = st.sampled_from(list(ConsumerPhase))
CHAIN_IDS = st.sampled_from(["alpha", "beta-1", "gamma_2", "δ-chain", "chain-0", "chain-x"])


@st.composite
def snapshots(draw: st.DrawFn) -> ChainSnapshot:
    count = draw(st.integers(1, 7))
    validators = [validator(n, draw(DETAILS)) for n in range(1, count + 1)]
    ids = draw(st.lists(st.integers(0, 30), unique=True, max_size=6))
    consumers = [
        consumer(
            cid,
            draw(CHAIN_IDS),
            draw(st.sets(st.integers(1, count + 1))),  # count+1: opted in, unknown to the registry
            draw(PHASES),
        )
        for cid in ids
    ]
    return snapshot(validators, consumers, height=draw(st.integers(1, 10**6)))


def shuffled(snap: ChainSnapshot, seed: int) -> ChainSnapshot:
    rng = random.Random(seed)
    validators: list[Validator] = list(snap.validators)
    consumers: list[ConsumerChain] = list(snap.consumers)
    rng.shuffle(validators)
    rng.shuffle(consumers)
    return replace(snap, validators=tuple(validators), consumers=tuple(consumers))


POLICIES = st.sampled_from([ExposurePolicy(consumer_namespace="consumers"), ExposurePolicy()])


@settings(max_examples=150, deadline=None)
@given(snapshots(), st.integers(0, 2**32), POLICIES)
def test_same_snapshot_same_bytes_in_any_order(
    snap: ChainSnapshot, seed: int, policy: ExposurePolicy
) -> None:
    pods = {"alpha": ["ns-b", "ns-a"], "chain-0": ["ns-a"]}
    first = desired_cluster(snap, op(US), policy, DEFAULT_POLICY, pods).render()
    again = desired_cluster(snap, op(US), policy, DEFAULT_POLICY, pods).render()
    reordered = desired_cluster(shuffled(snap, seed), op(US), policy, DEFAULT_POLICY, pods)
    assert first == again == reordered.render()


@settings(max_examples=150, deadline=None)
@given(snapshots())
def test_exposed_ports_are_distinct_and_peers_are_safe(snap: ChainSnapshot) -> None:
    d = desired_cluster(snap, op(US), ExposurePolicy(consumer_namespace="c"), DEFAULT_POLICY)
    ports = [p.port for c in d.lb.chains for p in c.ports]
    assert len(ports) == len(set(ports))
    assert len({c.chain_id for c in d.chains}) == len(d.chains)
    for chain in d.chains:
        assert chain.exposure.ports[0].port == chain.allocation.ports.p2p
        for peer in chain.peers.peers:
            assert peer.operator_address != op(US)
            assert peer.port == chain.allocation.ports.p2p
            check_peer_entry(peer.entry())
        [cm] = chain.configmaps
        entries = cm.data["persistent_peers"].split(",") if cm.data["persistent_peers"] else []
        assert entries == sorted(entries)
        assert cm.data["peer_count"] == str(len(entries))
    # Exposed exactly when launched, opted in, and the newest consumer of its chain ID.
    exposed = {c.consumer_id for c in d.chains}
    for view in d.state.chains:
        if view.consumer_id in exposed:
            assert view.opted_in
            assert view.phase == ConsumerPhase.LAUNCHED.value
