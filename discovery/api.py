"""The service's gRPC API (`proto/ics/discovery/v1`): what this cluster knows, read-only.

Operators, dashboards and the consumer node tooling ask one cluster's service
for its ports, peers and the validator registry it sees, without Kubernetes
or chain credentials. Every answer is rendered by a pure function from the
current `DiscoveryState` (so answers are deterministic and testable without a
server); the server is a thin `grpc.aio` shell around them, plus the standard
gRPC health service, server reflection (so generic clients such as grpcurl
list, describe and call it without the .proto files; can be turned off) and
optional TLS or mutual TLS from certificate files.
`WatchPeers` streams from the `StateStore`, so it costs nothing while nothing
changes, a stream wakes only when its own chain's peers change, and a slow
reader only ever skips to the latest list. Both are bounded: at most
`max_concurrent_rpcs` calls at once (gRPC answers RESOURCE_EXHAUSTED beyond it)
and at most `max_streams` open WatchPeers streams (the next one is refused with
RESOURCE_EXHAUSTED, and counted), so clients cannot exhaust the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Counter, Gauge

from discovery._proto.ics.discovery.v1 import discovery_pb2 as pb
from discovery.endpoints import EndpointRejection
from discovery.errors import DiscoveryError, InvalidChainId, quote_untrusted
from discovery.state import (
    ChainPeers,
    ChainPortsView,
    ChainView,
    DiscoveryState,
    StateStore,
    ValidatorView,
    watched_peers,
)
from discovery.types import parse_chain_id

log = logging.getLogger(__name__)

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["Discovery"].full_name


class ApiError(DiscoveryError):
    """The API server cannot start: bad address, unreadable certificate files (permanent)."""

    def __init__(self, what: str, problem: str) -> None:
        self.what = what
        self.problem = problem
        super().__init__(f"gRPC API {what}: {problem}")


# --- rendering (pure) --------------------------------------------------------


def ports_message(ports: Mapping[str, int]) -> pb.Ports:
    """Ports by kind name; kinds the scheme lacks stay 0."""
    return pb.Ports(
        p2p=ports.get("p2p", 0),
        rpc=ports.get("rpc", 0),
        grpc=ports.get("grpc", 0),
        grpc_web=ports.get("grpc_web", 0),
        rest=ports.get("rest", 0),
    )


def get_ports_response(chain: ChainView, ports: ChainPortsView) -> pb.GetPortsResponse:
    return pb.GetPortsResponse(
        chain_id=chain.chain_id,
        consumer_id=chain.consumer_id,
        scheme=ports.scheme,
        ports=ports_message(ports.ports),
        derived=ports_message(ports.derived),
        moved=list(ports.moved),
    )


def consumer_message(chain: ChainView) -> pb.Consumer:
    msg = pb.Consumer(
        consumer_id=chain.consumer_id,
        chain_id=chain.chain_id,
        phase=chain.phase,
        opted_in=chain.opted_in,
        exposed=chain.exposed,
        peer_count=len(chain.peers.peers) if chain.peers else 0,
        left_out_count=len(chain.peers.left_out) if chain.peers else 0,
        problem=chain.problem,
        notify=chain.notify,
        node_resources=chain.node_resources,
        node_peers_current=chain.node_peers_current,
    )
    if chain.ports is not None:
        msg.ports.CopyFrom(ports_message(chain.ports.ports))
    return msg


def list_consumers_response(state: DiscoveryState) -> pb.ListConsumersResponse:
    return pb.ListConsumersResponse(
        height=state.height,
        operator_address=state.operator_address,
        consumers=[consumer_message(c) for c in state.chains],
    )


def peer_set_message(peers: ChainPeers, height: int) -> pb.PeerSet:
    return pb.PeerSet(
        chain_id=peers.chain_id,
        consumer_id=peers.consumer_id,
        peers=[
            pb.Peer(
                operator_address=p.operator_address,
                moniker=p.moniker,
                node_id=p.node_id,
                host=p.host,
                port=p.port,
                entry=p.checked_entry(),
            )
            for p in peers.peers
        ],
        left_out=[
            pb.LeftOutValidator(
                consensus_address=x.consensus_address,
                operator_address=x.operator_address,
                moniker=x.moniker,
                reason=x.reason,
                detail=x.detail,
            )
            for x in peers.left_out
        ],
        persistent_peers=peers.persistent_peers(),
        peers_hash=peers.peers_hash(),
        height=height,
    )


def watch_message(state: DiscoveryState, chain_id: str) -> pb.WatchPeersResponse:
    """What `WatchPeers` sends for `chain_id` in `state`."""
    chain = state.chain(chain_id)
    if chain is None or chain.peers is None:
        return pb.WatchPeersResponse(present=False, peers=pb.PeerSet(chain_id=chain_id))
    return pb.WatchPeersResponse(present=True, peers=peer_set_message(chain.peers, state.height))


def watched_content(state: DiscoveryState, chain_id: str) -> ChainPeers | None:
    """The part of `state` a `WatchPeers` stream reports changes of (not the height)."""
    return watched_peers(state, chain_id)


def streams_exhausted_message(limit: int) -> str:
    """Why a WatchPeers stream beyond the limit is refused (safe to send)."""
    return (
        f"too many WatchPeers streams: {limit} are open, the most this server allows "
        "(setting grpc_max_streams); close one or retry later"
    )


def validator_message(v: ValidatorView) -> pb.Validator:
    msg = pb.Validator(
        operator_address=v.operator_address,
        consensus_address=v.consensus_address,
        moniker=v.moniker,
        status=v.status,
        jailed=v.jailed,
    )
    if isinstance(v.endpoint, EndpointRejection):
        msg.rejected.CopyFrom(
            pb.RejectedEndpoint(reason=v.endpoint.reason.value, detail=v.endpoint.detail)
        )
    else:
        msg.accepted.CopyFrom(
            pb.AcceptedEndpoint(
                host=v.endpoint.host.name,
                host_kind=v.endpoint.host.kind.value,
                node_id=v.endpoint.node_id or "",
            )
        )
    return msg


def list_validators_response(state: DiscoveryState) -> pb.ListValidatorsResponse:
    return pb.ListValidatorsResponse(
        height=state.height, validators=[validator_message(v) for v in state.validators]
    )


# --- the servicer ------------------------------------------------------------


class _Abort(Exception):
    """A request the servicer refuses: status code and a message safe to send."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _requested_chain(chain_id: str) -> str:
    try:
        return parse_chain_id(chain_id)
    except InvalidChainId as e:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from e


def _not_found(what: str, chain_id: str) -> _Abort:
    message = f"no {what} for chain {quote_untrusted(chain_id)} in this cluster"
    return _Abort(grpc.StatusCode.NOT_FOUND, message)


class ApiMetrics:
    """The API's own metrics, in the service's registry (or a private one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.watch_streams = Gauge(
            "ics_discovery_api_watch_streams", "WatchPeers streams open now.", registry=r
        )
        self.watch_streams_refused = Counter(
            "ics_discovery_api_watch_streams_refused",
            "WatchPeers streams refused with RESOURCE_EXHAUSTED (grpc_max_streams reached).",
            registry=r,
        )


class DiscoveryServicer:
    """`ics.discovery.v1.Discovery` over a `StateStore`.

    At most `max_streams` WatchPeers streams are open at once (None: no limit).
    """

    def __init__(
        self,
        store: StateStore,
        *,
        max_streams: int | None = None,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.store = store
        self.max_streams = max_streams
        self.metrics = metrics if metrics is not None else ApiMetrics()
        self.open_streams = 0
        self.refused_streams = 0
        # Set when the server stops, so open WatchPeers streams end at once.
        self.stopped = asyncio.Event()

    async def get_ports(self, request: pb.GetPortsRequest, _: Any) -> pb.GetPortsResponse:
        chain_id = _requested_chain(request.chain_id)
        chain = self.store.current.chain(chain_id)
        if chain is None or chain.ports is None:
            raise _not_found("ports", chain_id)
        return get_ports_response(chain, chain.ports)

    async def list_consumers(
        self, _request: pb.ListConsumersRequest, _: Any
    ) -> pb.ListConsumersResponse:
        return list_consumers_response(self.store.current)

    async def get_peers(self, request: pb.GetPeersRequest, _: Any) -> pb.GetPeersResponse:
        chain_id = _requested_chain(request.chain_id)
        state = self.store.current
        chain = state.chain(chain_id)
        if chain is None or chain.peers is None:
            raise _not_found("peer list", chain_id)
        return pb.GetPeersResponse(peers=peer_set_message(chain.peers, state.height))

    async def watch_peers(
        self, request: pb.WatchPeersRequest, _: Any
    ) -> AsyncIterator[pb.WatchPeersResponse]:
        chain_id = _requested_chain(request.chain_id)
        if self.max_streams is not None and self.open_streams >= self.max_streams:
            self.refused_streams += 1
            self.metrics.watch_streams_refused.inc()
            raise _Abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, streams_exhausted_message(self.max_streams)
            )
        self.open_streams += 1
        self.metrics.watch_streams.set(self.open_streams)
        try:
            # The store yields the current state, then one per change of this chain's peers.
            async for state in self.store.peer_changes(chain_id, self.stopped):
                yield watch_message(state, chain_id)
        finally:
            self.open_streams -= 1
            self.metrics.watch_streams.set(self.open_streams)

    async def list_validators(
        self, _request: pb.ListValidatorsRequest, _: Any
    ) -> pb.ListValidatorsResponse:
        return list_validators_response(self.store.current)


RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)


def _unary(
    method: Callable[[RequestT, Any], Awaitable[ResponseT]],
) -> Callable[[RequestT, Any], Awaitable[ResponseT | None]]:
    async def handle(request: RequestT, context: Any) -> ResponseT | None:
        try:
            return await method(request, context)
        except _Abort as e:
            await context.abort(e.code, e.message)
            return None

    return handle


def _stream(
    method: Callable[[RequestT, Any], AsyncIterator[ResponseT]],
) -> Callable[[RequestT, Any], AsyncIterator[ResponseT]]:
    async def handle(request: RequestT, context: Any) -> AsyncIterator[ResponseT]:
        try:
            async for item in method(request, context):
                yield item
        except _Abort as e:
            await context.abort(e.code, e.message)

    return handle


def method_handlers(servicer: DiscoveryServicer) -> dict[str, Any]:
    """gRPC method handlers by method name; names and messages come from the descriptor."""
    unary, stream = grpc.unary_unary_rpc_method_handler, grpc.unary_stream_rpc_method_handler
    impls: dict[str, tuple[Any, Any]] = {
        "GetPorts": (unary, _unary(servicer.get_ports)),
        "ListConsumers": (unary, _unary(servicer.list_consumers)),
        "GetPeers": (unary, _unary(servicer.get_peers)),
        "WatchPeers": (stream, _stream(servicer.watch_peers)),
        "ListValidators": (unary, _unary(servicer.list_validators)),
    }
    service = pb.DESCRIPTOR.services_by_name["Discovery"]
    handlers: dict[str, Any] = {}
    for method in service.methods:
        factory, impl = impls[method.name]
        request_cls = getattr(pb, method.input_type.name)
        response_cls = getattr(pb, method.output_type.name)
        handlers[method.name] = factory(
            impl,
            request_deserializer=request_cls.FromString,
            response_serializer=response_cls.SerializeToString,
        )
    return handlers


# --- TLS ---------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for the server: certificate chain and key; a client CA turns on mutual TLS."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


def _read(what: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ApiError(what, f"cannot read {path}: {e.strerror or e}") from e


def server_credentials(tls: TlsFiles) -> Any:
    """gRPC server credentials from `tls` (reads the files; call before the loop or in a thread)."""
    cert = _read("TLS certificate", tls.cert_file)
    key = _read("TLS key", tls.key_file)
    ca = _read("client CA", tls.client_ca_file) if tls.client_ca_file else None
    try:
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )
    except (ValueError, TypeError, RuntimeError) as e:
        raise ApiError("TLS", f"certificate files rejected: {e}") from e


# --- the server --------------------------------------------------------------


def reflected_services() -> tuple[str, ...]:
    """The services server reflection lists: Discovery, health and reflection itself."""
    health = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    return (SERVICE_NAME, health, reflection.SERVICE_NAME)


def reflection_pool() -> descriptor_pool.DescriptorPool:
    """One pool with every served service's file and its imports, for reflection to answer from.

    The generated API modules live in a private pool and the health and
    reflection services in protobuf's default one; reflection reads a single
    pool, so their files are copied (dependencies first) into a new one.
    """
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)
        added.add(file.name)

    from grpc_reflection.v1alpha import reflection_pb2

    for file in (pb.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        add(file)
    return pool


class ApiServer:
    """The gRPC server: the Discovery service and `grpc.health.v1.Health`.

    Health reports NOT_SERVING until `set_serving(True)` (the service calls it
    once it has served its first state) and during shutdown.
    """

    def __init__(
        self,
        store: StateStore,
        listen: str,
        *,
        tls: TlsFiles | None = None,
        credentials: Any = None,
        reflection: bool = True,
        max_concurrent_rpcs: int | None = None,
        max_streams: int | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.listen = listen
        self.tls = tls
        self.reflection = reflection
        self.max_concurrent_rpcs = max_concurrent_rpcs
        self.max_streams = max_streams
        self.metrics = ApiMetrics(registry)
        self._credentials = credentials
        self._server: Any = None
        self._servicer: DiscoveryServicer | None = None
        self._health = HealthServicer()
        self.port = 0

    async def start(self) -> int:
        """Bind and start serving; returns the bound port (useful with port 0)."""
        credentials = self._credentials
        if credentials is None and self.tls is not None:
            credentials = server_credentials(self.tls)
        # gRPC sets SO_REUSEPORT by default: a second server would then share the
        # port silently instead of failing to bind.
        # Beyond max_concurrent_rpcs, gRPC itself answers RESOURCE_EXHAUSTED.
        server = grpc.aio.server(
            options=[("grpc.so_reuseport", 0)], maximum_concurrent_rpcs=self.max_concurrent_rpcs
        )
        self._servicer = DiscoveryServicer(
            self.store, max_streams=self.max_streams, metrics=self.metrics
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, method_handlers(self._servicer)),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if self.reflection:
            reflection.enable_server_reflection(
                reflected_services(), server, pool=reflection_pool()
            )
        await self._set_health(serving=False)
        try:
            if credentials is None:
                port = server.add_insecure_port(self.listen)
            else:
                port = server.add_secure_port(self.listen, credentials)
        except RuntimeError as e:
            await server.stop(None)
            raise ApiError("listen address", f"cannot bind {self.listen}: {e}") from e
        if not port:
            await server.stop(None)
            raise ApiError("listen address", f"cannot bind {self.listen}")
        await server.start()
        self._server = server
        self.port = int(port)
        log.info(
            "gRPC API listening",
            extra={
                "address": self.listen,
                "port": self.port,
                "tls": self._tls_mode(),
                "reflection": self.reflection,
                "max_concurrent_rpcs": self.max_concurrent_rpcs,
                "max_streams": self.max_streams,
            },
        )
        return self.port

    @property
    def servicer(self) -> DiscoveryServicer | None:
        """The Discovery servicer while the server runs (open and refused stream counts)."""
        return self._servicer

    def _tls_mode(self) -> str:
        if self.tls is None:
            return "tls" if self._credentials is not None else "off"
        return "mutual" if self.tls.client_ca_file else "tls"

    async def _set_health(self, *, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self._health.set(name, status)

    async def set_serving(self, serving: bool) -> None:
        """What the health service reports for this server and the Discovery service."""
        await self._set_health(serving=serving)

    async def stop(self, grace: float = 2.0) -> None:
        """Report NOT_SERVING, end watch streams, and stop within `grace` seconds."""
        if self._server is None:
            return
        await self._health.enter_graceful_shutdown()
        if self._servicer is not None:
            self._servicer.stopped.set()
            self.store.wake()
        await self._server.stop(grace)
        self._server = None
