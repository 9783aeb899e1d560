"""Slice builder: endpoint conditions from pod state, families, targetRef, content comparison."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbmanager.consumer_pods import PodInfo, pod_annotations_for_key, pod_info, pod_labels_for_key
from lbmanager.endpointslice_builder import (
    ServiceRef,
    build_slices,
    render_slice,
    slice_is_current,
    updated_slice,
)
from lbmanager.errors import TooManyEndpoints
from lbmanager.naming import MANAGED_BY_LABEL, service_port_name
from tests.support.lb_plan import ch

SVC = ServiceRef("p2p-loadbalancer", "provider", "svc-uid")


def raw_pod(
    name: str,
    ips: list[str],
    *,
    ready: bool = True,
    deleting: bool = False,
    phase: str = "Running",
    key: str = "chain",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "consumers",
        "uid": f"uid-{name}",
        "labels": pod_labels_for_key(key),
        "annotations": pod_annotations_for_key(key),
    }
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": "node-a"},
        "status": {
            "phase": phase,
            "podIP": ips[0] if ips else None,
            "podIPs": [{"ip": ip} for ip in ips],
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
        },
    }


def pods(*raws: dict[str, Any]) -> list[PodInfo]:
    out = [pod_info(r) for r in raws]
    assert all(p is not None for p in out)
    return [p for p in out if p is not None]


@pytest.mark.parametrize(
    ("ready", "deleting", "expected"),
    [
        (True, False, (True, True, False)),
        (False, False, (False, False, False)),
        (True, True, (False, True, True)),
        (False, True, (False, False, True)),
    ],
)
def test_conditions_follow_the_kubernetes_controller_rules(
    ready: bool, deleting: bool, expected: tuple[bool, bool, bool]
) -> None:
    [s] = build_slices(
        SVC,
        ch("chain", 30001),
        pods(raw_pod("p", ["10.0.0.1"], ready=ready, deleting=deleting)),
        "me",
    )
    [e] = s.endpoints
    assert (e.ready, e.serving, e.terminating) == expected


def test_finished_and_address_less_pods_are_left_out() -> None:
    ps = pods(
        raw_pod("done", ["10.0.0.1"], phase="Succeeded"),
        raw_pod("failed", ["10.0.0.2"], phase="Failed"),
        raw_pod("pending", []),
        raw_pod("up", ["10.0.0.4"]),
    )
    [s] = build_slices(SVC, ch("chain", 30001), ps, "me")
    assert [e.pod_name for e in s.endpoints] == ["up"]


def test_dual_stack_pods_get_one_slice_per_family() -> None:
    ps = pods(raw_pod("b", ["10.0.0.2", "fd00::2"]), raw_pod("a", ["10.0.0.1"]))
    v4, v6 = build_slices(SVC, ch("chain", 30001), ps, "me")
    assert (v4.family, v6.family) == ("IPv4", "IPv6")
    assert [e.address for e in v4.endpoints] == ["10.0.0.1", "10.0.0.2"]
    assert [e.address for e in v6.endpoints] == ["fd00::2"]
    assert v4.name != v6.name


def test_rendered_slice_is_what_kube_proxy_and_the_gc_need() -> None:
    [s] = build_slices(SVC, ch("chain", 30001, 30002), pods(raw_pod("p", ["10.0.0.1"])), "me")
    raw = render_slice(s)
    assert raw["metadata"]["labels"]["kubernetes.io/service-name"] == "p2p-loadbalancer"
    assert raw["metadata"]["labels"][MANAGED_BY_LABEL] != "endpointslice-controller.k8s.io"
    assert raw["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": "p2p-loadbalancer",
            "uid": "svc-uid",
            "controller": True,
        }
    ]
    assert [p["name"] for p in raw["ports"]] == sorted(
        [service_port_name("chain", "p2p"), service_port_name("chain", "rpc")]
    )
    assert [p["port"] for p in raw["ports"]] == [26656, 26657]
    assert raw["endpoints"][0]["targetRef"] == {
        "kind": "Pod",
        "namespace": "consumers",
        "name": "p",
        "uid": "uid-p",
    }
    assert raw["endpoints"][0]["nodeName"] == "node-a"


def test_too_many_endpoints_is_a_chain_error() -> None:
    many = pods(*(raw_pod(f"p{i}", [f"10.0.{i // 250}.{i % 250 + 1}"]) for i in range(1001)))
    with pytest.raises(TooManyEndpoints):
        build_slices(SVC, ch("chain", 30001), many, "me")


def server_echo(raw: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns for a created slice: defaults and metadata added."""
    out: dict[str, Any] = json.loads(json.dumps(raw))
    out["metadata"].update(
        {"resourceVersion": "7", "uid": "slice-uid", "generation": 1, "creationTimestamp": "now"}
    )
    out["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = None
    out["metadata"]["labels"]["added-by-someone"] = "x"
    for ep in out["endpoints"]:
        ep["targetRef"]["resourceVersion"] = "3"
    return out


@given(
    st.lists(
        st.tuples(st.integers(1, 200), st.booleans(), st.booleans()),
        max_size=8,
        unique_by=lambda t: t[0],
    )
)
def test_an_echoed_slice_is_current_and_any_change_is_noticed(
    pod_specs: list[tuple[int, bool, bool]],
) -> None:
    ps = pods(*(raw_pod(f"p{i}", [f"10.1.0.{i}"], ready=r, deleting=d) for i, r, d in pod_specs))
    [s] = build_slices(SVC, ch("chain", 30001), ps, "me")
    actual = server_echo(render_slice(s))
    assert slice_is_current(actual, s)
    # Every field we own, changed behind our back, is noticed and repaired.
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda a: a["metadata"]["labels"].pop("kubernetes.io/service-name"),
        lambda a: a["metadata"]["ownerReferences"][0].update(uid="old"),
        lambda a: a["ports"][0].update(port=1),
        lambda a: a["endpoints"].append({"addresses": ["10.9.9.9"]}),
    ]
    for mutate in mutations:
        changed = copy.deepcopy(actual)
        mutate(changed)
        assert not slice_is_current(changed, s)
        repaired = updated_slice(changed, s)
        assert slice_is_current(repaired, s)
        assert repaired["metadata"]["labels"]["added-by-someone"] == "x"
        assert repaired["metadata"]["resourceVersion"] == "7"
