"""Each provider node answers on the RPC, REST and gRPC addresses the fixture hands out."""

from __future__ import annotations

import grpc
import pytest

from tests.support.chain import ProviderChain

pytestmark = pytest.mark.chain


def test_each_node_answers_and_peers_with_the_others(provider_chain3: ProviderChain) -> None:
    chain = provider_chain3
    assert len(chain.nodes) == 3
    ids = {n.node_id for n in chain.nodes}
    assert len(ids) == 3
    for node in chain.nodes:
        status = chain.rpc_get("status", node=node)
        assert status["node_info"]["network"] == chain.chain_id
        assert status["node_info"]["id"] == node.node_id
        assert status["sync_info"]["catching_up"] is False

        peers = chain.rpc_get("net_info", node=node)["peers"]
        assert {p["node_info"]["id"] for p in peers} == ids - {node.node_id}

        info = chain.rest_get("/cosmos/base/tendermint/v1beta1/node_info", node=node)
        assert info["default_node_info"]["default_node_id"] == node.node_id

        # A raw unary call: GetNodeInfo takes an empty request; its answer names the chain.
        with grpc.insecure_channel(node.grpc_address) as channel:
            call = channel.unary_unary(
                "/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            answer: bytes = call(b"", timeout=10)
        assert node.node_id.encode() in answer
        assert chain.chain_id.encode() in answer


def test_blocks_keep_coming(provider_chain: ProviderChain) -> None:
    start = provider_chain.height()
    assert provider_chain.wait_for_height(start + 5, timeout=30) >= start + 5
    assert provider_chain.block_time(start + 5) > provider_chain.block_time(start)
