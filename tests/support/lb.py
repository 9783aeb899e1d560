"""Helpers for lbmanager tests and benchmarks against the real API server.

`CountingApiClient` is instrumentation, not a mock: every request goes to the
real kube-apiserver; the client only records method and path so tests can
count write requests. Consumer pods are real Pod objects; with no kubelet
running, their IPs and readiness are written through the status subresource,
as a kubelet would.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lbmanager import (
    ChainExposure,
    ChainKey,
    ExposedPort,
    keyed_pod_selector,
    pod_annotations_for_key,
    pod_labels_for_key,
)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CountingApiClient(client.ApiClient):
    """An ApiClient that records (method, path) of every request it sends."""

    def __init__(self, configuration: client.Configuration) -> None:
        super().__init__(configuration)
        self._calls_lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        with self._calls_lock:
            self.calls.append((method.upper(), urlparse(url).path))
        return super().call_api(method, url, *args, **kwargs)

    @property
    def writes(self) -> list[tuple[str, str]]:
        with self._calls_lock:
            return [c for c in self.calls if c[0] in WRITE_METHODS]

    def reset(self) -> None:
        with self._calls_lock:
            self.calls.clear()


def counting_client(admin: client.ApiClient) -> CountingApiClient:
    """A counting client with the same server and credentials as `admin`."""
    return CountingApiClient(admin.configuration)


def chain(
    key: str,
    port: int,
    *,
    target: int = 26656,
    namespace: str | None = None,
    extra: Sequence[tuple[str, int, int]] = (),
) -> ChainExposure:
    """A chain exposing `p2p` on `port` (plus `extra` (role, port, target)), keyed pods."""
    ports = (ExposedPort("p2p", port, target), *(ExposedPort(r, p, t) for r, p, t in extra))
    return ChainExposure(ChainKey(key), ports, keyed_pod_selector(key, namespace))


def create_consumer_pod(  # noqa: PLR0913 (options are keyword-only)
    api: client.ApiClient,
    namespace: str,
    name: str,
    key: str,
    *,
    ips: Sequence[str] = (),
    ready: bool = True,
    finalizers: Sequence[str] = (),
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> str:
    """Create a consumer pod of `key` (labels and annotation by convention); its uid."""
    core = client.CoreV1Api(api)
    meta: dict[str, Any] = {
        "name": name,
        "labels": labels if labels is not None else pod_labels_for_key(key),
        "annotations": annotations if annotations is not None else pod_annotations_for_key(key),
    }
    if finalizers:
        meta["finalizers"] = list(finalizers)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [
                {
                    "name": "node",
                    "image": "registry.invalid/consumer:1",
                    "ports": [{"name": "p2p", "containerPort": 26656}],
                }
            ]
        },
    }
    pod = core.create_namespaced_pod(namespace, model(client.V1Pod, body))
    if ips:
        set_pod_status(api, namespace, name, ips=ips, ready=ready)
    return str(pod.metadata.uid)


def set_pod_status(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    ips: Sequence[str],
    ready: bool,
    phase: str = "Running",
) -> None:
    """Write IPs, phase and the Ready condition the way a kubelet reports them."""
    status: dict[str, Any] = {
        "phase": phase,
        "podIP": ips[0] if ips else None,
        "podIPs": [{"ip": ip} for ip in ips] or None,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    client.CoreV1Api(api).patch_namespaced_pod_status(
        name, namespace, {"status": status}, _content_type="application/merge-patch+json"
    )


def remove_finalizers(api: client.ApiClient, namespace: str, name: str) -> None:
    try:
        client.CoreV1Api(api).patch_namespaced_pod(
            name,
            namespace,
            {"metadata": {"finalizers": None}},
            _content_type="application/merge-patch+json",
        )
    except ApiException as e:
        if e.status != 404:
            raise


def model(cls: Any, body: dict[str, Any]) -> Any:
    """A client model from API JSON (camelCase keys), for the typed client methods."""
    obj = cls.from_dict(body)
    assert obj is not None, body
    return obj


def as_json(api: client.ApiClient, model: Any) -> dict[str, Any]:
    """A client model as the API's JSON (camelCase keys), for exact comparisons."""
    out: dict[str, Any] = api.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
    return out


def service_ports(api: client.ApiClient, namespace: str, name: str) -> dict[str, int]:
    svc = client.CoreV1Api(api).read_namespaced_service(name, namespace)
    return {str(p.name): int(p.port) for p in svc.spec.ports}


def list_slices(
    api: client.ApiClient, namespace: str, label_selector: str | None = None
) -> list[Any]:
    disc = client.DiscoveryV1Api(api)
    return list(disc.list_namespaced_endpoint_slice(namespace, label_selector=label_selector).items)
