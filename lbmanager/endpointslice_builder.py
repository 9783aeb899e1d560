"""Pure: the EndpointSlices one exposed chain should have, and whether an existing one matches.

A chain gets one slice per address family (IPv4 always, so an exposed chain
without pods has an explicit empty slice; IPv6 only while a pod has an IPv6
address), in the Service's namespace, labelled for kube-proxy with the Service
name and with our own `managed-by`, owned by the Service (so deleting the
Service garbage-collects its slices), with one endpoint per consumer pod
address. Endpoint conditions follow the rules of Kubernetes' own EndpointSlice
controller: `serving` is the pod's Ready condition, `terminating` is a set
deletionTimestamp, `ready` is serving and not terminating.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from .consumer_pods import PodInfo
from .errors import TooManyEndpoints
from .naming import (
    KEY_ANNOTATION,
    KEY_HASH_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OWNER_LABEL,
    SERVICE_NAME_LABEL,
    key_hash,
    service_port_name,
    slice_name,
)
from .types import ADDRESS_FAMILIES, AddressFamily, ChainExposure, RawObject

MAX_ENDPOINTS_PER_SLICE: Final = 1000  # the API server's validation limit


@dataclass(frozen=True)
class ServiceRef:
    """The Service a slice belongs to (its uid goes into the ownerReference)."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class SlicePort:
    name: str  # equal to the Service port's name: kube-proxy joins on it
    port: int  # the pod's port
    protocol: str


@dataclass(frozen=True)
class SliceEndpoint:
    address: str
    ready: bool
    serving: bool
    terminating: bool
    pod_namespace: str
    pod_name: str
    pod_uid: str
    node_name: str | None


@dataclass(frozen=True)
class DesiredSlice:
    name: str
    service: ServiceRef
    key: str
    owner: str
    family: AddressFamily
    ports: tuple[SlicePort, ...]
    endpoints: tuple[SliceEndpoint, ...]


def endpoint_for(pod: PodInfo, address: str) -> SliceEndpoint:
    serving = pod.ready
    return SliceEndpoint(
        address=address,
        ready=serving and not pod.terminating,
        serving=serving,
        terminating=pod.terminating,
        pod_namespace=pod.namespace,
        pod_name=pod.name,
        pod_uid=pod.uid,
        node_name=pod.node_name,
    )


def slice_ports(chain: ChainExposure) -> tuple[SlicePort, ...]:
    return tuple(
        sorted(
            (
                SlicePort(service_port_name(chain.key, p.name), p.target_port, p.protocol)
                for p in chain.ports
            ),
            key=lambda p: p.name,
        )
    )


def build_slices(
    service: ServiceRef, chain: ChainExposure, pods: Sequence[PodInfo], owner: str
) -> tuple[DesiredSlice, ...]:
    """Desired slices of one chain from its pods (raises TooManyEndpoints)."""
    ports = slice_ports(chain)
    out: list[DesiredSlice] = []
    for family in ADDRESS_FAMILIES:
        eps = sorted(
            (endpoint_for(p, a) for p in pods if p.serves_traffic for a in p.addresses(family)),
            key=lambda e: (e.address, e.pod_namespace, e.pod_name, e.pod_uid),
        )
        if len(eps) > MAX_ENDPOINTS_PER_SLICE:
            raise TooManyEndpoints(chain.key, family, len(eps), MAX_ENDPOINTS_PER_SLICE)
        if family == "IPv4" or eps:
            out.append(
                DesiredSlice(
                    name=slice_name(service.name, chain.key, family),
                    service=service,
                    key=chain.key,
                    owner=owner,
                    family=family,
                    ports=ports,
                    endpoints=tuple(eps),
                )
            )
    return tuple(out)


# ---- rendering and comparing ---------------------------------------------------


def slice_labels(d: DesiredSlice) -> dict[str, str]:
    return {
        SERVICE_NAME_LABEL: d.service.name,
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        OWNER_LABEL: d.owner,
        KEY_HASH_LABEL: key_hash(d.key),
    }


def owner_reference(service: ServiceRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "name": service.name,
        "uid": service.uid,
        "controller": True,
    }


def _render_endpoint(e: SliceEndpoint) -> dict[str, Any]:
    out: dict[str, Any] = {
        "addresses": [e.address],
        "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating},
        "targetRef": {
            "kind": "Pod",
            "namespace": e.pod_namespace,
            "name": e.pod_name,
            "uid": e.pod_uid,
        },
    }
    if e.node_name:
        out["nodeName"] = e.node_name
    return out


def _render_ports(d: DesiredSlice) -> list[dict[str, Any]]:
    return [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in d.ports]


def render_slice(d: DesiredSlice) -> RawObject:
    """The object to create."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": d.name,
            "namespace": d.service.namespace,
            "labels": slice_labels(d),
            "annotations": {KEY_ANNOTATION: d.key},
            "ownerReferences": [owner_reference(d.service)],
        },
        "addressType": d.family,
        "ports": _render_ports(d),
        "endpoints": [_render_endpoint(e) for e in d.endpoints],
    }


def _norm_endpoint(raw: dict[str, Any]) -> tuple[Any, ...]:
    cond = raw.get("conditions") or {}
    ref = raw.get("targetRef") or {}
    return (
        tuple(raw.get("addresses") or ()),
        cond.get("ready"),
        cond.get("serving"),
        cond.get("terminating"),
        (ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("uid")),
        raw.get("nodeName") or None,
    )


def _norm_port(raw: dict[str, Any]) -> tuple[Any, ...]:
    return (raw.get("name") or "", raw.get("port"), raw.get("protocol") or "TCP")


def _has_owner_ref(meta: dict[str, Any], service: ServiceRef) -> bool:
    return any(
        r.get("kind") == "Service"
        and r.get("name") == service.name
        and r.get("uid") == service.uid
        and r.get("controller") is True
        for r in meta.get("ownerReferences") or []
    )


def slice_is_current(actual: RawObject, d: DesiredSlice) -> bool:
    """True when writing `d` would change nothing that matters."""
    meta = actual.get("metadata") or {}
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in slice_labels(d).items()):
        return False
    if (meta.get("annotations") or {}).get(KEY_ANNOTATION) != d.key:
        return False
    if not _has_owner_ref(meta, d.service):
        return False
    if actual.get("addressType") != d.family:
        return False
    if [_norm_port(p) for p in actual.get("ports") or []] != [
        _norm_port(p) for p in _render_ports(d)
    ]:
        return False
    return [_norm_endpoint(e) for e in actual.get("endpoints") or []] == [
        _norm_endpoint(_render_endpoint(e)) for e in d.endpoints
    ]


def updated_slice(actual: RawObject, d: DesiredSlice) -> RawObject:
    """`actual` with our content: labels and annotations others added survive."""
    out = copy.deepcopy(actual)
    out["apiVersion"] = "discovery.k8s.io/v1"
    out["kind"] = "EndpointSlice"
    meta = out.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **slice_labels(d)}
    meta["annotations"] = {**(meta.get("annotations") or {}), KEY_ANNOTATION: d.key}
    others = [r for r in meta.get("ownerReferences") or [] if r.get("kind") != "Service"]
    meta["ownerReferences"] = [owner_reference(d.service), *others]
    out["ports"] = _render_ports(d)
    out["endpoints"] = [_render_endpoint(e) for e in d.endpoints]
    return out


def slice_key(actual: RawObject) -> str | None:
    """The chain key a slice of ours was written for."""
    key = ((actual.get("metadata") or {}).get("annotations") or {}).get(KEY_ANNOTATION)
    return key if isinstance(key, str) else None
