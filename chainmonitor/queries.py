"""Queries for the truth: validators (staking) and consumer chains (ICS provider), gRPC or REST.

Every answer comes with the height it was read at (the SDK's
`x-cosmos-block-height` header) and later pages and follow-up queries are pinned
to that height, so one load sees one consistent state even while blocks are
produced. Every page is followed (cosmpy's convenience call stops at 100
validators). gRPC is the primary transport; REST answers the same questions
when gRPC is unreachable. grpc and urllib exceptions stop here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

import grpc
import grpc.aio

from chainmonitor._proto.cosmos.base.query.v1beta1 import pagination_pb2
from chainmonitor._proto.cosmos.staking.v1beta1 import query_pb2 as staking_query_pb2
from chainmonitor._proto.cosmos.staking.v1beta1 import query_pb2_grpc as staking_grpc
from chainmonitor._proto.interchain_security.ccv.provider.v1 import query_pb2 as provider_query_pb2
from chainmonitor._proto.interchain_security.ccv.provider.v1 import (
    query_pb2_grpc as provider_grpc,
)
from chainmonitor.addresses import ConsensusAddress, OperatorAddress
from chainmonitor.convert import (
    consumer_from_json,
    consumer_from_proto,
    consumer_validators,
    opted_in_addresses,
    spawn_time_from_json,
    spawn_time_text,
    validator_from_json,
    validator_from_proto,
)
from chainmonitor.errors import ChainMonitorError, ChainUnavailable, InvalidChainData, QueryFailed
from chainmonitor.faults import (
    TRANSPORT_ERRORS,
    classify,
    grpc_code_transient,
    http_status_transient,
)
from chainmonitor.grpc_typing import UnaryUnaryCall
from chainmonitor.types import ConsumerChain, ConsumerId, ConsumerValidator, Validator

log = logging.getLogger(__name__)

T = TypeVar("T")
T0 = TypeVar("T0")
Resp = TypeVar("Resp")

HEIGHT_HEADER: Final = "x-cosmos-block-height"
DEFAULT_PAGE_LIMIT: Final = 100
DEFAULT_TIMEOUT: Final = 10.0
# A page of validators with long descriptions can exceed gRPC's 4 MiB default.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
# A server bug returning the same next_key forever must not loop forever.
MAX_PAGES: Final = 10_000


@dataclass(frozen=True)
class AtHeight(Generic[T]):
    """An answer, its height (0 if the node did not say) and the records left out of it."""

    height: int
    value: T
    rejected: tuple[str, ...] = ()


class ChainQueries(Protocol):
    """The questions the registry and provider state ask; gRPC and REST both answer them."""

    name: str

    async def validators(self, height: int | None = None) -> AtHeight[tuple[Validator, ...]]: ...

    async def validator(
        self, operator: OperatorAddress, height: int | None = None
    ) -> AtHeight[Validator | None]: ...

    async def consumer_chains(
        self, height: int | None = None
    ) -> AtHeight[tuple[ConsumerChain, ...]]: ...

    async def opted_in(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsensusAddress, ...]]: ...

    async def consumer_validators(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsumerValidator, ...]]: ...

    async def spawn_time(self, consumer_id: ConsumerId, height: int | None = None) -> AtHeight[str]:
        """The chain's spawn time (canonical RFC 3339, "" when none is set)."""
        ...

    async def blocks_per_epoch(self, height: int | None = None) -> AtHeight[int]:
        """The provider's epoch length: consumer validator sets change only at its multiples."""
        ...

    async def close(self) -> None: ...


def _collect(items: Sequence[T0], convert: Callable[[T0], T], rejected: list[str]) -> list[T]:
    out: list[T] = []
    for item in items:
        try:
            out.append(convert(item))
        except InvalidChainData as e:
            rejected.append(str(e))
    return out


# ---- gRPC -----------------------------------------------------------------------


def grpc_target(url: str) -> tuple[str, bool]:
    """`host:port` and whether to use TLS, from `host:port`, `grpc://`, `http(s)://` or `grpcs://`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.rstrip("/"), False
    scheme = scheme.lower()
    if scheme not in ("grpc", "grpcs", "http", "https"):
        raise QueryFailed("gRPC", f"unsupported URL scheme in {url!r}", transient=False)
    return rest.rstrip("/"), scheme in ("grpcs", "https")


class GrpcQueries:
    """ChainQueries over gRPC (`grpc.aio`), with the generated stubs of `proto/`."""

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, page_limit: int = DEFAULT_PAGE_LIMIT
    ) -> None:
        self.target, self.tls = grpc_target(url)
        self.name = f"grpc {self.target}"
        self.timeout = timeout
        self.page_limit = page_limit
        self._channel: grpc.aio.Channel | None = None

    def _open(self) -> grpc.aio.Channel:
        # Created on first use, inside the running event loop the channel belongs to.
        if self._channel is None:
            options = [
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.enable_http_proxy", 0),
            ]
            if self.tls:
                creds = grpc.ssl_channel_credentials()
                self._channel = grpc.aio.secure_channel(self.target, creds, options=options)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=options)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    async def _call(
        self,
        what: str,
        method: Callable[..., UnaryUnaryCall[Resp]],
        request: object,
        height: int | None,
    ) -> tuple[int, Resp]:
        metadata = ((HEIGHT_HEADER, str(height)),) if height else None
        try:
            call = method(request, timeout=self.timeout, metadata=metadata)
            response = await call
            headers = await call.initial_metadata()
        except grpc.aio.AioRpcError as e:
            raise _grpc_error(what, e) from e
        return _height_from(headers), response

    async def validators(self, height: int | None = None) -> AtHeight[tuple[Validator, ...]]:
        stub = staking_grpc.QueryStub(self._open())
        rejected: list[str] = []
        out: list[Validator] = []
        key = b""
        for _ in range(MAX_PAGES):
            request = staking_query_pb2.QueryValidatorsRequest(
                pagination=pagination_pb2.PageRequest(key=key, limit=self.page_limit)
            )
            at, page = await self._call("staking Validators", stub.Validators, request, height)
            height = height or at
            out += _collect(list(page.validators), validator_from_proto, rejected)
            key = page.pagination.next_key
            if not key:
                break
        return AtHeight(height or 0, _sorted_validators(out), tuple(rejected))

    async def validator(
        self, operator: OperatorAddress, height: int | None = None
    ) -> AtHeight[Validator | None]:
        stub = staking_grpc.QueryStub(self._open())
        request = staking_query_pb2.QueryValidatorRequest(validator_addr=operator)
        try:
            at, response = await self._call("staking Validator", stub.Validator, request, height)
        except QueryFailed as e:
            if e.not_found:
                return AtHeight(height or 0, None)
            raise
        try:
            return AtHeight(at, validator_from_proto(response.validator))
        except InvalidChainData as e:
            return AtHeight(at, None, (str(e),))

    async def consumer_chains(
        self, height: int | None = None
    ) -> AtHeight[tuple[ConsumerChain, ...]]:
        stub = provider_grpc.QueryStub(self._open())
        rejected: list[str] = []
        out: list[ConsumerChain] = []
        key = b""
        for _ in range(MAX_PAGES):
            request = provider_query_pb2.QueryConsumerChainsRequest(
                pagination=pagination_pb2.PageRequest(key=key, limit=self.page_limit)
            )
            at, page = await self._call(
                "provider QueryConsumerChains", stub.QueryConsumerChains, request, height
            )
            height = height or at
            out += _collect(list(page.chains), consumer_from_proto, rejected)
            key = page.pagination.next_key
            if not key:
                break
        return AtHeight(height or 0, _sorted_consumers(out), tuple(rejected))

    async def opted_in(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsensusAddress, ...]]:
        stub = provider_grpc.QueryStub(self._open())
        request = provider_query_pb2.QueryConsumerChainOptedInValidatorsRequest(
            consumer_id=consumer_id
        )
        at, response = await self._call(
            "provider QueryConsumerChainOptedInValidators",
            stub.QueryConsumerChainOptedInValidators,
            request,
            height,
        )
        addresses = opted_in_addresses(
            list(response.validators_provider_addresses), f"consumer {consumer_id}"
        )
        return AtHeight(at, addresses)

    async def consumer_validators(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsumerValidator, ...]]:
        stub = provider_grpc.QueryStub(self._open())
        request = provider_query_pb2.QueryConsumerValidatorsRequest(consumer_id=consumer_id)
        at, response = await self._call(
            "provider QueryConsumerValidators", stub.QueryConsumerValidators, request, height
        )
        pairs = [(v.provider_address, v.consumer_power) for v in response.validators]
        return AtHeight(at, consumer_validators(pairs, f"consumer {consumer_id}"))

    async def spawn_time(self, consumer_id: ConsumerId, height: int | None = None) -> AtHeight[str]:
        stub = provider_grpc.QueryStub(self._open())
        request = provider_query_pb2.QueryConsumerChainRequest(consumer_id=consumer_id)
        at, response = await self._call(
            "provider QueryConsumerChain", stub.QueryConsumerChain, request, height
        )
        if not response.HasField("init_params") or not response.init_params.HasField("spawn_time"):
            return AtHeight(at, "")
        t = response.init_params.spawn_time
        return AtHeight(at, spawn_time_text(t.seconds, t.nanos, f"consumer {consumer_id}"))

    async def blocks_per_epoch(self, height: int | None = None) -> AtHeight[int]:
        stub = provider_grpc.QueryStub(self._open())
        at, response = await self._call(
            "provider QueryParams",
            stub.QueryParams,
            provider_query_pb2.QueryParamsRequest(),
            height,
        )
        return AtHeight(at, _epoch_length(response.params.blocks_per_epoch))


def _epoch_length(value: int) -> int:
    if not 0 < value < 2**63:
        raise QueryFailed("provider params", f"blocks_per_epoch {value} is not positive")
    return value


def _height_from(headers: Any) -> int:
    for key, value in headers or ():
        if str(key).lower() == HEIGHT_HEADER and str(value).isdigit():
            return int(value)
    return 0


def _grpc_error(what: str, e: grpc.aio.AioRpcError) -> ChainMonitorError:
    code = e.code()
    detail = f"{code.name}: {e.details() or ''}"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ChainUnavailable(f"{what}: {detail}")
    return QueryFailed(
        what,
        detail,
        transient=grpc_code_transient(code),
        not_found=code == grpc.StatusCode.NOT_FOUND,
    )


# ---- REST -----------------------------------------------------------------------


class RestQueries:
    """ChainQueries over the node's REST API (grpc-gateway), urllib in a worker thread."""

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, page_limit: int = DEFAULT_PAGE_LIMIT
    ) -> None:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise QueryFailed("REST", f"not an http(s) URL: {url!r}", transient=False)
        path = parts.path.rstrip("/")
        self.base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.name = f"rest {self.base}"
        self.timeout = timeout
        self.page_limit = page_limit
        # No proxies: the node is addressed directly, and an environment proxy
        # would silently route chain queries elsewhere.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    async def close(self) -> None:
        return None

    def _get_sync(
        self, what: str, path: str, params: Mapping[str, str], height: int | None
    ) -> tuple[int, Mapping[str, object]]:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Accept": "application/json"}
        if height:
            headers[HEIGHT_HEADER] = str(height)
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) checked above
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read()
                at = response.headers.get("Grpc-Metadata-X-Cosmos-Block-Height", "")
        except urllib.error.HTTPError as e:
            try:
                text = e.read(2000).decode(errors="replace")
            except TRANSPORT_ERRORS:
                text = "(answer cut off)"
            raise QueryFailed(
                what,
                f"HTTP {e.code}: {_rest_message(text)}",
                transient=http_status_transient(e.code),
                not_found=e.code == 404,
            ) from e
        except TRANSPORT_ERRORS as e:
            # Refused, reset, cut mid-answer (IncompleteRead), garbage (BadStatusLine),
            # TLS trouble: this node, not the question; another node may answer.
            fault = classify(e)
            transient = fault.transient if fault is not None else True
            reason = fault.reason if fault is not None else type(e).__name__
            raise ChainUnavailable(f"{what}: {reason}", transient=transient) from e
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise QueryFailed(what, "answer is not JSON") from e
        if not isinstance(doc, dict):
            raise QueryFailed(what, "answer is not a JSON object")
        return (int(at) if at.isdigit() else 0), doc

    async def _get(
        self, what: str, path: str, params: Mapping[str, str], height: int | None
    ) -> tuple[int, Mapping[str, object]]:
        return await asyncio.to_thread(self._get_sync, what, path, params, height)

    async def _pages(
        self, what: str, path: str, list_key: str, height: int | None
    ) -> tuple[int, list[Mapping[str, object]]]:
        items: list[Mapping[str, object]] = []
        key = ""
        for _ in range(MAX_PAGES):
            params = {"pagination.limit": str(self.page_limit)}
            if key:
                params["pagination.key"] = key
            at, doc = await self._get(what, path, params, height)
            height = height or at
            page = doc.get(list_key)
            if not isinstance(page, list):
                raise QueryFailed(what, f"answer has no {list_key} list")
            items += [item if isinstance(item, dict) else {} for item in page]
            pagination = doc.get("pagination")
            next_key = pagination.get("next_key") if isinstance(pagination, dict) else None
            if not next_key:
                break
            key = str(next_key)
            _check_base64(what, key)
        return height or 0, items

    async def validators(self, height: int | None = None) -> AtHeight[tuple[Validator, ...]]:
        at, items = await self._pages(
            "staking Validators", "/cosmos/staking/v1beta1/validators", "validators", height
        )
        rejected: list[str] = []
        out = _collect(items, validator_from_json, rejected)
        return AtHeight(at, _sorted_validators(out), tuple(rejected))

    async def validator(
        self, operator: OperatorAddress, height: int | None = None
    ) -> AtHeight[Validator | None]:
        path = f"/cosmos/staking/v1beta1/validators/{urllib.parse.quote(operator)}"
        try:
            at, doc = await self._get("staking Validator", path, {}, height)
        except QueryFailed as e:
            if e.not_found:
                return AtHeight(height or 0, None)
            raise
        raw = doc.get("validator")
        try:
            if not isinstance(raw, dict):
                raise InvalidChainData(f"validator {operator}", "answer has no validator")
            return AtHeight(at, validator_from_json(raw))
        except InvalidChainData as e:
            return AtHeight(at, None, (str(e),))

    async def consumer_chains(
        self, height: int | None = None
    ) -> AtHeight[tuple[ConsumerChain, ...]]:
        at, items = await self._pages(
            "provider consumer_chains",
            "/interchain_security/ccv/provider/consumer_chains/CONSUMER_PHASE_UNSPECIFIED",
            "chains",
            height,
        )
        rejected: list[str] = []
        out = _collect(items, consumer_from_json, rejected)
        return AtHeight(at, _sorted_consumers(out), tuple(rejected))

    async def opted_in(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsensusAddress, ...]]:
        at, doc = await self._get(
            "provider opted_in_validators",
            f"/interchain_security/ccv/provider/opted_in_validators/{consumer_id}",
            {},
            height,
        )
        values = doc.get("validators_provider_addresses") or []
        if not isinstance(values, list):
            raise QueryFailed("provider opted_in_validators", "answer has no address list")
        return AtHeight(at, opted_in_addresses(values, f"consumer {consumer_id}"))

    async def consumer_validators(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsumerValidator, ...]]:
        what = "provider consumer_validators"
        at, doc = await self._get(
            what, f"/interchain_security/ccv/provider/consumer_validators/{consumer_id}", {}, height
        )
        values = doc.get("validators") or []
        if not isinstance(values, list):
            raise QueryFailed(what, "answer has no validator list")
        pairs = [
            (v.get("provider_address"), v.get("consumer_power", "0"))
            if isinstance(v, dict)
            else (None, None)
            for v in values
        ]
        return AtHeight(at, consumer_validators(pairs, f"consumer {consumer_id}"))

    async def spawn_time(self, consumer_id: ConsumerId, height: int | None = None) -> AtHeight[str]:
        what = "provider consumer_chain"
        at, doc = await self._get(
            what, f"/interchain_security/ccv/provider/consumer_chain/{consumer_id}", {}, height
        )
        params = doc.get("init_params")
        raw = params.get("spawn_time") if isinstance(params, dict) else None
        return AtHeight(at, spawn_time_from_json(raw, f"consumer {consumer_id}"))

    async def blocks_per_epoch(self, height: int | None = None) -> AtHeight[int]:
        at, doc = await self._get(
            "provider params", "/interchain_security/ccv/provider/params", {}, height
        )
        params = doc.get("params")
        raw = params.get("blocks_per_epoch") if isinstance(params, dict) else None
        if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw).isdigit():
            raise QueryFailed("provider params", "answer has no blocks_per_epoch")
        return AtHeight(at, _epoch_length(int(raw)))


def _rest_message(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return str(doc["message"])[:300]
    return text[:300]


def _check_base64(what: str, key: str) -> None:
    try:
        base64.b64decode(key, validate=True)
    except ValueError as e:
        raise QueryFailed(what, "pagination.next_key is not base64") from e


# ---- failover -------------------------------------------------------------------


class FallbackQueries:
    """Ask `primary`; when it is unreachable (a transient error), ask each fallback in turn."""

    def __init__(self, primary: ChainQueries, *fallbacks: ChainQueries) -> None:
        self.sources = (primary, *fallbacks)
        self.name = " -> ".join(s.name for s in self.sources)

    async def _first(self, ask: Callable[[ChainQueries], Awaitable[T]]) -> T:
        last: ChainMonitorError | None = None
        for source in self.sources:
            try:
                return await ask(source)
            except ChainMonitorError as e:
                # An unreachable node (even for good: a bad certificate) is that node's
                # problem; any other permanent error is the chain's answer, the same on all.
                if not e.transient and not isinstance(e, ChainUnavailable):
                    raise
                log.warning("query via %s failed (%s); trying the next source", source.name, e)
                last = e
        assert last is not None
        raise last

    async def validators(self, height: int | None = None) -> AtHeight[tuple[Validator, ...]]:
        return await self._first(lambda s: s.validators(height))

    async def validator(
        self, operator: OperatorAddress, height: int | None = None
    ) -> AtHeight[Validator | None]:
        return await self._first(lambda s: s.validator(operator, height))

    async def consumer_chains(
        self, height: int | None = None
    ) -> AtHeight[tuple[ConsumerChain, ...]]:
        return await self._first(lambda s: s.consumer_chains(height))

    async def opted_in(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsensusAddress, ...]]:
        return await self._first(lambda s: s.opted_in(consumer_id, height))

    async def consumer_validators(
        self, consumer_id: ConsumerId, height: int | None = None
    ) -> AtHeight[tuple[ConsumerValidator, ...]]:
        return await self._first(lambda s: s.consumer_validators(consumer_id, height))

    async def spawn_time(self, consumer_id: ConsumerId, height: int | None = None) -> AtHeight[str]:
        return await self._first(lambda s: s.spawn_time(consumer_id, height))

    async def blocks_per_epoch(self, height: int | None = None) -> AtHeight[int]:
        return await self._first(lambda s: s.blocks_per_epoch(height))

    async def close(self) -> None:
        for source in self.sources:
            await source.close()


def _sorted_validators(items: Sequence[Validator]) -> tuple[Validator, ...]:
    return tuple(sorted({v.operator: v for v in items}.values(), key=lambda v: v.operator))


def _sorted_consumers(items: Sequence[ConsumerChain]) -> tuple[ConsumerChain, ...]:
    unique = {c.consumer_id: c for c in items}
    return tuple(sorted(unique.values(), key=lambda c: int(c.consumer_id)))
