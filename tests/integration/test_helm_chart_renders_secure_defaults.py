"""`helm lint` and `helm template` of the chart: secure defaults and the shared LoadBalancer.

Offline rendering with the real `helm` (no cluster): what every validator gets
without asking (non-root, read-only root filesystem, no capabilities, seccomp,
resources, probes on the health endpoints, no Service links), and how each
switch changes the objects: PodDisruptionBudget only with several replicas,
NetworkPolicy only when asked, the LoadBalancer's fixed address through both
MetalLB annotations or `loadBalancerIP`, keys only in Secrets.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support.helm import (
    EXAMPLE_VALUES,
    Values,
    find,
    granted_permissions,
    lint,
    one,
    template,
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


def test_generated_keys_live_only_in_secrets() -> None:
    objects = template(
        values(
            **{
                "publishing.enabled": True,
                "provider.grpcUrls": ["provider:9090"],
                "publishing.key.generate": True,
                "publishing.authzGranter": "cosmos1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnrk363e",
                "nodeKey.generate": True,
            }
        )
    )
    secrets = {s["metadata"]["name"]: s for s in find(objects, "Secret")}
    assert set(secrets) == {"ics-ics-validator-publish-key", "ics-ics-validator-node-key-secret"}
    key = base64.b64decode(secrets["ics-ics-validator-publish-key"]["data"]["signing-key"]).decode()
    assert len(key) == 64
    int(key, 16)
    others = "\n".join(str(o) for o in objects if o["kind"] != "Secret")
    assert key not in others
    assert secrets["ics-ics-validator-publish-key"]["data"]["signing-key"] not in others
    for s in secrets.values():
        assert s["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    # Two renders without a cluster generate two different keys (nothing is fixed in the chart).
    again = template(
        values(
            **{
                "publishing.enabled": True,
                "provider.grpcUrls": ["provider:9090"],
                "publishing.key.generate": True,
                "publishing.authzGranter": "cosmos1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnrk363e",
            }
        )
    )
    assert (
        one(again, "Secret")["data"]["signing-key"]
        != (secrets["ics-ics-validator-publish-key"]["data"]["signing-key"])
    )
