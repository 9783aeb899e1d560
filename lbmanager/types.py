"""Plain data in and out of lbmanager: the desired state, settings and the reconcile report.

lbmanager knows nothing of chains: the caller hands it, per exposed "chain", an
opaque key, named ports with numbers and a pod selector, and gets back what
was exposed where and what was refused. Raw Kubernetes payloads are typed as
TypedDicts where the code reads them.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NewType, TypeAlias

from .errors import InvalidSettings, LbManagerError
from .k8snames import DNS_LABEL_MAX, is_dns1035_label, is_dns_label, is_label_value

ChainKey = NewType("ChainKey", str)
Protocol = Literal["TCP", "UDP", "SCTP"]
AddressFamily = Literal["IPv4", "IPv6"]
ADDRESS_FAMILIES: tuple[AddressFamily, ...] = ("IPv4", "IPv6")
PROTOCOLS: tuple[Protocol, ...] = ("TCP", "UDP", "SCTP")

# A Kubernetes object as JSON (what the API server sends and accepts).
RawObject: TypeAlias = dict[str, Any]


def _frozen_map(m: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(sorted(m.items())))


@dataclass(frozen=True)
class ExposedPort:
    """One port of one chain: `port` on the LoadBalancer, `target_port` on the pod."""

    name: str  # the port's role inside its chain, e.g. "p2p", "rpc"
    port: int
    target_port: int
    protocol: Protocol = "TCP"


@dataclass(frozen=True)
class PodSelector:
    """Which pods serve a chain: labels (server-side) plus annotations (checked here).

    `namespace` None means all namespaces, or, when `namespaces` is not empty,
    only those. Annotations exist so that keys which are not valid label values
    can still be matched exactly (see `pods.keyed_pod_selector`).
    """

    labels: Mapping[str, str]
    namespace: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    namespaces: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen_map(self.labels))
        object.__setattr__(self, "annotations", _frozen_map(self.annotations))
        object.__setattr__(self, "namespaces", frozenset(self.namespaces))

    def __hash__(self) -> int:
        return hash(
            (
                tuple(self.labels.items()),
                self.namespace,
                tuple(self.annotations.items()),
                tuple(sorted(self.namespaces)),
            )
        )

    def allows_namespace(self, namespace: str) -> bool:
        if self.namespace is not None:
            return namespace == self.namespace
        return not self.namespaces or namespace in self.namespaces


@dataclass(frozen=True)
class ChainExposure:
    """Desired exposure of one chain: stable key, its ports, and where its pods are."""

    key: ChainKey
    ports: tuple[ExposedPort, ...]
    pods: PodSelector


@dataclass(frozen=True)
class DesiredState:
    """The full desired state: every chain that should be exposed, sorted by key."""

    chains: tuple[ChainExposure, ...] = ()

    @classmethod
    def of(cls, chains: Iterable[ChainExposure]) -> DesiredState:
        return cls(tuple(sorted(chains, key=lambda c: c.key)))


@dataclass(frozen=True)
class LbSettings:
    """Where the shared LoadBalancer lives and how this reconciler identifies itself.

    `owner` tells this reconciler's ports and slices from those of other reconcilers
    writing to the same Service (see `reconciler`): one id per source of desired
    state, stable across restarts. `max_ports_per_service` enables sharding into
    `<service_name>-1`, `-2`, ... for load balancers with listener limits. The
    `new_service_*` settings apply only to Services lbmanager creates.
    """

    namespace: str = "provider"
    service_name: str = "p2p-loadbalancer"
    owner: str = "ics-discovery"
    max_ports_per_service: int | None = None
    new_service_allocate_node_ports: bool = False
    new_service_annotations: Mapping[str, str] = field(default_factory=dict)
    new_service_load_balancer_class: str | None = None
    write_concurrency: int = 8
    conflict_attempts: int = 20
    request_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "new_service_annotations", _frozen_map(self.new_service_annotations)
        )
        if not is_dns_label(self.namespace):
            raise InvalidSettings("namespace", f"{self.namespace!r} is not a DNS label")
        if not is_dns1035_label(self.service_name):
            raise InvalidSettings(
                "service_name", f"{self.service_name!r} is not a Service name (RFC 1035 label)"
            )
        if not self.owner or not is_label_value(self.owner):
            raise InvalidSettings(
                "owner", f"{self.owner!r} must be a non-empty Kubernetes label value"
            )
        if self.max_ports_per_service is not None:
            if self.max_ports_per_service < 1:
                raise InvalidSettings("max_ports_per_service", "must be at least 1")
            if len(self.service_name) > DNS_LABEL_MAX - 7:
                raise InvalidSettings(
                    "service_name", f"at most {DNS_LABEL_MAX - 7} characters when sharding"
                )
        if self.write_concurrency < 1:
            raise InvalidSettings("write_concurrency", "must be at least 1")
        if self.conflict_attempts < 1:
            raise InvalidSettings("conflict_attempts", "must be at least 1")
        if self.request_timeout_seconds <= 0:
            raise InvalidSettings("request_timeout_seconds", "must be positive")


# ---- results ----------------------------------------------------------------

ChainStatus = Literal["exposed", "kept", "refused"]


@dataclass(frozen=True)
class ChainOutcome:
    """What happened to one chain.

    `exposed`: cluster matches the desired state. `kept`: the change was refused
    and what already existed was left untouched. `refused`: nothing exposed.
    """

    key: ChainKey
    status: ChainStatus
    service: str | None
    port_names: tuple[tuple[str, str], ...] = ()  # (port role, Service port name), sorted
    slices: tuple[str, ...] = ()
    error: LbManagerError | None = None


@dataclass(frozen=True)
class ServiceOutcome:
    """One LoadBalancer Service after the reconcile, with its external addresses."""

    name: str
    uid: str
    ingress: tuple[str, ...]  # status.loadBalancer.ingress IPs or hostnames


@dataclass(frozen=True)
class ReconcileReport:
    """Result of one reconcile; `writes` counts create/update/delete requests sent."""

    chains: tuple[ChainOutcome, ...]
    services: tuple[ServiceOutcome, ...]
    removed: tuple[ChainKey, ...]
    writes: int
    conflicts: int
    # Failures removing slices of chains no longer desired (retried next time).
    cleanup_errors: tuple[LbManagerError, ...] = ()

    def outcome(self, key: str) -> ChainOutcome:
        for c in self.chains:
            if c.key == key:
                return c
        raise KeyError(key)

    @property
    def ok(self) -> bool:
        return not self.cleanup_errors and all(c.error is None for c in self.chains)
