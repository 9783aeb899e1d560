"""Types for the generated gRPC client stubs (`*_pb2_grpc.pyi`), which protoc leaves untyped.

Describes what calling a unary-unary or unary-stream method returns, for both
`grpc.aio` channels (awaitable call, async iterator of responses) and plain
channels (the response itself, an iterator of responses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from typing import Any, Protocol, TypeVar

RequestT = TypeVar("RequestT", contravariant=True)
ResponseT = TypeVar("ResponseT", covariant=True)

Metadata = Sequence[tuple[str, str]]


class UnaryUnaryCall(Protocol[ResponseT]):
    def __await__(self) -> Generator[Any, None, ResponseT]: ...

    async def initial_metadata(self) -> Any: ...


class UnaryUnary(Protocol[RequestT, ResponseT]):
    """A unary-unary method: `await stub.M(req)` on aio channels (plain channels return
    the response directly; cast there)."""

    def __call__(
        self,
        request: RequestT,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> UnaryUnaryCall[ResponseT]: ...


class UnaryStreamCall(Protocol[ResponseT]):
    def __aiter__(self) -> AsyncIterator[ResponseT]: ...

    def __iter__(self) -> Iterator[ResponseT]: ...

    def cancel(self) -> bool: ...


class UnaryStream(Protocol[RequestT, ResponseT]):
    """A unary-stream method: iterate the call (`async for` on aio channels, `for` on plain)."""

    def __call__(
        self,
        request: RequestT,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> UnaryStreamCall[ResponseT]: ...
