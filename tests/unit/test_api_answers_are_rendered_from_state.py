"""Every API answer is a pure, deterministic rendering of the current `DiscoveryState`."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb
from discovery.api import (
    DiscoveryServicer,
    list_consumers_response,
    list_validators_response,
    method_handlers,
    watch_message,
)
from discovery.state import DiscoveryState, StateStore
from tests.support.discovery_states import ALICE, BOB, CAROL, MALLORY, build_state


def test_every_rpc_of_the_proto_has_a_handler() -> None:
    service = pb.DESCRIPTOR.services_by_name["Discovery"]
    handlers = method_handlers(DiscoveryServicer(StateStore()))
    assert set(handlers) == {m.name for m in service.methods}
    assert handlers["WatchPeers"].response_streaming
    assert not handlers["GetPeers"].response_streaming


def test_consumers_are_listed_in_consumer_id_order_whatever_the_input_order() -> None:
    state = build_state(chains={"10": "chain-ten", "2": "chain-two", "1": "chain-one"})
    shuffled = DiscoveryState(
        height=state.height,
        operator_address=state.operator_address,
        chains=tuple(reversed(state.chains)),
        validators=tuple(reversed(state.validators)),
    )
    a = list_consumers_response(state)
    b = list_consumers_response(shuffled)
    assert a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)
    assert [c.consumer_id for c in a.consumers] == ["1", "2", "10"]
    first = a.consumers[0]
    assert first.exposed
    assert first.opted_in
    assert first.peer_count == 2  # bob and carol; alice is us, mallory is left out
    assert first.left_out_count == 1
    assert first.ports.p2p == state.chains[0].ports.ports["p2p"]


def test_peer_set_carries_entries_and_reasons() -> None:
    state = build_state(chains={"1": "consumer-a"})
    msg = watch_message(state, "consumer-a")
    assert msg.present
    peers = msg.peers
    port = state.chains[0].ports.ports["p2p"]
    assert [p.moniker for p in peers.peers] == ["bob", "carol"]
    assert peers.peers[0].entry == f"{'02' * 20}@[2001:db8::2]:{port}"
    assert peers.persistent_peers == ",".join(p.entry for p in peers.peers)
    assert len(peers.peers_hash) == 64
    [left] = peers.left_out
    assert left.operator_address == MALLORY.operator
    assert left.reason == "invalid-endpoint"
    assert "loopback" in left.detail
    assert not watch_message(state, "unknown-chain").present


def test_validators_show_each_endpoint_parse_result() -> None:
    msg = list_validators_response(build_state())
    by_moniker = {v.moniker: v for v in msg.validators}
    assert [v.operator_address for v in msg.validators] == sorted(
        v.operator for v in (ALICE, BOB, CAROL, MALLORY)
    )
    bob = by_moniker["bob"]
    assert bob.WhichOneof("endpoint") == "accepted"
    assert (bob.accepted.host, bob.accepted.host_kind) == ("2001:db8::2", "ipv6")
    assert bob.accepted.node_id == "02" * 20
    mallory = by_moniker[MALLORY.moniker]
    assert mallory.WhichOneof("endpoint") == "rejected"
    assert mallory.rejected.reason == "forbidden-address"


def test_duplicate_chain_ids_resolve_to_the_exposed_consumer() -> None:
    state = build_state(chains={"1": "same-id"})
    stopped = replace(
        state.chains[0], consumer_id="7", phase="CONSUMER_PHASE_STOPPED", exposed=False, peers=None
    )
    both = replace(state, chains=(*state.chains, stopped))
    chosen = both.chain("same-id")
    assert chosen is not None
    assert chosen.consumer_id == "1"


class _Context:
    """The one thing handlers use from a gRPC context: abort."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.aborted = (code, message)


def test_servicer_refuses_bad_and_unknown_chain_ids() -> None:
    handlers = method_handlers(DiscoveryServicer(StateStore(build_state())))

    async def call(name: str, chain_id: str) -> _Context:
        ctx = _Context()
        request = getattr(pb, f"{name}Request")(chain_id=chain_id)
        await handlers[name].unary_unary(request, ctx)
        return ctx

    async def scenario() -> None:
        bad = await call("GetPorts", "")
        assert bad.aborted is not None
        assert bad.aborted[0] == grpc.StatusCode.INVALID_ARGUMENT
        missing = await call("GetPeers", "x" * 40 + "\x1b")
        assert missing.aborted is not None
        assert missing.aborted[0] == grpc.StatusCode.NOT_FOUND
        assert "\x1b" not in missing.aborted[1]
        fine = await call("GetPorts", "consumer-a")
        assert fine.aborted is None

    asyncio.run(scenario())
