"""Types for the generated gRPC client stubs (`*_pb2_grpc.pyi`), which protoc leaves untyped.

Describes what calling a `grpc.aio` unary-unary method returns: an awaitable call
that also exposes the response headers (the Cosmos SDK puts the query height in
`x-cosmos-block-height`).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, Protocol, TypeVar

RequestT = TypeVar("RequestT", contravariant=True)
ResponseT = TypeVar("ResponseT", covariant=True)

Metadata = Sequence[tuple[str, str]]


class UnaryUnaryCall(Protocol[ResponseT]):
    def __await__(self) -> Generator[Any, None, ResponseT]: ...

    async def initial_metadata(self) -> Any: ...


class UnaryUnary(Protocol[RequestT, ResponseT]):
    def __call__(
        self,
        request: RequestT,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> UnaryUnaryCall[ResponseT]: ...
