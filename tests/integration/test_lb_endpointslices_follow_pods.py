"""EndpointSlices follow consumer pods: IP change, deletion, readiness, termination, any ID."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client

from lbmanager import DesiredState, LbSettings
from lbmanager.naming import (
    KEY_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SERVICE_NAME_LABEL,
    service_port_name,
    slice_name,
)
from lbmanager.reconciler import LoadBalancerController
from tests.conftest import create_namespace
from tests.support.lb import (
    chain,
    create_consumer_pod,
    remove_finalizers,
    set_pod_status,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.kube

SERVICE = "p2p-loadbalancer"
HOLD = "ics-discovery.io/test-hold"
# Slices follow a pod within a few watch events: well under this.
FOLLOW = 10.0


@contextlib.asynccontextmanager
async def running(ctl: LoadBalancerController) -> AsyncIterator[LoadBalancerController]:
    task = asyncio.create_task(ctl.run())
    try:
        yield ctl
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await ctl.close()


def _slice(api: client.ApiClient, namespace: str, key: str, family: str = "IPv4") -> Any:
    return client.DiscoveryV1Api(api).read_namespaced_endpoint_slice(
        slice_name(SERVICE, key, family),  # type: ignore[arg-type]
        namespace,
    )


def _endpoints(
    api: client.ApiClient, namespace: str, key: str
) -> list[tuple[str, bool, bool, bool]]:
    s = _slice(api, namespace, key)
    return [
        (e.addresses[0], e.conditions.ready, e.conditions.serving, e.conditions.terminating)
        for e in s.endpoints or []
    ]


async def test_slice_content_is_complete_and_true(kube: client.ApiClient, namespace: str) -> None:
    key = "consumer-0-1751686503-0"
    uid = create_consumer_pod(kube, namespace, "consumer-0", key, ips=["10.244.1.7"])
    ctl = LoadBalancerController(kube, LbSettings(namespace=namespace))
    async with running(ctl):
        report = await ctl.apply(
            DesiredState.of(
                [
                    chain(key, 30301, namespace=namespace, extra=[("rpc", 30401, 26657)]),
                    chain("no-pods-yet", 30302, namespace=namespace),
                ]
            )
        )
        assert report.ok
    svc = client.CoreV1Api(kube).read_namespaced_service(SERVICE, namespace)
    s = _slice(kube, namespace, key)
    assert s.address_type == "IPv4"
    assert s.metadata.labels[SERVICE_NAME_LABEL] == SERVICE
    managed_by = str(s.metadata.labels[MANAGED_BY_LABEL])
    assert managed_by == MANAGED_BY_VALUE
    assert managed_by != "endpointslice-controller.k8s.io"
    assert s.metadata.annotations[KEY_ANNOTATION] == key
    [ref] = s.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == (
        "Service",
        SERVICE,
        svc.metadata.uid,
        True,
    )
    svc_ports = {p.name: p for p in svc.spec.ports}
    assert sorted((p.name, p.port) for p in s.ports) == sorted(
        [(service_port_name(key, "p2p"), 26656), (service_port_name(key, "rpc"), 26657)]
    )
    assert {p.name for p in s.ports} < set(svc_ports)
    assert svc_ports[service_port_name(key, "p2p")].port == 30301
    [ep] = s.endpoints
    assert ep.addresses == ["10.244.1.7"]
    assert (ep.conditions.ready, ep.conditions.serving, ep.conditions.terminating) == (
        True,
        True,
        False,
    )
    assert (ep.target_ref.kind, ep.target_ref.name, ep.target_ref.namespace, ep.target_ref.uid) == (
        "Pod",
        "consumer-0",
        namespace,
        uid,
    )
    # A chain with no pods yet has an explicit empty IPv4 slice, and no IPv6 slice.
    assert _slice(kube, namespace, "no-pods-yet").endpoints in (None, [])
    assert report.outcome("no-pods-yet").slices == (slice_name(SERVICE, "no-pods-yet", "IPv4"),)


async def test_slices_follow_ip_change_readiness_termination_and_deletion(
    kube: client.ApiClient, namespace: str
) -> None:
    key = "testchain-0"
    create_consumer_pod(kube, namespace, "node-0", key, ips=["10.244.0.10"], finalizers=[HOLD])
    ctl = LoadBalancerController(kube, LbSettings(namespace=namespace))
    core = client.CoreV1Api(kube)
    async with running(ctl):
        assert (await ctl.apply(DesiredState.of([chain(key, 30159, namespace=namespace)]))).ok
        assert _endpoints(kube, namespace, key) == [("10.244.0.10", True, True, False)]

        # The pod is restarted elsewhere: new IP.
        set_pod_status(kube, namespace, "node-0", ips=["10.244.3.33"], ready=True)
        await eventually(
            "new pod IP in slice",
            lambda: _endpoints(kube, namespace, key) == [("10.244.3.33", True, True, False)],
            timeout=FOLLOW,
            interval=0.02,
        )

        # Not ready: kept in the slice, but not ready and not serving.
        set_pod_status(kube, namespace, "node-0", ips=["10.244.3.33"], ready=False)
        await eventually(
            "not-ready endpoint",
            lambda: _endpoints(kube, namespace, key) == [("10.244.3.33", False, False, False)],
            timeout=FOLLOW,
            interval=0.02,
        )

        # A second pod joins, dual-stack: an IPv6 slice appears.
        create_consumer_pod(
            kube, namespace, "node-1", key, ips=["10.244.4.4", "fd00:10:244::4"], ready=True
        )
        await eventually(
            "second pod in both families",
            lambda: (
                len(_endpoints(kube, namespace, key)) == 2
                and [e.addresses for e in _slice(kube, namespace, key, "IPv6").endpoints]
                == [["fd00:10:244::4"]]
            ),
            timeout=FOLLOW,
            interval=0.02,
        )

        # Terminating (deletion requested, finalizer holds it): terminating, not ready.
        set_pod_status(kube, namespace, "node-0", ips=["10.244.3.33"], ready=True)
        core.delete_namespaced_pod("node-0", namespace)
        await eventually(
            "terminating endpoint",
            lambda: ("10.244.3.33", False, True, True) in _endpoints(kube, namespace, key),
            timeout=FOLLOW,
            interval=0.02,
        )

        # Gone: its endpoint is removed; the other pod stays.
        remove_finalizers(kube, namespace, "node-0")
        await eventually(
            "deleted pod's endpoint removed",
            lambda: _endpoints(kube, namespace, key) == [("10.244.4.4", True, True, False)],
            timeout=FOLLOW,
            interval=0.02,
        )
        core.delete_namespaced_pod("node-1", namespace)

        def v6_gone() -> bool:
            names = {
                s.metadata.name
                for s in client.DiscoveryV1Api(kube)
                .list_namespaced_endpoint_slice(
                    namespace, label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
                )
                .items
            }
            return names == {slice_name(SERVICE, key, "IPv4")}

        await eventually(
            "IPv6 slice removed with the last IPv6 pod", v6_gone, timeout=FOLLOW, interval=0.02
        )
        assert _endpoints(kube, namespace, key) == []


async def test_any_chain_id_is_matched_to_exactly_its_pods(
    kube: client.ApiClient, namespace: str, request: pytest.FixtureRequest
) -> None:
    # Consumer pods live in another namespace than the Service.
    consumers = create_namespace(kube, f"{namespace[:50]}-c", wait_default_sa=True)
    request.addfinalizer(lambda: client.CoreV1Api(kube).delete_namespace(consumers))
    long_id = "a" * 22 + "-consumer-" + "9" * 18  # 50 bytes
    assert len(long_id.encode()) == 50
    odd_id = "Cosmos_Hub/test chain:ümlaut"  # not a valid label value
    create_consumer_pod(kube, consumers, "long", long_id, ips=["10.1.0.1"])
    create_consumer_pod(kube, consumers, "odd", odd_id, ips=["10.1.0.2"])
    # A decoy copies the odd chain's hash label but names another chain: never matched.
    create_consumer_pod(
        kube,
        consumers,
        "decoy",
        odd_id,
        ips=["10.1.0.3"],
        annotations={"ics-discovery.io/chain-id": "someone-else"},
    )
    ctl = LoadBalancerController(kube, LbSettings(namespace=namespace))
    async with running(ctl):
        report = await ctl.apply(
            DesiredState.of([chain(long_id, 30001), chain(odd_id, 30002)])  # all namespaces
        )
        assert report.ok, report
        assert [e[0] for e in _endpoints(kube, namespace, long_id)] == ["10.1.0.1"]
        assert [e[0] for e in _endpoints(kube, namespace, odd_id)] == ["10.1.0.2"]
        # The watch spans namespaces too.
        set_pod_status(kube, consumers, "odd", ips=["10.1.0.22"], ready=True)
        await eventually(
            "odd chain's new IP",
            lambda: [e[0] for e in _endpoints(kube, namespace, odd_id)] == ["10.1.0.22"],
            timeout=FOLLOW,
            interval=0.02,
        )
    for o in report.chains:
        for _, port_name in o.port_names:
            assert len(port_name) <= 63


async def test_many_chains_refreshed_at_once_all_follow_their_pods(
    kube: client.ApiClient, namespace: str
) -> None:
    keys = [f"bulk-{i:02d}" for i in range(20)]
    for i, key in enumerate(keys):
        create_consumer_pod(kube, namespace, f"node-{i:02d}", key, ips=[f"10.8.0.{i + 1}"])
    ctl = LoadBalancerController(kube, LbSettings(namespace=namespace))
    try:
        desired = DesiredState.of(
            chain(k, 30000 + i, namespace=namespace) for i, k in enumerate(keys)
        )
        assert (await ctl.apply(desired)).ok
        for i in range(len(keys)):
            set_pod_status(kube, namespace, f"node-{i:02d}", ips=[f"10.8.1.{i + 1}"], ready=True)
        watcher = ctl.watcher
        assert watcher is not None

        def cache_has_new_ips() -> bool:
            snap = watcher.snapshot() or []
            return sorted(ip for p in snap for ip in p.ips) == sorted(
                f"10.8.1.{i + 1}" for i in range(len(keys))
            )

        await eventually(
            "watch cache sees every new IP", cache_has_new_ips, timeout=FOLLOW, interval=0.02
        )
        report = await asyncio.to_thread(ctl.reconciler.refresh_endpoints, keys)
        assert report.ok
        assert report.writes == len(keys)
        for i, key in enumerate(keys):
            assert [e[0] for e in _endpoints(kube, namespace, key)] == [f"10.8.1.{i + 1}"]
        again = await asyncio.to_thread(ctl.reconciler.refresh_endpoints, keys)
        assert again.writes == 0
    finally:
        await ctl.close()
