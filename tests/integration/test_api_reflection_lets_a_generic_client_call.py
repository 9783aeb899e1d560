"""gRPC server reflection: a client without the .proto files lists, describes and calls the API.

The client side is grpcio-reflection's `ProtoReflectionDescriptorDatabase` (what
grpcurl does in Go): every descriptor the test uses comes from a fresh
`DescriptorPool` fed only by the server's reflection answers, never from the
generated modules, so a call that works proves reflection alone is enough.
The blocking reflection client runs in a thread; the server is the real
`ApiServer` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from discovery.api import SERVICE_NAME, ApiServer
from discovery.state import StateStore
from tests.support.discovery_states import build_state
from tests.support.procs import tool

HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


async def _serve(reflection: bool) -> tuple[ApiServer, StateStore]:
    store = StateStore(build_state())
    server = ApiServer(store, "127.0.0.1:0", reflection=reflection)
    await server.start()
    return server, store


@pytest.fixture
async def reflecting() -> AsyncIterator[ApiServer]:
    server, _ = await _serve(reflection=True)
    try:
        yield server
    finally:
        await server.stop(grace=1)


@pytest.fixture
async def silent() -> AsyncIterator[ApiServer]:
    server, _ = await _serve(reflection=False)
    try:
        yield server
    finally:
        await server.stop(grace=1)


def _list_and_describe(port: int) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Services, and the Discovery methods' (input, output) full names, through reflection."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(db.get_services())
        pool = descriptor_pool.DescriptorPool(db)
        service = pool.FindServiceByName(SERVICE_NAME)
        methods = {
            m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods
        }
        return services, methods


def _call_list_consumers(port: int) -> Any:
    """ListConsumers with request and response classes built from reflected descriptors only."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName(SERVICE_NAME).methods_by_name["ListConsumers"]
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{SERVICE_NAME}/ListConsumers",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        return call(request_cls(), timeout=5)


async def test_reflection_lists_and_describes_the_discovery_service(
    reflecting: ApiServer,
) -> None:
    services, methods = await asyncio.to_thread(_list_and_describe, reflecting.port)
    assert services == sorted([SERVICE_NAME, HEALTH, REFLECTION])
    assert set(methods) == {"GetPorts", "ListConsumers", "GetPeers", "WatchPeers", "ListValidators"}
    assert methods["GetPeers"] == (
        "ics.discovery.v1.GetPeersRequest",
        "ics.discovery.v1.GetPeersResponse",
    )


async def test_a_call_works_with_descriptors_from_reflection_only(reflecting: ApiServer) -> None:
    answer = await asyncio.to_thread(_call_list_consumers, reflecting.port)
    # A dynamic class from the reflected pool, not the generated one.
    assert type(answer).DESCRIPTOR.file.pool is not descriptor_pool.Default()
    assert [c.chain_id for c in answer.consumers] == ["consumer-a", "consumer-b"]
    assert answer.height == build_state().height


async def test_with_reflection_off_the_server_refuses_it(silent: ApiServer) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        await asyncio.to_thread(_list_and_describe, silent.port)
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _grpcurl(
    port: int, *args: str, flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`grpcurl -plaintext [flags] ADDRESS args...` (list, describe SYMBOL, or METHOD)."""
    return subprocess.run(
        [str(tool("grpcurl")), "-plaintext", *flags, f"127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_grpcurl_lists_describes_and_calls_without_proto_files(
    reflecting: ApiServer,
) -> None:
    port = reflecting.port
    listed = await asyncio.to_thread(_grpcurl, port, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == sorted([SERVICE_NAME, HEALTH, REFLECTION])
    described = await asyncio.to_thread(_grpcurl, port, "describe", SERVICE_NAME)
    assert described.returncode == 0, described.stderr
    assert "rpc WatchPeers ( .ics.discovery.v1.WatchPeersRequest ) returns ( stream" in (
        described.stdout
    )
    called = await asyncio.to_thread(
        _grpcurl, port, f"{SERVICE_NAME}/GetPeers", flags=("-d", '{"chain_id": "consumer-a"}')
    )
    assert called.returncode == 0, called.stderr
    answer = json.loads(called.stdout)
    assert answer["peers"]["chain_id"] == "consumer-a"
    assert answer["peers"]["persistent_peers"].count("@") == 2


async def test_grpcurl_is_told_reflection_is_off(silent: ApiServer) -> None:
    listed = await asyncio.to_thread(_grpcurl, silent.port, "list")
    assert listed.returncode != 0
    assert "does not support the reflection API" in listed.stderr
