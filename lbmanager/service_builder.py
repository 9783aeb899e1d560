"""Pure: which ports each LoadBalancer Service should have, who owns each, and where chains go.

Ownership is data on the Service itself: the annotation
`lbmanager.ics-discovery.io/ports` holds `{"v": 1, "owners": {owner: {key:
[port names]}}}`. A port whose name no owner records is foreign: it is never
changed, moved or removed, and its name and number are unavailable to chains.
A reconciler (owner id) adds and removes only the entries under its own owner;
other owners' entries and ports are copied through unchanged. Because the
ports and the annotation change in one write, they cannot disagree. The record
costs about 50 bytes per port and Kubernetes caps an object's annotations at
256 KiB, so one Service holds a few thousand ports; shard beyond that.

Placement (`max_ports_per_service` sharding): a chain already recorded in a
shard stays there; new chains, in key order, go to the first shard (0, 1, 2,
...) with room for all their ports and no clash of name or number; a shard
that does not exist yet is empty. Without a limit everything is in shard 0.
Chains that stay change their ports together (one may take a port another
gives up in the same write); a port another chain keeps goes to its holder.
The same observed cluster and desired state always give the same plan.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import (
    ChainRefused,
    InvalidChainSpec,
    KeyExposedByOtherOwner,
    OwnershipRecordCorrupt,
    PortNameTaken,
    PortNumberTaken,
    ShardFull,
)
from .k8snames import is_dns_label, is_label_key, is_label_value
from .naming import (
    APP_MANAGED_BY_LABEL,
    APP_MANAGED_BY_VALUE,
    NON_MATCHING_SELECTOR,
    PLACEHOLDER_PORT_NAME,
    PORTS_ANNOTATION,
    service_port_name,
    shard_service_name,
)
from .types import PROTOCOLS, ChainExposure, ChainKey, ChainStatus, LbSettings, RawObject

# owner -> chain key -> port names (sorted)
Ownership = dict[str, dict[str, tuple[str, ...]]]

OWNERSHIP_VERSION: Final = 1
MAX_KEY_LENGTH: Final = 512


@dataclass(frozen=True)
class PortSpec:
    """The fields of a Service port that lbmanager decides (nodePort is the server's)."""

    name: str
    port: int
    target_port: int | str
    protocol: str

    def raw(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "port": self.port,
            "targetPort": self.target_port,
            "protocol": self.protocol,
        }


PLACEHOLDER: Final = PortSpec(PLACEHOLDER_PORT_NAME, 1, 1, "TCP")


def port_spec(raw: Mapping[str, Any]) -> PortSpec:
    port = int(raw.get("port") or 0)
    target = raw.get("targetPort")
    return PortSpec(
        name=str(raw.get("name") or ""),
        port=port,
        target_port=target if isinstance(target, int | str) and target != "" else port,
        protocol=str(raw.get("protocol") or "TCP"),
    )


# ---- ownership annotation ------------------------------------------------------


def parse_ownership(text: str | None) -> Ownership:
    """Parse the annotation (raises ValueError on anything but the exact shape)."""
    if text is None:
        return {}
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("v") != OWNERSHIP_VERSION:
        raise ValueError(f"expected an object with v={OWNERSHIP_VERSION}")
    owners = doc.get("owners")
    if not isinstance(owners, dict):
        raise ValueError("owners must be an object")
    out: Ownership = {}
    for owner, keys in owners.items():
        if not isinstance(keys, dict):
            raise ValueError(f"owner {owner!r}: expected an object of keys")
        entry: dict[str, tuple[str, ...]] = {}
        for key, names in keys.items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"owner {owner!r} key {key!r}: expected a list of port names")
            entry[key] = tuple(sorted(set(names)))
        if entry:
            out[owner] = entry
    return out


def render_ownership(own: Ownership) -> str | None:
    """Canonical JSON (sorted, compact) or None when nothing is owned."""
    owners = {o: {k: sorted(v) for k, v in keys.items()} for o, keys in own.items() if keys}
    if not owners:
        return None
    return json.dumps(
        {"v": OWNERSHIP_VERSION, "owners": owners},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _normal(own: Ownership) -> dict[str, dict[str, tuple[str, ...]]]:
    return {o: {k: tuple(sorted(v)) for k, v in keys.items()} for o, keys in own.items() if keys}


# ---- observed Services ----------------------------------------------------------


@dataclass(frozen=True)
class ObservedService:
    """One existing shard Service as read from the API server."""

    index: int
    name: str
    raw: RawObject
    ports: tuple[PortSpec, ...]
    ownership: Ownership

    @property
    def raw_ports(self) -> list[dict[str, Any]]:
        return list((self.raw.get("spec") or {}).get("ports") or [])

    @property
    def recorded_names(self) -> set[str]:
        return {n for keys in self.ownership.values() for names in keys.values() for n in names}

    @property
    def uid(self) -> str:
        return str((self.raw.get("metadata") or {}).get("uid") or "")


def observe_service(index: int, raw: RawObject) -> ObservedService:
    meta = raw.get("metadata") or {}
    name = str(meta.get("name") or "")
    text = (meta.get("annotations") or {}).get(PORTS_ANNOTATION)
    try:
        own = parse_ownership(text if isinstance(text, str) else None)
        ports = tuple(port_spec(p) for p in (raw.get("spec") or {}).get("ports") or [])
    except (ValueError, TypeError) as e:
        raise OwnershipRecordCorrupt(name, PORTS_ANNOTATION, str(e)) from e
    return ObservedService(index=index, name=name, raw=raw, ports=ports, ownership=own)


# ---- validation -------------------------------------------------------------------


def validate_chain(chain: ChainExposure) -> InvalidChainSpec | None:
    """Why this chain's desired spec cannot be applied, or None."""
    key = chain.key

    def bad(problem: str) -> InvalidChainSpec:
        return InvalidChainSpec(key, problem)

    if not isinstance(key, str) or not key:
        return bad("the key is empty")
    if len(key) > MAX_KEY_LENGTH:
        return bad(f"the key is longer than {MAX_KEY_LENGTH} characters")
    if not chain.ports:
        return bad("no ports")
    roles: set[str] = set()
    numbers: set[tuple[int, str]] = set()
    for p in chain.ports:
        if not p.name or len(p.name) > 63:
            return bad(f"port role name {p.name!r} must be 1 to 63 characters")
        if p.name in roles:
            return bad(f"port role {p.name!r} appears twice")
        roles.add(p.name)
        for what, n in (("port", p.port), ("target port", p.target_port)):
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 65535:
                return bad(f"{what} {n!r} of {p.name!r} is not in 1..65535")
        if p.protocol not in PROTOCOLS:
            return bad(
                f"protocol {p.protocol!r} of {p.name!r} is not one of {', '.join(PROTOCOLS)}"
            )
        if (p.port, p.protocol) in numbers:
            return bad(f"port {p.port}/{p.protocol} appears twice")
        numbers.add((p.port, p.protocol))
    sel = chain.pods
    if sel.namespace is not None and not is_dns_label(sel.namespace):
        return bad(f"pod namespace {sel.namespace!r} is not a DNS label")
    if not sel.labels:
        return bad("the pod selector needs at least one label")
    for k, v in sel.labels.items():
        if not is_label_key(k) or not is_label_value(v):
            return bad(f"pod selector label {k}={v} is not a valid label")
    for k in sel.annotations:
        if not is_label_key(k):
            return bad(f"pod selector annotation key {k!r} is not valid")
    return None


def desired_port_specs(chain: ChainExposure) -> tuple[PortSpec, ...]:
    return tuple(
        sorted(
            (
                PortSpec(service_port_name(chain.key, p.name), p.port, p.target_port, p.protocol)
                for p in chain.ports
            ),
            key=lambda s: s.name,
        )
    )


def port_names(chain: ChainExposure) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((p.name, service_port_name(chain.key, p.name)) for p in chain.ports))


# ---- the plan ----------------------------------------------------------------------


@dataclass(frozen=True)
class ShardPlan:
    """What one Service should hold after the reconcile."""

    index: int
    name: str
    managed: tuple[PortSpec, ...]  # ports of every owner, sorted by name
    ownership: Ownership


@dataclass(frozen=True)
class ChainPlacement:
    key: ChainKey
    status: ChainStatus
    index: int | None
    port_names: tuple[tuple[str, str], ...] = ()
    error: ChainRefused | None = None


@dataclass(frozen=True)
class ServicePlan:
    shards: tuple[ShardPlan, ...]
    chains: tuple[ChainPlacement, ...]
    removed: tuple[ChainKey, ...]

    def shard(self, index: int) -> ShardPlan:
        return next(s for s in self.shards if s.index == index)


@dataclass(frozen=True)
class _Held:
    """What one of our chains holds now: its shard, its ports there, its recorded names."""

    shard: int
    ports: tuple[PortSpec, ...]
    names: tuple[str, ...]


@dataclass
class _Shard:
    """Working state of one shard while placing chains."""

    name: str
    names: dict[str, str] = field(default_factory=dict)  # port name -> holder
    numbers: dict[tuple[int, str], str] = field(default_factory=dict)  # (port, proto) -> holder
    used: int = 0
    others: list[PortSpec] = field(default_factory=list)
    mine: dict[str, tuple[PortSpec, ...]] = field(default_factory=dict)
    mine_names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def take(self, specs: Iterable[PortSpec], holder: str) -> None:
        for s in specs:
            self.names[s.name] = holder
            self.numbers[(s.port, s.protocol)] = holder
            self.used += 1

    def assign(self, key: str, specs: tuple[PortSpec, ...], names: tuple[str, ...]) -> None:
        """Give chain `key` these ports here, recorded in the ownership under `names`."""
        self.take(specs, f"chain {key!r}")
        self.mine[key] = specs
        self.mine_names[key] = names

    def refusal(
        self, key: str, specs: Sequence[PortSpec], limit: int | None
    ) -> ChainRefused | None:
        for s in specs:
            if s.name in self.names:
                return PortNameTaken(key, s.name, self.name)
        for s in specs:
            holder = self.numbers.get((s.port, s.protocol))
            if holder is not None:
                return PortNumberTaken(key, s.port, s.protocol, self.name, holder)
        if limit is not None and self.used + len(specs) > limit:
            return ShardFull(key, self.name, len(specs), limit)
        return None


def plan_services(
    observed: Sequence[ObservedService],
    chains: Sequence[ChainExposure],
    *,
    owner: str,
    base_name: str,
    max_ports: int | None,
) -> ServicePlan:
    """Place every chain and compute every shard's ports and ownership record."""
    work: dict[int, _Shard] = {}

    def shard(i: int) -> _Shard:
        if i not in work:
            work[i] = _Shard(shard_service_name(base_name, i))
        return work[i]

    current, others_keys = _classify_observed(observed, owner, shard)
    valid, placements = _validate_chains(chains, current)
    desired_keys = {c.key for c in chains}
    removed = tuple(ChainKey(k) for k in sorted(current) if k not in desired_keys)

    staying = [c for c in valid if c.key in current]
    new = [c for c in valid if c.key not in current]
    # Refused chains that exist keep exactly what they have.
    for k, now in current.items():
        if k in placements:
            shard(now.shard).assign(k, now.ports, now.names)

    moving, refusals = _settle_staying(staying, current, shard, max_ports)
    for c in staying:
        now = current[c.key]
        if c.key in moving:
            specs = desired_port_specs(c)
            shard(now.shard).assign(c.key, specs, tuple(s.name for s in specs))
            placements[c.key] = ChainPlacement(ChainKey(c.key), "exposed", now.shard, port_names(c))
        else:
            shard(now.shard).assign(c.key, now.ports, now.names)
            placements[c.key] = ChainPlacement(
                ChainKey(c.key), "kept", now.shard, (), refusals[c.key]
            )

    for c in new:
        placements[c.key] = _place_new(c, work, shard, others_keys, base_name, max_ports)

    return ServicePlan(
        shards=_shard_plans(observed, work, shard, owner),
        chains=tuple(placements[k] for k in sorted(placements)),
        removed=removed,
    )


def _classify_observed(
    observed: Sequence[ObservedService], owner: str, shard: Callable[[int], _Shard]
) -> tuple[dict[str, _Held], dict[str, tuple[str, str]]]:
    """Classify what exists: foreign ports, other owners' ports, ours.

    Foreign and other owners' ports are taken in their shards; returns our
    chains' current ports and, for keys other owners expose, (owner, Service).
    """
    current: dict[str, _Held] = {}
    others_keys: dict[str, tuple[str, str]] = {}
    for o in sorted(observed, key=lambda s: s.index):
        w = shard(o.index)
        holder_of: dict[str, tuple[str, str]] = {}
        for ow in sorted(o.ownership):
            for k, names in sorted(o.ownership[ow].items()):
                for n in names:
                    holder_of.setdefault(n, (ow, k))
                if ow != owner:
                    others_keys.setdefault(k, (ow, o.name))
        actual = {p.name: p for p in o.ports}
        for p in o.ports:
            if p.name == PLACEHOLDER_PORT_NAME:
                continue
            held = holder_of.get(p.name)
            if held is None:
                w.take([p], f"foreign port {p.name!r}")
            elif held[0] != owner:
                w.take([p], f"chain {held[1]!r} of owner {held[0]!r}")
                w.others.append(p)
        for k, names in sorted(o.ownership.get(owner, {}).items()):
            if k not in current:
                existing = tuple(actual[n] for n in names if n in actual)
                current[k] = _Held(o.index, existing, names)
    return current, others_keys


def _validate_chains(
    chains: Sequence[ChainExposure], current: Mapping[str, _Held]
) -> tuple[list[ChainExposure], dict[str, ChainPlacement]]:
    """The valid chains, and the placements of the refused ones.

    A key given twice is refused (both entries), never guessed.
    """
    placements: dict[str, ChainPlacement] = {}
    seen: dict[str, int] = {}
    for c in chains:
        seen[c.key] = seen.get(c.key, 0) + 1
    valid: list[ChainExposure] = []
    for c in sorted(chains, key=lambda c: c.key):
        invalid = (
            InvalidChainSpec(c.key, "the key appears more than once in the desired state")
            if seen[c.key] > 1
            else validate_chain(c)
        )
        if invalid is None:
            valid.append(c)
        elif c.key not in placements:
            placements[c.key] = _refused_or_kept(c.key, invalid, current)
    return valid, placements


def _place_new(
    c: ChainExposure,
    work: Mapping[int, _Shard],
    shard: Callable[[int], _Shard],
    others_keys: Mapping[str, tuple[str, str]],
    base_name: str,
    max_ports: int | None,
) -> ChainPlacement:
    """A new chain in the first shard its ports fit in (one past the last at most), or refused."""
    specs = desired_port_specs(c)
    if c.key in others_keys:
        ow, svc = others_keys[c.key]
        return _refused(c.key, KeyExposedByOtherOwner(c.key, ow, svc))
    if max_ports is not None and len(specs) > max_ports:
        err0: ChainRefused = ShardFull(
            c.key, shard_service_name(base_name, 0), len(specs), max_ports
        )
        return _refused(c.key, err0)
    candidates = [0] if max_ports is None else range(max(work, default=0) + 2)
    first_err: ChainRefused | None = None
    for i in candidates:
        w = shard(i)
        err = w.refusal(c.key, specs, max_ports)
        if err is None:
            w.assign(c.key, specs, tuple(s.name for s in specs))
            return ChainPlacement(ChainKey(c.key), "exposed", i, port_names(c))
        first_err = first_err or err
    assert first_err is not None
    return _refused(c.key, first_err)


def _shard_plans(
    observed: Sequence[ObservedService],
    work: Mapping[int, _Shard],
    shard: Callable[[int], _Shard],
    owner: str,
) -> tuple[ShardPlan, ...]:
    """Each needed shard's ports and ownership record (other owners' records kept)."""
    by_index = {o.index: o for o in observed}
    needed = set(by_index) | {0} | {i for i, w in work.items() if w.mine}
    shards: list[ShardPlan] = []
    for i in sorted(needed):
        w = shard(i)
        own: Ownership = {
            ow: dict(keys)
            for ow, keys in (by_index[i].ownership.items() if i in by_index else ())
            if ow != owner
        }
        if w.mine_names:
            own[owner] = {k: tuple(sorted(v)) for k, v in sorted(w.mine_names.items())}
        managed = sorted(
            [*w.others, *(s for specs in w.mine.values() for s in specs)], key=lambda s: s.name
        )
        shards.append(ShardPlan(i, w.name, tuple(managed), own))
    return tuple(shards)


def _settle_staying(
    staying: Sequence[ChainExposure],
    current: Mapping[str, _Held],
    shard: Callable[[int], _Shard],
    limit: int | None,
) -> tuple[set[str], dict[str, ChainRefused]]:
    """Which staying chains get their desired ports; the rest keep what they have.

    All staying chains change together, so a chain may take a port another
    staying chain gives up in the same write (even a swap). Start from "all move"
    and drop, one at a time in a fixed order, any chain whose desired ports clash
    with foreign or other owners' ports, with an earlier chain's desired ports,
    or with the current ports of a chain that does not move; or whose growth
    overfills its shard. The greatest set that survives is valid and unique.
    """
    want: dict[str, tuple[PortSpec, ...]] = {c.key: desired_port_specs(c) for c in staying}
    moving: set[str] = {c.key for c in staying}
    refusals: dict[str, ChainRefused] = {}
    order = sorted(want)
    # Who holds each port now: a contested port goes to its current holder first.
    holds = {(current[k].shard, s.port, s.protocol): k for k in order for s in current[k].ports}
    while True:
        staying_put: dict[tuple[int, int, str], str] = {}
        claims: dict[tuple[int, int, str], list[str]] = {}
        counts: dict[int, int] = {}
        for k in order:
            i = current[k].shard
            specs = want[k] if k in moving else current[k].ports
            counts[i] = counts.get(i, 0) + len(specs)
            for s in specs:
                if k in moving:
                    claims.setdefault((i, s.port, s.protocol), []).append(k)
                else:
                    staying_put[(i, s.port, s.protocol)] = k
        dropped: str | None = None
        for k in order:
            if k not in moving:
                continue
            i = current[k].shard
            w = shard(i)
            for s in want[k]:
                slot = (i, s.port, s.protocol)
                if s.name in w.names:
                    refusals[k], dropped = PortNameTaken(k, s.name, w.name), k
                    break
                holder = w.numbers.get((s.port, s.protocol))
                if holder is None and slot in staying_put:
                    holder = f"chain {staying_put[slot]!r}"
                rivals = claims[slot]
                if holder is None and len(rivals) > 1:
                    winner = holds.get(slot)
                    if winner not in rivals:
                        winner = min(rivals)
                    if winner != k:
                        holder = f"chain {winner!r}"
                if holder is not None:
                    refusals[k] = PortNumberTaken(k, s.port, s.protocol, w.name, holder)
                    dropped = k
                    break
            if dropped is not None:
                break
        if dropped is None and limit is not None:
            for k in reversed(order):
                i = current[k].shard
                w = shard(i)
                grows = len(want[k]) > len(current[k].ports)
                if k in moving and grows and w.used + counts[i] > limit:
                    refusals[k], dropped = ShardFull(k, w.name, len(want[k]), limit), k
                    break
        if dropped is None:
            return moving, refusals
        moving.discard(dropped)


def _refused(key: str, err: ChainRefused) -> ChainPlacement:
    return ChainPlacement(ChainKey(key), "refused", None, (), err)


def _refused_or_kept(
    key: str,
    err: ChainRefused,
    current: Mapping[str, _Held],
) -> ChainPlacement:
    if key in current:
        return ChainPlacement(ChainKey(key), "kept", current[key].shard, (), err)
    return _refused(key, err)


# ---- rendering -------------------------------------------------------------------


def render_ports(observed: ObservedService | None, plan: ShardPlan) -> list[dict[str, Any]]:
    """Foreign ports first, untouched and in their order; then managed ports by name.

    A managed port that did not change keeps its exact JSON (node port included);
    the placeholder exists only when no other port does.
    """
    actual = observed.raw_ports if observed else []
    recorded = observed.recorded_names if observed else set()
    out = [
        p
        for p in actual
        if str(p.get("name") or "") != PLACEHOLDER_PORT_NAME
        and str(p.get("name") or "") not in recorded
    ]
    by_name = {str(p.get("name") or ""): p for p in actual}
    for spec in plan.managed:
        old = by_name.get(spec.name)
        out.append(old if old is not None and port_spec(old) == spec else spec.raw())
    if not out:
        old = by_name.get(PLACEHOLDER_PORT_NAME)
        out.append(old if old is not None and port_spec(old) == PLACEHOLDER else PLACEHOLDER.raw())
    return out


def service_is_current(observed: ObservedService, plan: ShardPlan) -> bool:
    ports = [port_spec(p) for p in render_ports(observed, plan)]
    return ports == list(observed.ports) and _normal(observed.ownership) == _normal(plan.ownership)


def updated_service(observed: ObservedService, plan: ShardPlan) -> RawObject:
    """The observed object (resourceVersion included) with our ports and record."""
    out = copy.deepcopy(observed.raw)
    out["apiVersion"] = "v1"
    out["kind"] = "Service"
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    record = render_ownership(plan.ownership)
    if record is None:
        annotations.pop(PORTS_ANNOTATION, None)
    else:
        annotations[PORTS_ANNOTATION] = record
    meta["annotations"] = annotations
    out.setdefault("spec", {})["ports"] = render_ports(observed, plan)
    return out


def new_service(plan: ShardPlan, settings: LbSettings) -> RawObject:
    """A Service to create: LoadBalancer, selector matching nothing, our ports."""
    annotations = dict(settings.new_service_annotations)
    record = render_ownership(plan.ownership)
    if record is not None:
        annotations[PORTS_ANNOTATION] = record
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "selector": dict(NON_MATCHING_SELECTOR),
        "ports": render_ports(None, plan),
        "allocateLoadBalancerNodePorts": settings.new_service_allocate_node_ports,
    }
    if settings.new_service_load_balancer_class:
        spec["loadBalancerClass"] = settings.new_service_load_balancer_class
    meta: dict[str, Any] = {
        "name": plan.name,
        "namespace": settings.namespace,
        "labels": {APP_MANAGED_BY_LABEL: APP_MANAGED_BY_VALUE},
    }
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def ingress_addresses(raw: RawObject) -> tuple[str, ...]:
    out: list[str] = []
    for entry in ((raw.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if isinstance(entry, dict):
            addr = entry.get("ip") or entry.get("hostname")
            if isinstance(addr, str) and addr:
                out.append(addr)
    return tuple(out)
