"""`DiscoveryState` values for API, metrics and status tests, built by the real pure core.

The validators' details go through `endpoints.read_details` and the peer list
through `peers.build_peer_list`, so the states look exactly like what the
service computes (left-out reasons included), not like hand-written records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from discovery.endpoints import read_details
from discovery.peers import ConsumerMembers, ValidatorEndpoint, build_peer_list
from discovery.ports import ConsumerChainRef, PortScheme, allocate_ports
from discovery.state import (
    ChainPeers,
    ChainPortsView,
    ChainView,
    DiscoveryState,
    ValidatorView,
)
from discovery.types import ConsensusAddress, OperatorAddress
from tests.support.snapshots import cons, node_id, op


@dataclass(frozen=True)
class SampleValidator:
    moniker: str
    details: str
    index: int

    @property
    def operator(self) -> OperatorAddress:
        return op(self.index)

    @property
    def consensus(self) -> ConsensusAddress:
        return cons(self.index)


ALICE = SampleValidator("alice", f"Validator alice p2p=203.0.113.1 node={node_id(1)}", 1)
BOB = SampleValidator("bob", f"p2p=[2001:db8::2]:26656 node={node_id(2)}", 2)
CAROL = SampleValidator("carol", f"p2p=198.51.100.3 node={node_id(3)}", 3)
# Points consumer nodes at their own loopback: must be left out with a reason.
MALLORY = SampleValidator("mal\x1b[31mlory", f"p2p=127.0.0.1 node={node_id(4)}", 4)


def build_state(
    *,
    height: int = 100,
    us: SampleValidator = ALICE,
    validators: tuple[SampleValidator, ...] = (ALICE, BOB, CAROL, MALLORY),
    chains: Mapping[str, str] | None = None,
    opted_in: tuple[SampleValidator, ...] | None = None,
) -> DiscoveryState:
    """One state: every chain launched, `opted_in` (default: all) opted in to each."""
    chains = dict(chains or {"1": "consumer-a", "2": "consumer-b"})
    members = opted_in if opted_in is not None else validators
    plan = allocate_ports(
        [ConsumerChainRef.parse(cid, chain) for cid, chain in chains.items()],
        PortScheme.DOCUMENT,
    )
    records = {
        v.operator: ValidatorEndpoint(v.operator, v.consensus, read_details(v.details))
        for v in validators
    }
    monikers = {v.operator: v.moniker for v in validators}
    views = []
    for consumer_id, chain_id in chains.items():
        allocation = plan.for_consumer(ConsumerChainRef.parse(consumer_id, chain_id).consumer_id)
        peer_list = build_peer_list(
            ConsumerMembers(
                allocation.consumer_id,
                allocation.chain_id,
                frozenset(v.consensus for v in members),
            ),
            records,
            us.operator,
            allocation.ports.p2p,
        )
        views.append(
            ChainView(
                consumer_id=consumer_id,
                chain_id=chain_id,
                phase="CONSUMER_PHASE_LAUNCHED",
                opted_in=us in members,
                exposed=us in members,
                ports=ChainPortsView.from_allocation(allocation, "document"),
                peers=ChainPeers.from_peer_list(peer_list, monikers) if us in members else None,
            )
        )
    return DiscoveryState(
        height=height,
        operator_address=us.operator,
        chains=tuple(views),
        validators=tuple(
            ValidatorView(
                operator_address=v.operator,
                consensus_address=v.consensus,
                moniker=v.moniker,
                status="BOND_STATUS_BONDED",
                jailed=False,
                endpoint=read_details(v.details),
            )
            for v in validators
        ),
    )
