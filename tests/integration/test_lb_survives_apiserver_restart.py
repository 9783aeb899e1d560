"""A kube-apiserver restart between reconciles loses nothing; the pod watch resumes by itself."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from kubernetes import client

from lbmanager import DesiredState, LbSettings
from lbmanager.naming import slice_name
from lbmanager.reconciler import LoadBalancerController
from tests.support.kube import ControlPlane
from tests.support.lb import chain, counting_client, create_consumer_pod, set_pod_status
from tests.support.polling import eventually

pytestmark = pytest.mark.kube

SERVICE = "p2p-loadbalancer"


def _slice_ips(api: client.ApiClient, namespace: str, key: str) -> list[str]:
    s = client.DiscoveryV1Api(api).read_namespaced_endpoint_slice(
        slice_name(SERVICE, key, "IPv4"), namespace
    )
    return [e.addresses[0] for e in s.endpoints or []]


async def test_restart_between_reconciles_writes_nothing_and_the_watch_resumes(
    control_plane: ControlPlane, kube: client.ApiClient, namespace: str
) -> None:
    key = "restart-chain"
    create_consumer_pod(kube, namespace, "node", key, ips=["10.5.0.1"])
    api = counting_client(kube)
    ctl = LoadBalancerController(api, LbSettings(namespace=namespace))
    desired = DesiredState.of(
        [chain(key, 30555, namespace=namespace)]
        + [chain(f"chain-{i}", 30000 + i, namespace=namespace) for i in range(10)]
    )
    task = asyncio.create_task(ctl.run())
    try:
        assert (await ctl.apply(desired)).ok
        assert ctl.watcher is not None
        relists = ctl.watcher.stats.relists

        await asyncio.to_thread(control_plane.restart_apiserver)
        # Changed while the watch is reconnecting: the relist after it must catch it.
        set_pod_status(kube, namespace, "node", ips=["10.5.0.2"], ready=True)
        await eventually(
            "the slice following the pod after the restart",
            lambda: _slice_ips(kube, namespace, key) == ["10.5.0.2"],
            timeout=30,
        )
        assert ctl.watcher.stats.relists > relists

        # Same client object (its pooled connections died with the old server).
        api.reset()
        again = await ctl.apply(desired)
        assert again.ok
        assert again.writes == 0
        assert api.writes == []
        changed = DesiredState.of([*desired.chains[:-1], chain("after-restart", 31000)])
        report = await ctl.apply(changed)
        assert report.ok
        assert report.removed == (desired.chains[-1].key,)
        assert sorted(m for m, _ in api.writes) == ["DELETE", "POST", "PUT"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await ctl.close()
