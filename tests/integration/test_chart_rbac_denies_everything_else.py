"""Acting as the chart's ServiceAccount, everything the service must never do is refused.

Real requests with a real ServiceAccount token (each must come back 403 from
the API server), plus a SelfSubjectAccessReview for each, so the check does not
depend on an object existing: Secrets anywhere, exec into pods, Services and
EndpointSlices outside the LoadBalancer's own namespace (the release namespace,
where the provider node may run, included) and other Services inside it,
namespaces, consumer workloads the values do not name, workloads and
ConfigMaps outside the consumer namespace, other Leases, RBAC itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from lbmanager.errors import KubernetesRejected
from lbmanager.kube import KubeRest
from tests.support.helm import granted_permissions, values
from tests.support.helm_fixtures import ChartReleases
from tests.support.kube import ControlPlane
from tests.support.lb import create_consumer_pod, model

pytestmark = [pytest.mark.kube, pytest.mark.helm]

OPERATOR = "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2"
SA = "ics-ics-validator"
KEY = "consumer-0-1751686503-0"


def _service(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "p", "port": 80}]},
    }


def _allowed(
    authz: client.AuthorizationV1Api,
    verb: str,
    resource: str,
    namespace: str | None,
    *,
    group: str = "",
    name: str | None = None,
    subresource: str | None = None,
) -> bool:
    review = authz.create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace,
                    verb=verb,
                    group=group,
                    resource=resource,
                    name=name,
                    subresource=subresource,
                )
            )
        )
    )
    return bool(review.status.allowed)


def test_service_account_is_refused_everything_outside_its_job(
    control_plane: ControlPlane,
    chart_releases: ChartReleases,
    kube: client.ApiClient,
    namespace: str,
) -> None:
    consumers = chart_releases.new_namespace("consumers")
    other = chart_releases.new_namespace("other")
    chart_releases.install(
        values(
            **{
                "provider.operatorAddress": OPERATOR,
                "provider.rpcUrls": ["http://provider:26657"],
                "loadBalancer.keepOnUninstall": False,
                "consumers.namespace": consumers,
                "consumers.notify": "restart",
                # Only this Deployment may be rolled.
                "consumers.restartWorkloads": [{"kind": "Deployment", "name": "consumer"}],
                # Publishing on: the service may watch its own Service, and only that one.
                "publishing.enabled": True,
                "publishing.key.existingSecret": "validator-key",
                "provider.grpcUrls": ["provider:9090"],
            }
        )
    )
    chart_releases.wait_for_rbac(
        namespace, SA, granted_permissions(chart_releases.manifest(), namespace, SA)
    )
    core = client.CoreV1Api(kube)
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"k": "v"})
    )
    core.create_namespaced_service(
        other, model(client.V1Service, _service("p2p-loadbalancer", other))
    )
    core.create_namespaced_service(other, model(client.V1Service, _service("web", other)))
    create_consumer_pod(kube, consumers, "consumer-0", KEY, ips=["10.244.1.7"])

    sa = control_plane.service_account_client(namespace, SA)
    rest = KubeRest(sa, attempts=1)
    authz = client.AuthorizationV1Api(sa)
    ns, cns, lbns = namespace, consumers, chart_releases.lb_namespace()
    svc = "/api/v1/namespaces/{}/services"
    slices = "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices"
    workload = "/apis/apps/v1/namespaces/{}/{}/{}"
    # (what, request, the same as an access review)
    refused: list[tuple[str, Callable[[], Any], tuple[str, str, str | None, dict[str, str]]]] = [
        (
            "list Secrets cluster-wide",
            lambda: rest.list("/api/v1/secrets"),
            ("list", "secrets", None, {}),
        ),
        (
            "read a Secret in its own namespace",
            lambda: rest.request("GET", f"/api/v1/namespaces/{ns}/secrets/s"),
            ("get", "secrets", ns, {"name": "s"}),
        ),
        (
            "list Secrets of the consumer namespace",
            lambda: rest.list(f"/api/v1/namespaces/{cns}/secrets"),
            ("list", "secrets", cns, {}),
        ),
        (
            "exec into a consumer pod",
            lambda: rest.request(
                "POST",
                f"/api/v1/namespaces/{cns}/pods/consumer-0/exec",
                query=[("command", "sh"), ("stdout", "true")],
            ),
            ("create", "pods", cns, {"name": "consumer-0", "subresource": "exec"}),
        ),
        (
            "delete a consumer pod",
            lambda: rest.request("DELETE", f"/api/v1/namespaces/{cns}/pods/consumer-0"),
            ("delete", "pods", cns, {"name": "consumer-0"}),
        ),
        (
            "create a pod",
            lambda: rest.create(
                f"/api/v1/namespaces/{cns}/pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "x"},
                    "spec": {"containers": [{"name": "x", "image": "x"}]},
                },
            ),
            ("create", "pods", cns, {}),
        ),
        (
            "update the same-named Service in another namespace",
            lambda: rest.replace(
                svc.format(other) + "/p2p-loadbalancer", _service("p2p-loadbalancer", other)
            ),
            ("update", "services", other, {"name": "p2p-loadbalancer"}),
        ),
        (
            "delete a Service in another namespace",
            lambda: rest.request("DELETE", svc.format(other) + "/web"),
            ("delete", "services", other, {"name": "web"}),
        ),
        (
            "patch a Service in another namespace",
            lambda: rest.request("PATCH", svc.format(other) + "/web", body={}),
            ("patch", "services", other, {"name": "web"}),
        ),
        (
            "create a Service in another namespace",
            lambda: rest.create(svc.format(other), _service("new", other)),
            ("create", "services", other, {}),
        ),
        (
            "watch every Service of the LoadBalancer namespace (it may watch only its own)",
            lambda: rest.watch_lines(svc.format(lbns), {}, read_timeout=5),
            ("watch", "services", lbns, {}),
        ),
        (
            "create a Service in the release namespace (where the provider node runs)",
            lambda: rest.create(svc.format(ns), _service("p2p-loadbalancer", ns)),
            ("create", "services", ns, {}),
        ),
        (
            "update a same-named Service in the release namespace",
            lambda: rest.replace(
                svc.format(ns) + "/p2p-loadbalancer", _service("p2p-loadbalancer", ns)
            ),
            ("update", "services", ns, {"name": "p2p-loadbalancer"}),
        ),
        (
            "list Services of the release namespace",
            lambda: rest.list(svc.format(ns)),
            ("list", "services", ns, {}),
        ),
        (
            "create an EndpointSlice in the release namespace",
            lambda: rest.create(
                slices.format(ns),
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {"name": "x"},
                    "addressType": "IPv4",
                    "endpoints": [],
                },
            ),
            ("create", "endpointslices", ns, {"group": "discovery.k8s.io"}),
        ),
        (
            "update a consumer Deployment the values do not name",
            lambda: rest.replace(
                workload.format(cns, "deployments", "other"),
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "other"}},
            ),
            ("update", "deployments", cns, {"name": "other", "group": "apps"}),
        ),
        (
            "update a StatefulSet of the named Deployment's name (only the Deployment is named)",
            lambda: rest.replace(
                workload.format(cns, "statefulsets", "consumer"),
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "consumer"}},
            ),
            ("update", "statefulsets", cns, {"name": "consumer", "group": "apps"}),
        ),
        (
            "patch the named consumer Deployment (it updates, never patches)",
            lambda: rest.request("PATCH", workload.format(cns, "deployments", "consumer"), body={}),
            ("patch", "deployments", cns, {"name": "consumer", "group": "apps"}),
        ),
        (
            "list ConfigMaps cluster-wide (consumers live in one namespace)",
            lambda: rest.list("/api/v1/configmaps"),
            ("list", "configmaps", None, {}),
        ),
        (
            "list Services of another namespace",
            lambda: rest.list(svc.format(other)),
            ("list", "services", other, {}),
        ),
        (
            "update another Service in its own namespace",
            lambda: rest.replace(
                svc.format(ns) + "/ics-ics-validator-metrics",
                _service("ics-ics-validator-metrics", ns),
            ),
            ("update", "services", ns, {"name": "ics-ics-validator-metrics"}),
        ),
        (
            "delete the LoadBalancer Service",
            lambda: rest.request("DELETE", svc.format(lbns) + "/p2p-loadbalancer"),
            ("delete", "services", lbns, {"name": "p2p-loadbalancer"}),
        ),
        (
            "delete the LoadBalancer namespace",
            lambda: rest.request("DELETE", f"/api/v1/namespaces/{lbns}"),
            ("delete", "namespaces", None, {"name": lbns}),
        ),
        (
            "delete its own namespace",
            lambda: rest.request("DELETE", f"/api/v1/namespaces/{ns}"),
            ("delete", "namespaces", None, {"name": ns}),
        ),
        (
            "delete another namespace",
            lambda: rest.request("DELETE", f"/api/v1/namespaces/{other}"),
            ("delete", "namespaces", None, {"name": other}),
        ),
        (
            "list pods cluster-wide (consumers live in one namespace)",
            lambda: rest.list("/api/v1/pods"),
            ("list", "pods", None, {}),
        ),
        (
            "list pods of its own namespace",
            lambda: rest.list(f"/api/v1/namespaces/{ns}/pods"),
            ("list", "pods", ns, {}),
        ),
        (
            "write ConfigMaps outside the consumer namespace",
            lambda: rest.create(
                f"/api/v1/namespaces/{ns}/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
            ),
            ("create", "configmaps", ns, {}),
        ),
        (
            "update a Lease that is not the service's",
            lambda: rest.replace(
                f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/other",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": "other"},
                },
            ),
            ("update", "leases", ns, {"name": "other", "group": "coordination.k8s.io"}),
        ),
        (
            "delete a consumer Deployment",
            lambda: rest.request("DELETE", f"/apis/apps/v1/namespaces/{cns}/deployments/consumer"),
            ("delete", "deployments", cns, {"name": "consumer", "group": "apps"}),
        ),
        (
            "list Deployments cluster-wide",
            lambda: rest.list("/apis/apps/v1/deployments"),
            ("list", "deployments", None, {"group": "apps"}),
        ),
        (
            "grant itself more (create a RoleBinding)",
            lambda: rest.create(
                f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": "more"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "cluster-admin",
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": ns}],
                },
            ),
            ("create", "rolebindings", ns, {"group": "rbac.authorization.k8s.io"}),
        ),
        (
            "list nodes",
            lambda: rest.list("/api/v1/nodes"),
            ("list", "nodes", None, {}),
        ),
    ]
    problems: list[str] = []
    for what, request, (verb, resource, where, extra) in refused:
        try:
            request()
            problems.append(f"{what}: allowed")
        except KubernetesRejected as e:
            if e.status != 403:
                problems.append(f"{what}: {e.status} {e}")
        if _allowed(
            authz,
            verb,
            resource,
            where,
            group=extra.get("group", ""),
            name=extra.get("name"),
            subresource=extra.get("subresource"),
        ):
            problems.append(f"{what}: access review says allowed")
    assert problems == []

    # And what it needs is still allowed (the refusals are not a broken token).
    assert _allowed(authz, "update", "services", lbns, name="p2p-loadbalancer")
    assert _allowed(authz, "watch", "services", lbns, name="p2p-loadbalancer")
    assert _allowed(authz, "create", "services", lbns)
    assert _allowed(authz, "create", "endpointslices", lbns, group="discovery.k8s.io")
    assert _allowed(authz, "watch", "pods", cns)
    assert _allowed(authz, "update", "deployments", cns, group="apps", name="consumer")
