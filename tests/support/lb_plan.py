"""Pure helpers for lbmanager planning tests: build chains, plan, and apply a plan to Service JSON.

`apply` uses the same pure functions whose output the control layer sends to
the API server, and re-observes the result, so properties hold for what would
be stored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from lbmanager.consumer_pods import keyed_pod_selector
from lbmanager.service_builder import (
    ObservedService,
    ServicePlan,
    new_service,
    observe_service,
    plan_services,
    updated_service,
)
from lbmanager.types import ChainExposure, ChainKey, ExposedPort, LbSettings

SETTINGS = LbSettings()


def ch(key: str, *ports: int) -> ChainExposure:
    roles = ["p2p", "rpc", "grpc"]
    return ChainExposure(
        ChainKey(key),
        tuple(ExposedPort(roles[i], p, 26656 + i) for i, p in enumerate(ports)),
        keyed_pod_selector(key),
    )


def plan(
    observed: Sequence[ObservedService],
    chains: Sequence[ChainExposure],
    owner: str = "me",
    max_ports: int | None = None,
) -> ServicePlan:
    return plan_services(
        observed, chains, owner=owner, base_name="p2p-loadbalancer", max_ports=max_ports
    )


def apply(observed: Sequence[ObservedService], p: ServicePlan) -> list[ObservedService]:
    """What the API server would store after the control layer applied `p`."""
    by = {o.index: o for o in observed}
    out = []
    for sh in p.shards:
        o = by.get(sh.index)
        raw = updated_service(o, sh) if o is not None else new_service(sh, SETTINGS)
        raw = json.loads(json.dumps(raw))  # what goes over the wire
        raw.setdefault("metadata", {})["resourceVersion"] = "x"
        out.append(observe_service(sh.index, raw))
    return out


def chart_service(*foreign: dict[str, Any]) -> ObservedService:
    """The Service as the Helm chart creates it, plus foreign ports."""
    ports = [{"name": "placeholder", "port": 1, "targetPort": 1, "protocol": "TCP"}, *foreign]
    return observe_service(
        0,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "p2p-loadbalancer", "namespace": "provider", "uid": "u0"},
            "spec": {"type": "LoadBalancer", "ports": ports},
        },
    )


def port_map(o: ObservedService) -> dict[str, int]:
    return {p.name: p.port for p in o.ports}
