"""What this cluster should look like, decided from one provider snapshot and nothing else.

The service loop is level-triggered: whatever woke it (an event, a pod, a
timer), it recomputes the whole desired state here and lets the apply steps
write only the differences. Keeping that decision in one pure function means a
missed event can cost latency but never correctness, and the same snapshot
gives the same bytes on every run and every validator. This is also where
chainmonitor's raw chain data (description text, phases as protobuf names)
becomes discovery's checked domain values: endpoints are read through
`endpoints.read_details`, ports come from `ports.allocate_ports` over the
chains that can need ports (launched and stopped ones, `ports.holds_ports`; a
chain that never launched takes none, so registering thousands cannot starve
a launched one), peers from `peers.build_peer_list` over the consumer chain's
validator set (validators with power there, at most `max_peers`), and
ConfigMaps from `peers_configmap.build_peers_configmap`. Where the consumer pods
run is the one input from Kubernetes (it decides the ConfigMaps' namespaces),
and it is passed in as plain data.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from chainmonitor.types import ChainSnapshot
from chainmonitor.types import ConsumerChain as ChainConsumer
from discovery.endpoints import EndpointPolicy, EndpointResult
from discovery.errors import DiscoveryError, PortSpaceExhausted, quote_untrusted
from discovery.interop import (
    Compat,
    MonikerNodeIds,
    allocate_for,
    moniker_node_ids,
    read_details_compat,
)
from discovery.peers import (
    DEFAULT_MAX_PEERS,
    ConsumerMembers,
    PeerList,
    ValidatorEndpoint,
    build_peer_list,
)
from discovery.peers_configmap import PeersConfigMap, build_peers_configmap, peers_configmap_name
from discovery.ports import (
    Allocation,
    ConsumerChainRef,
    PortKind,
    PortPlan,
    PortScheme,
    holds_ports,
)
from discovery.state import (
    ChainPeers,
    ChainPortsView,
    ChainView,
    DiscoveryState,
    Monikers,
    ValidatorView,
)
from discovery.types import (
    ChainId,
    ConsensusAddress,
    ConsumerId,
    ConsumerPhase,
    NotifyMode,
    OperatorAddress,
    consumer_id_number,
)
from lbmanager.consumer_pods import keyed_pod_selector
from lbmanager.types import ChainExposure, ChainKey, ExposedPort, PodSelector
from lbmanager.types import DesiredState as LbDesiredState

# Where each kind of port listens inside a consumer pod (CometBFT and Cosmos SDK defaults).
DEFAULT_TARGET_PORTS: Final[Mapping[PortKind, int]] = MappingProxyType(
    {
        PortKind.P2P: 26656,
        PortKind.RPC: 26657,
        PortKind.GRPC: 9090,
        PortKind.GRPC_WEB: 9091,
        PortKind.REST: 1317,
    }
)


@dataclass(frozen=True)
class ExposurePolicy:
    """The settings that shape the desired state (everything but the endpoint policy)."""

    scheme: PortScheme = PortScheme.DOCUMENT
    reserved_ports: frozenset[int] = frozenset()
    # ics-operator: Go's reserved ports, endpoint forms and moniker node IDs (interop.py).
    compat: Compat = Compat.NONE
    # Which kinds go on the shared LoadBalancer: peers only need P2P.
    exposed_kinds: tuple[PortKind, ...] = (PortKind.P2P,)
    target_ports: Mapping[PortKind, int] = field(default_factory=lambda: dict(DEFAULT_TARGET_PORTS))
    # None: consumer pods may run in any namespace.
    consumer_namespace: str | None = None
    # With consumer_namespace None: the only namespaces peers ConfigMaps may be
    # written in (and stale ones looked for); empty: any.
    peers_namespaces: frozenset[str] = frozenset()
    consumer_pod_labels: Mapping[str, str] = field(default_factory=dict)
    notify_default: NotifyMode = NotifyMode.NONE
    notify_modes: Mapping[str, NotifyMode] = field(default_factory=dict)
    # At most this many persistent peers per chain (highest power first).
    max_peers: int = DEFAULT_MAX_PEERS

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_ports", MappingProxyType(dict(self.target_ports)))
        object.__setattr__(
            self,
            "consumer_pod_labels",
            MappingProxyType(dict(sorted(self.consumer_pod_labels.items()))),
        )
        object.__setattr__(
            self, "notify_modes", MappingProxyType(dict(sorted(self.notify_modes.items())))
        )

    def notify_mode(self, chain_id: str) -> NotifyMode:
        return self.notify_modes.get(chain_id, self.notify_default)

    def pod_selector(self, chain_id: str) -> PodSelector:
        """The documented consumer pod convention, plus the operator's extra labels."""
        keyed = keyed_pod_selector(chain_id, self.consumer_namespace)
        return PodSelector(
            labels={**self.consumer_pod_labels, **keyed.labels},
            namespace=keyed.namespace,
            annotations=keyed.annotations,
            # Consumer pods anywhere: only those in peers_namespaces are served
            # (routed, dialled, given peers); the others are reported.
            namespaces=self.peers_namespaces if self.consumer_namespace is None else frozenset(),
        )


@dataclass(frozen=True)
class DesiredChain:
    """One consumer chain this cluster exposes: ports, LoadBalancer exposure, peers, ConfigMaps."""

    consumer_id: ConsumerId
    chain_id: ChainId
    allocation: Allocation
    exposure: ChainExposure
    peer_list: PeerList
    peers: ChainPeers
    # One per namespace the chain's consumer pods run in (sorted by namespace).
    configmaps: tuple[PeersConfigMap, ...]
    notify: NotifyMode
    # Why no ConfigMap can be written ("" when fine); existing ones are then kept.
    configmap_problem: str = ""
    # Compat mode: validators whose node ID was derived from their moniker (INSECURE).
    moniker_node_ids: tuple[OperatorAddress, ...] = ()

    @property
    def peers_hash(self) -> str:
        return self.peers.peers_hash()


@dataclass(frozen=True)
class DesiredCluster:
    """Everything the apply steps and the API need, from one snapshot.

    `chains` holds only the chains to expose (opted in and launched), sorted by
    chain ID; `state` describes every consumer chain and validator for the API.
    """

    height: int
    operator: OperatorAddress
    chains: tuple[DesiredChain, ...]
    lb: LbDesiredState
    state: DiscoveryState
    # Problems that concern the whole cluster (for logs and the API), sorted.
    problems: tuple[str, ...] = ()

    def chain(self, chain_id: str) -> DesiredChain | None:
        for c in self.chains:
            if c.chain_id == chain_id:
                return c
        return None

    def configmaps(self) -> tuple[PeersConfigMap, ...]:
        """Every desired peers ConfigMap, sorted by (namespace, name)."""
        return tuple(
            sorted(
                (cm for c in self.chains for cm in c.configmaps),
                key=lambda cm: (cm.namespace, cm.name),
            )
        )

    def held_configmap_names(self) -> frozenset[str]:
        """ConfigMap names of exposed chains whose ConfigMaps must not be deleted now.

        A chain whose ConfigMap cannot be built this round (no pod found yet,
        say) keeps whatever exists: deleting a node's peers because of our own
        transient blindness would do harm.
        """
        return frozenset(
            peers_configmap_name(c.chain_id)
            for c in self.chains
            if c.configmap_problem or not c.configmaps
        )

    def render(self) -> bytes:
        """Canonical JSON of the whole desired state (equal snapshots give equal bytes)."""
        return _render(self)


# --- mapping chainmonitor's values into discovery's -------------------------------


def validator_records(
    snapshot: ChainSnapshot, policy: EndpointPolicy, compat: Compat = Compat.NONE
) -> tuple[
    dict[OperatorAddress, ValidatorEndpoint], tuple[ValidatorView, ...], dict[OperatorAddress, str]
]:
    """Peer-building records (validators with a consensus address), API views, monikers."""
    records: dict[OperatorAddress, ValidatorEndpoint] = {}
    views: list[ValidatorView] = []
    monikers: dict[OperatorAddress, str] = {}
    for v in snapshot.validators:
        operator = OperatorAddress(v.operator)
        endpoint: EndpointResult = read_details_compat(v.description.details, policy, compat)
        monikers[operator] = v.moniker
        views.append(
            ValidatorView(
                operator_address=operator,
                consensus_address=v.consensus_address or "",
                moniker=v.moniker,
                status=v.status.value,
                jailed=v.jailed,
                endpoint=endpoint,
            )
        )
        if v.consensus_address:
            records[operator] = ValidatorEndpoint(
                operator, ConsensusAddress(v.consensus_address), endpoint
            )
    return records, tuple(views), monikers


@dataclass(frozen=True)
class _Consumer:
    ref: ConsumerChainRef
    phase: ConsumerPhase
    opted_in: frozenset[ConsensusAddress]
    # The consumer chain's validator set (provider address to power); None if unknown.
    powers: Mapping[ConsensusAddress, int] | None


def _consumers(snapshot: ChainSnapshot) -> tuple[list[_Consumer], list[str]]:
    """Consumers with checked IDs; unreadable ones are left out with a reason."""
    out: list[_Consumer] = []
    problems: list[str] = []
    seen: set[str] = set()
    for c in snapshot.consumers:
        try:
            ref = ConsumerChainRef.parse(c.consumer_id, c.chain_id, _phase(c), c.spawn_time)
        except DiscoveryError as e:
            problems.append(f"consumer {quote_untrusted(c.consumer_id)} left out: {e}")
            continue
        if ref.consumer_id in seen:
            problems.append(f"consumer {ref.consumer_id} listed twice; the first is used")
            continue
        seen.add(ref.consumer_id)
        powers = (
            {ConsensusAddress(v.provider_address): v.power for v in c.validators}
            if c.validators is not None
            else None
        )
        out.append(
            _Consumer(ref, _phase(c), frozenset(ConsensusAddress(a) for a in c.opted_in), powers)
        )
    return out, problems


def _phase(chain: ChainConsumer) -> ConsumerPhase:
    try:
        return ConsumerPhase(chain.phase.value)
    except ValueError:
        return ConsumerPhase.UNSPECIFIED


def _allocate(
    consumers: list[_Consumer], policy: ExposurePolicy
) -> tuple[PortPlan, dict[ConsumerId, str]]:
    """Ports for the chains that hold ports, as many (in allocation order) as the space holds.

    Only launched and stopped chains take ports (`ports.holds_ports`). When a
    kind runs out, the chains from the one that failed onwards get no ports
    and say why; the earlier ones keep theirs, since by the allocation rule
    their ports never depend on later chains.
    """
    refs = sorted(
        (c.ref for c in consumers if holds_ports(c.phase)), key=ConsumerChainRef.order_key
    )
    try:
        return allocate_for(refs, policy.scheme, policy.reserved_ports, policy.compat)
    except PortSpaceExhausted as e:
        cut = next(i for i, r in enumerate(refs) if r.consumer_id == e.consumer_id)
        plan, refused = allocate_for(
            refs[:cut], policy.scheme, policy.reserved_ports, policy.compat
        )
        return plan, {**refused, **{r.consumer_id: str(e) for r in refs[cut:]}}


# --- the decision -----------------------------------------------------------------


def desired_cluster(
    snapshot: ChainSnapshot,
    operator: str,
    policy: ExposurePolicy,
    endpoint_policy: EndpointPolicy,
    pod_namespaces: Mapping[str, Collection[str]] | None = None,
    *,
    pods_known: bool = True,
) -> DesiredCluster:
    """The desired state of this cluster for `snapshot`, as validator `operator`. Pure.

    `pod_namespaces` maps a chain ID to the namespaces its consumer pods were
    seen in; it decides where peers ConfigMaps go when `policy` names no
    consumer namespace. `pods_known` False (a replica that does not lead, and
    so does not watch pods) reports no problem about missing pods.
    """
    us = OperatorAddress(operator)
    records, validator_views, monikers = validator_records(snapshot, endpoint_policy, policy.compat)
    consumers, problems = _consumers(snapshot)
    plan, unallocated = _allocate(consumers, policy)
    allocations = {a.consumer_id: a for a in plan.allocations}

    ours = snapshot.validator(us)
    our_consensus = (
        ConsensusAddress(ours.consensus_address) if ours and ours.consensus_address else None
    )
    if ours is None:
        problems.append(f"our validator {quote_untrusted(us)} is not in the provider registry")
    elif our_consensus is None:
        problems.append("our validator's consensus address is unknown: opt-ins cannot be seen")

    # A chain ID relaunched under a new consumer ID: consumer pods are keyed by
    # chain ID, so only one of them can be exposed; the newest launched one is.
    wanted = [
        c
        for c in consumers
        if our_consensus is not None
        and our_consensus in c.opted_in
        and c.phase is ConsumerPhase.LAUNCHED
    ]
    wanted_ids = {c.ref.consumer_id for c in wanted}
    winner: dict[ChainId, ConsumerId] = {}
    for c in sorted(wanted, key=lambda c: consumer_id_number(c.ref.consumer_id)):
        winner[c.ref.chain_id] = c.ref.consumer_id

    chains: list[DesiredChain] = []
    views: list[ChainView] = []
    for c in consumers:
        ref = c.ref
        allocation = allocations.get(ref.consumer_id)
        opted = our_consensus is not None and our_consensus in c.opted_in
        ports_view = (
            ChainPortsView.from_allocation(allocation, policy.scheme.value) if allocation else None
        )
        problem = ""
        chosen: DesiredChain | None = None
        if ref.consumer_id in wanted_ids:
            if winner[ref.chain_id] != ref.consumer_id:
                problem = (
                    f"chain ID also launched as consumer {winner[ref.chain_id]}, which is exposed"
                )
            elif allocation is None:
                problem = unallocated.get(ref.consumer_id, "no ports allocated")
            else:
                chosen = _desired_chain(
                    c, allocation, records, monikers, us, policy, pod_namespaces or {}, pods_known
                )
                problem = chosen.configmap_problem
        views.append(
            ChainView(
                consumer_id=ref.consumer_id,
                chain_id=ref.chain_id,
                phase=c.phase.value,
                opted_in=opted,
                exposed=chosen is not None,
                ports=ports_view,
                peers=chosen.peers if chosen else None,
                problem=problem,
            )
        )
        if chosen is not None:
            chains.append(chosen)

    chains.sort(key=lambda d: d.chain_id)
    state = DiscoveryState(
        height=snapshot.height,
        operator_address=us,
        chains=tuple(views),
        validators=validator_views,
    )
    return DesiredCluster(
        height=snapshot.height,
        operator=us,
        chains=tuple(chains),
        lb=LbDesiredState.of(d.exposure for d in chains),
        state=state,
        problems=tuple(sorted(problems)),
    )


def _members(c: _Consumer) -> ConsumerMembers:
    """Peer candidates: the validators with power on the chain that are still opted in.

    A launched chain's validator set is what its nodes must reach; the opted-in
    set also holds validators without power there (jailed, unbonded, or cut by
    the chain's validator set cap), which would only be dead entries. The
    provider applies opt-ins and opt-outs to the validator set at epoch ends:
    a validator that opted out is dropped at once (it is leaving), and one that
    opted in becomes a candidate once the set read from the provider includes
    it. Without the set (a snapshot that did not read it) the opted-in set is
    used.
    """
    if c.powers is not None:
        staying = {a: p for a, p in c.powers.items() if a in c.opted_in}
        return ConsumerMembers.from_validator_set(c.ref.consumer_id, c.ref.chain_id, staying)
    return ConsumerMembers(c.ref.consumer_id, c.ref.chain_id, c.opted_in)


def _desired_chain(
    c: _Consumer,
    allocation: Allocation,
    records: Mapping[OperatorAddress, ValidatorEndpoint],
    monikers: Monikers,
    us: OperatorAddress,
    policy: ExposurePolicy,
    pod_namespaces: Mapping[str, Collection[str]],
    pods_known: bool,
) -> DesiredChain:
    ref = c.ref
    by_kind = allocation.ports.by_kind()
    exposure = ChainExposure(
        key=ChainKey(ref.chain_id),
        ports=tuple(
            ExposedPort(kind.value, by_kind[kind], policy.target_ports[kind])
            for kind in policy.exposed_kinds
            if kind in by_kind
        ),
        pods=policy.pod_selector(ref.chain_id),
    )
    derived = MonikerNodeIds({})
    if policy.compat is Compat.ICS_OPERATOR:
        # INSECURE (documented): Go's node IDs for validators that publish no node=.
        derived = moniker_node_ids(
            {op: r.endpoint for op, r in records.items() if r.consensus_address in c.opted_in},
            monikers,
            ref.chain_id,
        )
        records = {
            op: replace(r, node_id=derived.node_ids[op]) if op in derived.node_ids else r
            for op, r in records.items()
        }
    peer_list = build_peer_list(
        _members(c),
        records,
        us,
        allocation.ports.p2p,
        policy.max_peers,
    )
    used = {p.operator_address for p in peer_list.peers}
    peers = ChainPeers.from_peer_list(peer_list, monikers)
    outside: list[str] = []
    if policy.consumer_namespace is not None:
        namespaces: list[str] = [policy.consumer_namespace]
    else:
        found = sorted(set(pod_namespaces.get(ref.chain_id, ())))
        # Served namespaces are the chain's pod selector's: the same rule routes traffic.
        namespaces = [n for n in found if exposure.pods.allows_namespace(n)]
        outside = [n for n in found if not exposure.pods.allows_namespace(n)]
    configmaps: list[PeersConfigMap] = []
    problem = ""
    if outside:
        problem = (
            f"consumer pods in namespace {', '.join(outside)}, outside peers_namespaces "
            f"({', '.join(sorted(policy.peers_namespaces))}): no peers ConfigMap written there"
        )
    elif not namespaces and pods_known:
        problem = "no consumer pod found: the peers ConfigMap goes to the pods' namespace"
    for namespace in namespaces:
        try:
            configmaps.append(
                build_peers_configmap(
                    chain_id=ref.chain_id,
                    consumer_id=ref.consumer_id,
                    namespace=namespace,
                    peers=peers.peers,
                    left_out=peers.left_out,
                    ports=allocation.ports.as_json(),
                )
            )
        except DiscoveryError as e:
            # Cannot happen for lists built by build_peer_list; kept so one bad
            # chain can never stop the others.
            configmaps, problem = [], f"peers ConfigMap not built: {e}"
            break
    return DesiredChain(
        consumer_id=ref.consumer_id,
        chain_id=ref.chain_id,
        allocation=allocation,
        exposure=exposure,
        peer_list=peer_list,
        peers=peers,
        configmaps=tuple(configmaps),
        notify=policy.notify_mode(ref.chain_id),
        configmap_problem=problem,
        moniker_node_ids=tuple(op for op in derived.operators() if op in used),
    )


# --- rendering ----------------------------------------------------------------------


def _render(d: DesiredCluster) -> bytes:
    doc: dict[str, Any] = {
        "height": d.height,
        "operator": d.operator,
        "problems": list(d.problems),
        "loadbalancer": [
            {
                "key": c.key,
                "ports": [[p.name, p.port, p.target_port, p.protocol] for p in c.ports],
                "pods": {
                    "namespace": c.pods.namespace,
                    "namespaces": sorted(c.pods.namespaces),
                    "labels": dict(c.pods.labels),
                    "annotations": dict(c.pods.annotations),
                },
            }
            for c in d.lb.chains
        ],
        "configmaps": [cm.render().decode("ascii") for cm in d.configmaps()],
        "chains": [
            {
                "consumer_id": c.consumer_id,
                "chain_id": c.chain_id,
                "phase": c.phase,
                "opted_in": c.opted_in,
                "exposed": c.exposed,
                "problem": c.problem,
                "ports": dict(c.ports.ports) if c.ports else None,
                "moved": list(c.ports.moved) if c.ports else [],
                "persistent_peers": c.peers.persistent_peers() if c.peers else None,
                "left_out": [
                    [x.operator_address, x.consensus_address, x.reason, x.detail]
                    for x in c.peers.left_out
                ]
                if c.peers
                else [],
            }
            for c in d.state.chains
        ],
        "validators": [
            [
                v.operator_address,
                v.consensus_address,
                v.moniker,
                v.status,
                v.jailed,
                str(v.endpoint),
            ]
            for v in d.state.validators
        ],
        "notify": {c.chain_id: c.notify.value for c in d.chains},
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode("ascii")
