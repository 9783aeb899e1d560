"""The registry reads every validator page from the real chain, over gRPC and over REST alike.

With a page size of one, three validators take three pages: the registry must
follow `next_key` to the end (cosmpy's convenience call stops at one page of
100), pin later pages to the first page's height, and fall back to REST when
gRPC is unreachable.
"""

from __future__ import annotations

import pytest

from chainmonitor.addresses import bech32_encode, parse_operator
from chainmonitor.errors import ChainUnavailable
from chainmonitor.queries import FallbackQueries, GrpcQueries, RestQueries
from chainmonitor.types import BondStatus
from tests.support.chain import ProviderChain
from tests.support.procs import free_port

pytestmark = pytest.mark.chain


async def test_all_pages_over_grpc_and_rest_give_the_same_validators(
    provider_chain3: ProviderChain,
) -> None:
    chain = provider_chain3
    node = chain.nodes[1]
    grpc = GrpcQueries(node.grpc_address, page_limit=1)
    rest = RestQueries(node.rest_url, page_limit=1)
    try:
        by_grpc = await grpc.validators()
        by_rest = await rest.validators(by_grpc.height)
    finally:
        await grpc.close()
    assert by_grpc.height >= 1
    assert by_rest.height == by_grpc.height
    assert by_grpc.value == by_rest.value
    assert by_grpc.rejected == by_rest.rejected == ()
    expected = {v.operator: v for v in chain.validators}
    assert [v.operator for v in by_grpc.value] == sorted(expected)
    for v in by_grpc.value:
        known = expected[v.operator]
        assert v.consensus_address == known.consensus
        assert v.moniker == known.moniker
        assert v.status is BondStatus.BONDED
        assert not v.jailed
    on_chain = {d["operator_address"]: d["description"] for d in chain.staking_validators()}
    for v in by_grpc.value:
        assert v.description.details == on_chain[v.operator]["details"]


async def test_single_validator_and_consumer_queries_agree(provider_chain3: ProviderChain) -> None:
    chain = provider_chain3
    node = chain.nodes[0]
    grpc = GrpcQueries(node.grpc_address)
    rest = RestQueries(node.rest_url)
    try:
        operator = parse_operator(chain.validators[2].operator)
        one = await grpc.validator(operator)
        assert one.value is not None
        assert one.value.operator == operator
        assert one.value == (await rest.validator(operator, one.height)).value
        chains = await grpc.consumer_chains()
        assert chains.value == (await rest.consumer_chains(chains.height)).value
        for c in chains.value:
            if c.phase.has_opted_in_set:
                assert (await grpc.opted_in(c.consumer_id, chains.height)).value == (
                    await rest.opted_in(c.consumer_id, chains.height)
                ).value
    finally:
        await grpc.close()


async def test_unknown_validator_is_none(provider_chain: ProviderChain) -> None:
    node = provider_chain.nodes[0]
    stranger = parse_operator(bech32_encode("cosmosvaloper", b"\x42" * 20))
    grpc = GrpcQueries(node.grpc_address)
    try:
        assert (await grpc.validator(stranger)).value is None
        assert (await RestQueries(node.rest_url).validator(stranger)).value is None
    finally:
        await grpc.close()


async def test_rest_answers_when_grpc_is_unreachable(provider_chain: ProviderChain) -> None:
    node = provider_chain.nodes[0]
    dead = GrpcQueries(f"127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(ChainUnavailable):
        await dead.validators()
    both = FallbackQueries(dead, RestQueries(node.rest_url))
    try:
        answer = await both.validators()
        assert [v.operator for v in answer.value] == [provider_chain.validators[0].operator]
        assert answer.height >= 1
    finally:
        await both.close()
