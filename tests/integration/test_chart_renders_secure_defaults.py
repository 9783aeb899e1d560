"""`helm lint` and `helm template` of the chart: secure defaults and the shared LoadBalancer.

Offline rendering with the real `helm` (no cluster): what every validator gets
without asking (non-root, read-only root filesystem, no capabilities, seccomp,
resources, probes on the health endpoints, no Service links), and how each
switch changes the objects: PodDisruptionBudget only with several replicas,
NetworkPolicy only when asked, the LoadBalancer's fixed address through both
MetalLB annotations or `loadBalancerIP`, the LoadBalancer in a namespace of its
own, restart rights only on named workloads, no key generated offline.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.helm import (
    EXAMPLE_VALUES,
    Values,
    find,
    granted_permissions,
    lint,
    one,
    run_helm,
    template,
    template_args,
    values,
)

pytestmark = pytest.mark.helm

CASES: dict[str, Values] = {
    "defaults": values(),
    **{name: values(path) for name, path in EXAMPLE_VALUES.items()},
}


def _pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one(objects, "Deployment")["spec"]["template"]["spec"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_lint_passes_and_every_pod_runs_locked_down(case: str) -> None:
    assert "0 chart(s) failed" in lint(CASES[case])
    objects = template(CASES[case])
    spec = _pod_spec(objects)

    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["enableServiceLinks"] is False
    assert not spec.get("hostNetwork")
    assert not spec.get("hostPID")
    assert all("hostPath" not in v for v in spec.get("volumes", []))

    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert set(c["resources"]["requests"]) == {"cpu", "memory"}
        assert "memory" in c["resources"]["limits"]
    (main,) = spec["containers"]
    assert main["command"] == ["ics-discovery"]
    assert main["args"] == ["run"]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}

    sa = one(objects, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False  # only this pod asks for a token
    assert spec["automountServiceAccountToken"] is True
    assert spec["serviceAccountName"] == sa["metadata"]["name"]
    # The service never reads Secrets, so nothing grants it.
    granted = granted_permissions(objects, "provider", sa["metadata"]["name"])
    assert not [g for g in granted if g[2] == "secrets"]
    assert not find(objects, "ConfigMap")


def test_image_defaults_to_the_chart_app_version_and_digest_wins() -> None:
    import yaml

    from tests.support.helm import CHART

    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    (main,) = _pod_spec(template())["containers"]
    assert main["image"] == f"ghcr.io/ics-peer-discovery/ics-discovery:{app_version}"
    digest = "sha256:" + "ab" * 32
    (pinned,) = _pod_spec(template(values(**{"image.digest": digest})))["containers"]
    assert pinned["image"] == f"ghcr.io/ics-peer-discovery/ics-discovery@{digest}"


@pytest.mark.parametrize(
    ("replicas", "enabled", "expected"),
    [(1, True, None), (2, True, 1), (3, True, 1), (2, False, None)],
)
def test_disruption_budget_only_with_several_replicas(
    replicas: int, enabled: bool, expected: int | None
) -> None:
    objects = template(values(**{"replicaCount": replicas, "podDisruptionBudget.enabled": enabled}))
    pdbs = find(objects, "PodDisruptionBudget")
    if expected is None:
        assert pdbs == []
    else:
        (pdb,) = pdbs
        assert pdb["spec"]["minAvailable"] == expected
        assert pdb["spec"]["selector"] == one(objects, "Deployment")["spec"]["selector"]


def test_shared_loadbalancer_defaults() -> None:
    svc = one(template(), "Service", "p2p-loadbalancer")
    spec = svc["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["selector"] == {"this-will-not-match": "anything"}
    assert spec["ports"] == [{"name": "placeholder", "port": 1, "targetPort": 1, "protocol": "TCP"}]
    assert spec["allocateLoadBalancerNodePorts"] is False
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert "loadBalancerIP" not in spec
    assert "loadBalancerSourceRanges" not in spec
    assert svc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_fixed_address_by_metallb_annotations_or_load_balancer_ip() -> None:
    metallb = one(
        template(values(**{"loadBalancer.ip": "172.18.255.200"})), "Service", "p2p-loadbalancer"
    )
    assert metallb["metadata"]["annotations"]["metallb.universe.tf/loadBalancerIPs"] == (
        "172.18.255.200"
    )
    assert metallb["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == "172.18.255.200"
    assert "loadBalancerIP" not in metallb["spec"]

    v6 = one(
        template(values(**{"loadBalancer.ip": "fc00:f853:ccd:e793::c8"})),
        "Service",
        "p2p-loadbalancer",
    )
    assert v6["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == "fc00:f853:ccd:e793::c8"

    spec_ip = one(
        template(
            values(
                **{
                    "loadBalancer.ip": "203.0.113.7",
                    "loadBalancer.ipMode": "loadBalancerIP",
                    "loadBalancer.sourceRanges": ["198.51.100.0/24"],
                    "loadBalancer.externalTrafficPolicy": "Local",
                    "loadBalancer.loadBalancerClass": "example.com/lb",
                    "loadBalancer.annotations": {"example.com/tier": "edge"},
                    "loadBalancer.keepOnUninstall": False,
                }
            )
        ),
        "Service",
        "p2p-loadbalancer",
    )
    assert spec_ip["spec"]["loadBalancerIP"] == "203.0.113.7"
    assert spec_ip["spec"]["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
    assert spec_ip["spec"]["externalTrafficPolicy"] == "Local"
    assert spec_ip["spec"]["loadBalancerClass"] == "example.com/lb"
    assert spec_ip["metadata"]["annotations"] == {"example.com/tier": "edge"}


def test_loadbalancer_left_to_the_service_keeps_the_rights_to_create_it() -> None:
    objects = template(values(**{"loadBalancer.create": False, "loadBalancer.namespace": "edge"}))
    assert not find(objects, "Service", "p2p-loadbalancer")
    granted = granted_permissions(objects, "provider", "ics-ics-validator")
    assert ("edge", "", "services", "create", "") in granted
    assert ("edge", "", "services", "update", "p2p-loadbalancer") in granted


def test_network_policy_only_when_enabled() -> None:
    assert not find(template(), "NetworkPolicy")
    policy = one(
        template(
            values(
                **{
                    "networkPolicy.enabled": True,
                    "networkPolicy.metricsFrom": [
                        {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
                    ],
                    "consumers.namespace": "consumers",
                }
            )
        ),
        "NetworkPolicy",
    )
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    metrics, grpc = spec["ingress"]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    assert grpc["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    assert "from" not in grpc
    egress_ports = {p["port"] for rule in spec["egress"] for p in rule["ports"]}
    assert {53, 443, 6443, 9090, 26657} <= egress_ports
    consumers_rule = spec["egress"][-1]
    assert consumers_rule["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "consumers"}
    }
    open_egress = one(
        template(values(**{"networkPolicy.enabled": True, "networkPolicy.restrictEgress": False})),
        "NetworkPolicy",
    )
    assert open_egress["spec"]["policyTypes"] == ["Ingress"]
    assert "egress" not in open_egress["spec"]


def test_keys_are_never_generated_where_helm_cannot_see_the_cluster() -> None:
    """`helm template` (and Argo CD, which renders with it) sees no Secret: a generated
    key would be a new one on every render, so the chart refuses and names the value."""
    for generate, existing in (
        (
            {
                "publishing.enabled": True,
                "provider.grpcUrls": ["provider:9090"],
                "publishing.key.generate": True,
                "publishing.authzGranter": "cosmos1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnrk363e",
            },
            "publishing.key.existingSecret",
        ),
        ({"nodeKey.generate": True}, "nodeKey.existingSecret"),
    ):
        done = run_helm(template_args(values(**generate)))
        assert done.returncode != 0
        assert "generates a key only with helm install/upgrade against the cluster" in done.stderr
        assert f"set {existing} instead" in done.stderr
        assert "Secret" not in "".join(o.get("kind", "") for o in _documents(done.stdout))
    # The GitOps way: existing Secrets, referenced and never rendered.
    objects = template(
        values(
            **{
                "publishing.enabled": True,
                "provider.grpcUrls": ["provider:9090"],
                "publishing.key.existingSecret": "signing",
                "nodeKey.existingSecret": "node-secret",
            }
        )
    )
    assert not find(objects, "Secret")


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def test_loadbalancer_gets_a_namespace_of_its_own() -> None:
    """By default the Service, its EndpointSlices and the right to write them live in
    `<release namespace>-lb`, created by Helm; the release namespace gets only the Lease."""
    objects = template(values(**{"consumers.namespace": "consumers"}), namespace="provider")
    (ns,) = find(objects, "Namespace")
    assert ns["metadata"]["name"] == "provider-lb"
    assert ns["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert one(objects, "Service", "p2p-loadbalancer")["metadata"]["namespace"] == "provider-lb"
    granted = granted_permissions(objects, "provider", "ics-ics-validator")
    assert {g[2] for g in granted if g[0] == "provider"} == {"leases"}
    assert ("provider-lb", "", "services", "create", "") in granted
    assert ("provider-lb", "discovery.k8s.io", "endpointslices", "update", "") in granted
    env = {
        e["name"]: e.get("value")
        for e in one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["ICS_DISCOVERY_SERVICE_NAMESPACE"] == "provider-lb"
    assert env["ICS_DISCOVERY_LEASE_NAMESPACE"] == "provider"

    # An existing namespace: not created; uninstall may delete it when nothing is kept.
    given = template(
        values(
            **{
                "loadBalancer.namespace": "edge",
                "loadBalancer.createNamespace": False,
                "loadBalancer.keepOnUninstall": False,
            }
        )
    )
    assert not find(given, "Namespace")
    assert one(given, "Service", "p2p-loadbalancer")["metadata"]["namespace"] == "edge"
    # The release namespace itself is never created, even when named.
    same = template(values(**{"loadBalancer.namespace": "provider"}), namespace="provider")
    assert not find(same, "Namespace")


def test_restart_mode_may_update_only_the_named_workloads() -> None:
    objects = template(
        values(
            **{
                "consumers.namespace": "consumers",
                "consumers.notify": "restart",
                "consumers.restartWorkloads": [
                    {"kind": "StatefulSet", "name": "neutron-node"},
                    {"kind": "StatefulSet", "name": "stride-node"},
                ],
            }
        )
    )
    granted = granted_permissions(objects, "provider", "ics-ics-validator")
    assert {g for g in granted if g[1] == "apps"} == {
        ("consumers", "apps", "deployments", "list", ""),
        ("consumers", "apps", "statefulsets", "list", ""),
        ("consumers", "apps", "statefulsets", "get", "neutron-node"),
        ("consumers", "apps", "statefulsets", "update", "neutron-node"),
        ("consumers", "apps", "statefulsets", "get", "stride-node"),
        ("consumers", "apps", "statefulsets", "update", "stride-node"),
    }
    # No rule without resourceNames writes a workload (an empty list would mean all).
    for role in find(objects, "Role"):
        for rule in role["rules"]:
            if "update" in rule["verbs"] and "apps" in rule["apiGroups"]:
                assert rule.get("resourceNames"), rule
