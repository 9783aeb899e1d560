"""Every Kubernetes API path the product requests, built in one place. Pure.

Names are percent-encoded: a hostile or odd name can never reach another path.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote


def services_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{quote(namespace, safe='')}/services"
    return base if name is None else f"{base}/{quote(name, safe='')}"


def slices_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/discovery.k8s.io/v1/namespaces/{quote(namespace, safe='')}/endpointslices"
    return base if name is None else f"{base}/{quote(name, safe='')}"


def pods_path(namespace: str | None) -> str:
    if namespace is None:
        return "/api/v1/pods"
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods"


def configmaps_path(namespace: str | None, name: str | None = None) -> str:
    if namespace is None:
        return "/api/v1/configmaps"
    base = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps"
    return base if name is None else f"{base}/{quote(name, safe='')}"


_WORKLOAD_RESOURCES: Final = {"Deployment": "deployments", "StatefulSet": "statefulsets"}


def workload_path(kind: str, namespace: str | None, name: str | None = None) -> str:
    """Deployments or StatefulSets (`kind`), in one namespace or all."""
    resource = _WORKLOAD_RESOURCES[kind]
    if namespace is None:
        return f"/apis/apps/v1/{resource}"
    base = f"/apis/apps/v1/namespaces/{quote(namespace, safe='')}/{resource}"
    return base if name is None else f"{base}/{quote(name, safe='')}"


def lease_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}/leases"
    return base if name is None else f"{base}/{quote(name, safe='')}"


def custom_resource_path(
    group: str, version: str, plural: str, namespace: str | None, name: str | None = None
) -> str:
    """A custom resource collection (all namespaces when `namespace` is None) or one object."""
    base = f"/apis/{group}/{version}"
    if namespace is None:
        return f"{base}/{plural}"
    base += f"/namespaces/{quote(namespace, safe='')}/{plural}"
    return base if name is None else f"{base}/{quote(name, safe='')}"
