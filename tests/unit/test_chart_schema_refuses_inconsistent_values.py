"""Combinations of values that cannot work stop `helm template` with a message naming them.

The schema checks each value alone; these rules span several (two writers
without a leader, a publishing switch without a key, a renew deadline that
outlives the lease, a ServiceMonitor without the Prometheus Operator's API,
restart mode without the workloads it may roll), and a key generated where Helm
cannot see the cluster (it would be a new key on every render).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.helm import find, run_helm, template, template_args, values

pytestmark = pytest.mark.helm

GRANTER = "cosmos1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnrk363e"

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"publishing.enabled": True}, "publishing.enabled needs a signing key"),
    (
        {
            "publishing.enabled": True,
            "publishing.key.existingSecret": "k",
            "publishing.key.generate": True,
            "provider.grpcUrls": ["provider:9090"],
        },
        "set only one of publishing.key.existingSecret and publishing.key.generate",
    ),
    (
        {
            "publishing.enabled": True,
            "publishing.key.generate": True,
            "provider.grpcUrls": ["provider:9090"],
        },
        "set publishing.authzGranter",
    ),
    (
        {"publishing.enabled": True, "publishing.key.existingSecret": "k"},
        "publishing.enabled needs provider.grpcUrls",
    ),
    (
        {"nodeKey.existingSecret": "n", "nodeKey.generate": True},
        "set only one of nodeKey.existingSecret and nodeKey.generate",
    ),
    (
        {"replicaCount": 2, "leaderElection.enabled": False},
        "replicaCount > 1 needs leaderElection.enabled=true",
    ),
    (
        {"leaderElection.renewDeadline": 15, "leaderElection.leaseDuration": 15},
        "renewDeadline must be shorter than leaderElection.leaseDuration",
    ),
    (
        {"leaderElection.retryPeriod": 9},
        "retryPeriod must be under leaderElection.renewDeadline / 1.2",
    ),
    (
        {"ports.compat": "ics-operator"},
        "ports.compat=ics-operator needs ports.scheme=ics-operator",
    ),
    (
        {"consumers.namespace": "consumers", "consumers.peersNamespaces": ["other"]},
        "consumers.peersNamespaces is only for consumers.namespace",
    ),
    (
        {"consumers.namespace": "", "consumers.peersNamespaces": []},
        "set consumers.namespace (where the consumer pods run) or",
    ),
    (
        {"publishing.nodeId": "ab" * 20, "nodeKey.generate": True},
        "set only one of publishing.nodeId and nodeKey",
    ),
    (
        {"publishing.nodeId": "ab" * 20, "nodeKey.existingSecret": "n"},
        "set only one of publishing.nodeId and nodeKey",
    ),
    ({"api.tls.clientCaSecret": "ca"}, "api.tls.clientCaSecret (mutual TLS) needs"),
    (
        {"metrics.serviceMonitor.enabled": True},
        "needs the Prometheus Operator's monitoring.coreos.com/v1 ServiceMonitor API",
    ),
    (
        {"metrics.serviceMonitor.enabled": True, "metrics.service.enabled": False},
        "metrics.serviceMonitor.enabled needs metrics.service.enabled=true",
    ),
    (
        {"metrics.prometheusRule.enabled": True},
        "needs the Prometheus Operator's monitoring.coreos.com/v1 PrometheusRule API",
    ),
    ({"consumers.notify": "restart"}, "set consumers.restartWorkloads to your consumer"),
    (
        {"consumers.notifyModes": {"chain-a": "restart"}},
        "set consumers.restartWorkloads to your consumer",
    ),
    (
        {"consumers.restartWorkloads": [{"kind": "Deployment", "name": "node"}]},
        "consumers.restartWorkloads is only for restart mode",
    ),
    (
        {
            "consumers.notify": "restart",
            "consumers.restartWorkloads": [
                {"kind": "Deployment", "name": "node", "namespace": "elsewhere"}
            ],
        },
        "Deployment node is in namespace elsewhere, where the service serves no consumer pods",
    ),
    (
        {
            "consumers.namespace": "",
            "consumers.peersNamespaces": ["a"],
            "consumers.notify": "restart",
            "consumers.restartWorkloads": [{"kind": "StatefulSet", "name": "node"}],
        },
        "StatefulSet node needs a namespace",
    ),
    (
        {"api.maxStreams": 256, "api.maxConcurrentRpcs": 256},
        "api.maxStreams must be below api.maxConcurrentRpcs",
    ),
    # Offline (helm template, Argo CD): a generated key would be a new one each time.
    ({"nodeKey.generate": True}, "set nodeKey.existingSecret instead"),
    (
        {
            "publishing.enabled": True,
            "publishing.key.generate": True,
            "publishing.authzGranter": GRANTER,
            "provider.grpcUrls": ["provider:9090"],
        },
        "set publishing.key.existingSecret instead",
    ),
]


@pytest.mark.parametrize(("bad", "message"), REFUSED, ids=[",".join(c[0]) for c in REFUSED])
def test_template_refuses_the_combination(bad: dict[str, Any], message: str) -> None:
    done = run_helm(template_args(values(**bad)))
    assert done.returncode != 0, f"rendered {bad}"
    assert message in done.stderr, done.stderr


def test_the_same_values_render_once_the_conflict_is_resolved() -> None:
    """Each refusal is about the combination: fixing one side renders (guards overbroad rules)."""
    fixed: list[dict[str, Any]] = [
        {
            "publishing.enabled": True,
            "publishing.key.existingSecret": "k",
            "provider.grpcUrls": ["provider:9090"],
        },
        {
            "publishing.enabled": True,
            "publishing.key.existingSecret": "k",
            "publishing.authzGranter": GRANTER,
            "provider.grpcUrls": ["provider:9090"],
        },
        {"nodeKey.existingSecret": "n"},
        {"publishing.nodeId": "ab" * 20},
        {
            "consumers.notify": "restart",
            "consumers.restartWorkloads": [{"kind": "Deployment", "name": "node"}],
        },
        {
            "consumers.namespace": "",
            "consumers.peersNamespaces": ["a"],
            "consumers.notify": "restart",
            "consumers.restartWorkloads": [{"kind": "Deployment", "name": "n", "namespace": "a"}],
        },
        {"api.maxStreams": 255, "api.maxConcurrentRpcs": 256},
        {"replicaCount": 2, "leaderElection.enabled": True},
        {"replicaCount": 1, "leaderElection.enabled": False},
        {"leaderElection.renewDeadline": 14, "leaderElection.leaseDuration": 15},
        {"consumers.namespace": "", "consumers.peersNamespaces": ["other"]},
        {"api.tls.clientCaSecret": "ca", "api.tls.existingSecret": "tls"},
    ]
    for v in fixed:
        assert template(values(**v)), v
    monitored = template(
        values(**{"metrics.serviceMonitor.enabled": True}),
        api_versions=["monitoring.coreos.com/v1/ServiceMonitor"],
    )
    assert len(find(monitored, "ServiceMonitor")) == 1
