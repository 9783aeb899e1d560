"""The one error tree of lbmanager, so callers can tell a retry from a report.

Every error says at the raise site whether retrying can help (`transient`).
Kubernetes client and urllib3 exceptions never leave the package: they are
wrapped here with the operation that failed and chained with `from`. Messages
name objects, ports and keys; they never carry credentials or request headers.
"""

from __future__ import annotations


class LbManagerError(Exception):
    """Base of every error lbmanager raises or reports."""

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient


class InvalidSettings(LbManagerError):
    """A setting cannot work (bad name, owner id, shard size); permanent."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"invalid lbmanager setting {setting}: {problem}", transient=False)
        self.setting = setting
        self.problem = problem


# ---- Kubernetes API ---------------------------------------------------------


class KubernetesError(LbManagerError):
    """A request to the Kubernetes API failed."""

    def __init__(
        self, operation: str, problem: str, *, status: int | None = None, transient: bool
    ) -> None:
        where = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"{operation}: {problem}{where}", transient=transient)
        self.operation = operation
        self.problem = problem
        self.status = status


class KubernetesUnavailable(KubernetesError):
    """The API server could not be reached or answered 5xx/429; transient."""

    def __init__(self, operation: str, problem: str, *, status: int | None = None) -> None:
        super().__init__(operation, problem, status=status, transient=True)


class KubernetesConflict(KubernetesError):
    """409: the object changed since it was read, or already exists; transient."""

    def __init__(self, operation: str, problem: str) -> None:
        super().__init__(operation, problem, status=409, transient=True)


class KubernetesNotFound(KubernetesError):
    """404 on an object that was expected to exist; transient (state moved on)."""

    def __init__(self, operation: str, problem: str) -> None:
        super().__init__(operation, problem, status=404, transient=True)


class KubernetesRejected(KubernetesError):
    """The API server refused the request (400, 401, 403, 422, ...); permanent."""

    def __init__(self, operation: str, problem: str, *, status: int | None) -> None:
        super().__init__(operation, problem, status=status, transient=False)


class WatchExpired(KubernetesError):
    """410 Gone on a watch: the resource version is too old; relist (transient)."""

    def __init__(self, operation: str, problem: str) -> None:
        super().__init__(operation, problem, status=410, transient=True)


class ConflictRetriesExhausted(LbManagerError):
    """Optimistic concurrency kept losing to other writers; transient."""

    def __init__(self, what: str, attempts: int) -> None:
        super().__init__(
            f"{what}: still conflicting with concurrent writers after {attempts} attempts",
            transient=True,
        )
        self.attempts = attempts


class OwnershipRecordCorrupt(LbManagerError):
    """A Service's ownership annotation cannot be read; permanent until fixed by hand.

    Without it nobody can tell this service's ports from foreign ones, so the
    reconcile stops rather than guess (guessing could delete a foreign port).
    """

    def __init__(self, service: str, annotation: str, problem: str) -> None:
        super().__init__(
            f"Service {service}: annotation {annotation} is unreadable ({problem}); "
            "repair or remove it by hand",
            transient=False,
        )
        self.service = service


# ---- per chain --------------------------------------------------------------


class ChainRefused(LbManagerError):
    """One chain of the desired state cannot be exposed; the others proceed."""

    def __init__(self, key: str, problem: str, *, transient: bool = False) -> None:
        super().__init__(f"chain {key!r}: {problem}", transient=transient)
        self.key = key
        self.problem = problem


class InvalidChainSpec(ChainRefused):
    """The chain's desired ports or selector are malformed; permanent."""


class PortNumberTaken(ChainRefused):
    """A desired port number is already used in the Service; permanent until freed."""

    def __init__(self, key: str, port: int, protocol: str, service: str, holder: str) -> None:
        super().__init__(
            key, f"port {port}/{protocol} in Service {service} is already used by {holder}"
        )
        self.port = port
        self.protocol = protocol
        self.service = service
        self.holder = holder


class PortNameTaken(ChainRefused):
    """A port with the chain's derived name exists but this service did not create it."""

    def __init__(self, key: str, name: str, service: str) -> None:
        super().__init__(
            key,
            f"Service {service} already has a port named {name} that lbmanager did not create",
        )
        self.name = name
        self.service = service


class KeyExposedByOtherOwner(ChainRefused):
    """Another reconciler (owner id) already exposes this key; permanent until it lets go."""

    def __init__(self, key: str, owner: str, service: str) -> None:
        super().__init__(key, f"already exposed by owner {owner!r} in Service {service}")
        self.owner = owner
        self.service = service


class ShardFull(ChainRefused):
    """The chain's ports do not fit the per-Service port limit; permanent."""

    def __init__(self, key: str, service: str, needed: int, limit: int) -> None:
        super().__init__(
            key,
            f"{needed} port(s) do not fit in Service {service} "
            f"(max_ports_per_service={limit}); the chain stays where it is",
        )
        self.service = service
        self.needed = needed
        self.limit = limit


class SliceNameTaken(ChainRefused):
    """An EndpointSlice with the chain's derived name exists and is not ours; permanent."""

    def __init__(self, key: str, name: str) -> None:
        super().__init__(key, f"EndpointSlice {name} exists and is not managed by lbmanager")
        self.name = name


class TooManyEndpoints(ChainRefused):
    """More pod addresses than one EndpointSlice may hold; permanent until pods go."""

    def __init__(self, key: str, family: str, count: int, limit: int) -> None:
        super().__init__(key, f"{count} {family} endpoints exceed the slice limit of {limit}")
        self.count = count
        self.limit = limit


class EndpointsNotApplied(ChainRefused):
    """Writing the chain's EndpointSlices failed; transient if the cause is."""

    def __init__(self, key: str, cause: LbManagerError) -> None:
        super().__init__(key, f"EndpointSlice update failed: {cause}", transient=cause.transient)
        self.cause = cause


# ---- MetalLB planning -------------------------------------------------------


class MetalLBPlanError(LbManagerError):
    """MetalLB pools cannot be planned from the given network; permanent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class InspectOutputInvalid(MetalLBPlanError):
    """The `docker network inspect` output is not what docker prints."""


class NoIPv4Subnet(MetalLBPlanError):
    """The network has no IPv4 subnet (MetalLB L2 pools need one here)."""


class NotEnoughAddresses(MetalLBPlanError):
    """The subnet has too few free addresses for every cluster's pool."""

    def __init__(self, subnet: str, cluster: str, size: int, free: int) -> None:
        super().__init__(
            f"subnet {subnet} has no free run of {size} addresses left for cluster {cluster!r} "
            f"({free} free addresses remain in total outside reserved and container addresses)"
        )
        self.subnet = subnet
        self.cluster = cluster
        self.size = size
        self.free = free
