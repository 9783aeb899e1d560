"""The Kubernetes layer turns every broken connection into a transient error, and RBAC into a
permanent one: requests and watches to a real kube-apiserver through the tests' fault proxy.

Cut answers (inside TLS records), garbage instead of TLS, a stall past the
request timeout and a refused port all come out of `KubeRest` as
`KubernetesUnavailable` (transient: the service retries); a 403 comes out as
`KubernetesRejected` (permanent: reported). Healed, the same client works again.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from discovery.faults import fault_of
from lbmanager.errors import KubernetesRejected, KubernetesUnavailable
from lbmanager.kube import KubeRest
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.kube import ControlPlane

pytestmark = pytest.mark.kube


@pytest.fixture
def proxy(control_plane: ControlPlane) -> Iterator[FaultProxy]:
    server = urlsplit(control_plane.admin_client().configuration.host)
    assert server.hostname is not None
    assert server.port is not None
    with FaultProxy(server.hostname, server.port, name="fault-kube") as p:
        yield p


def rest_through(proxy: FaultProxy, api: client.ApiClient) -> KubeRest:
    """`api`'s credentials (and impersonation headers) through the proxy; one attempt per request,
    so each request that meets the fault shows its error."""
    config = copy.deepcopy(api.configuration)
    config.host = f"https://{proxy.address}"
    through = client.ApiClient(config)
    through.default_headers.update(api.default_headers)
    return KubeRest(through, timeout=2.0, attempts=1)


def create_many(rest: KubeRest, path: str) -> None:
    for _ in range(20):
        rest.create(path, {"metadata": {"generateName": "f-"}, "data": {"x": "y" * 2000}})


@pytest.mark.parametrize(
    ("fault", "after"),
    [(Fault.CUT, 200), (Fault.CUT, 4000), (Fault.GARBAGE, 0), (Fault.STALL, 0), (Fault.REFUSE, 0)],
)
def test_a_broken_connection_is_a_transient_kubernetes_error(
    control_plane: ControlPlane, namespace: str, proxy: FaultProxy, fault: Fault, after: int
) -> None:
    rest = rest_through(proxy, control_plane.admin_client())
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    rest.list(path)
    # Several answers' worth of bytes: a cut lands inside one of them.
    proxy.set_fault(fault, after_bytes=after)
    with pytest.raises(KubernetesUnavailable) as info:
        create_many(rest, path)
    assert info.value.transient
    assert fault_of(info.value).kind == "transient"
    proxy.heal()
    created = rest.create(path, {"metadata": {"name": "after-heal"}, "data": {"x": "y"}})
    assert created["metadata"]["name"] == "after-heal"


def test_a_cut_watch_is_a_transient_error(
    control_plane: ControlPlane, namespace: str, proxy: FaultProxy
) -> None:
    rest = rest_through(proxy, control_plane.admin_client())
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    _, version = rest.list(path)
    raw, lines = rest.watch_lines(path, {"resourceVersion": version}, read_timeout=10)
    admin = client.CoreV1Api(control_plane.admin_client())
    first: Any = {"metadata": {"name": "first"}}
    second: Any = {"metadata": {"name": "second"}, "data": {"x": "y" * 500}}
    admin.create_namespaced_config_map(namespace, first)
    assert '"first"' in next(lines)
    proxy.set_fault(Fault.CUT, after_bytes=10)
    admin.create_namespaced_config_map(namespace, second)
    with pytest.raises(KubernetesUnavailable):
        for _ in lines:
            pass
    proxy.heal()
    assert raw is not None


def test_rbac_refusal_is_a_permanent_kubernetes_error(
    control_plane: ControlPlane, namespace: str, proxy: FaultProxy
) -> None:
    nobody = control_plane.impersonating_client("nobody")
    rest = rest_through(proxy, nobody)
    with pytest.raises(KubernetesRejected) as info:
        rest.create(f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "x"}})
    assert info.value.status == 403
    assert fault_of(info.value).kind == "permanent"
