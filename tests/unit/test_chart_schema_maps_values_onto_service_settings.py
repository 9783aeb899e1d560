"""The chart's values reach `ics-discovery run` as settings it accepts, and mean the same thing.

The Deployment's environment is fed to the service's own settings loader
(`discovery.settings.load_settings`): every variable must be a known setting,
and what the settings say (Service name and namespace, Lease, consumer
namespace, listen ports) must agree with the objects and RBAC the chart
rendered, or the service would look in one place while allowed in another.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from discovery.interop import Compat
from discovery.ports import PortScheme
from discovery.settings import ENV_PREFIX, Settings, load_settings, unknown_environment
from discovery.types import NotifyMode
from tests.support.helm import (
    EXAMPLE_VALUES,
    container_environment,
    granted_permissions,
    one,
    template,
    values,
)

pytestmark = pytest.mark.helm

OPERATOR = "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2"
RPC = ["http://provider-node.provider.svc.cluster.local:26657"]
POD_NAME = "ics-ics-validator-5d9f8c7b6-x2x7q"
FAKE_KEY = "f" * 64


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deploy = one(objects, "Deployment")
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["ics-discovery"]
    return dict(containers[0])


def _environment(objects: list[dict[str, Any]]) -> dict[str, str]:
    """What the kubelet would give the container (the key Secret holding FAKE_KEY)."""
    secrets = {("operator-key", "signing-key"): FAKE_KEY}
    return container_environment(objects, pod_name=POD_NAME, secrets=secrets)


def _settings(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    import os

    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert unknown_environment(env) == []
    return load_settings(config_file=None)


def _rendered(*files: Path, **set_json: Any) -> list[dict[str, Any]]:
    base = {
        "provider.operatorAddress": OPERATOR,
        "provider.rpcUrls": RPC,
        "provider.grpcUrls": ["provider:9090"],
    }
    return template(values(*files, **{**base, **set_json}), namespace="validators")


CASES = {
    "defaults": (),
    **{name: (path,) for name, path in EXAMPLE_VALUES.items()},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_settings_agree_with_rendered_objects(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = _rendered(*CASES[case])
    container = _container(objects)
    env = _environment(objects)
    s = _settings(env, monkeypatch)

    assert s.operator_address == OPERATOR
    assert s.provider_rpc_urls == RPC
    assert s.kubeconfig is None  # in-cluster ServiceAccount
    assert s.leader_identity == POD_NAME
    assert s.grpc_reflection is True  # on unless turned off

    lb = one(objects, "Service", s.service_name)
    assert lb["spec"]["type"] == "LoadBalancer"
    assert lb["metadata"]["namespace"] == s.service_namespace

    sa = one(objects, "ServiceAccount")
    granted = granted_permissions(objects, "validators", sa["metadata"]["name"])
    assert (s.service_namespace, "", "services", "list", "") in granted
    assert (s.service_namespace, "", "services", "update", s.service_name) in granted
    assert (s.service_namespace, "discovery.k8s.io", "endpointslices", "create", "") in granted
    if s.leader_election:
        lease_ns = s.effective_lease_namespace()
        assert (lease_ns, "coordination.k8s.io", "leases", "update", s.lease_name) in granted
        assert (lease_ns, "coordination.k8s.io", "leases", "create", "") in granted
    pods_scope = s.consumer_namespace or "*"
    assert (pods_scope, "", "pods", "watch", "") in granted

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(s.grpc_listen.rsplit(":", 1)[1]) == ports["grpc"]
    assert int(s.metrics_listen.rsplit(":", 1)[1]) == ports["metrics"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_every_service_setting_value_arrives_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = _rendered(
        **{
            "provider.websocketUrls": ["ws://provider:26657/websocket"],
            "provider.grpcUrls": ["provider:9090", "[2001:db8::1]:9090"],
            "provider.grpcTls": True,
            "provider.restUrls": ["https://rest.example.org"],
            "loadBalancer.name": "consumer-lb",
            "loadBalancer.namespace": "edge",
            "ports.scheme": "ics-operator",
            "ports.reserved": [30100, 30200],
            "ports.compat": "ics-operator",
            "consumers.namespace": "consumers",
            "consumers.podLabels": {"team": "validators"},
            "consumers.rpcPort": 36657,
            "consumers.notify": "dial",
            "consumers.notifyModes": {"chain-a": "restart", "chain-b": "none", "c-1": "cosmopilot"},
            "consumers.notifyResources": {"c-1": "ChainNodeSet/c-nodes"},
            "consumers.restartWorkloads": [{"kind": "StatefulSet", "name": "chain-a-node"}],
            "resyncInterval": 45.5,
            "publishing.enabled": True,
            "publishing.key.existingSecret": "operator-key",
            "publishing.authzGranter": "cosmos1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnrk363e",
            "publishing.feeDenom": "uatom",
            "publishing.gasPrice": 0.0025,
            "publishing.gasAdjustment": 1.3,
            "publishing.maxFee": 2500000,
            "publishing.holdDown": 12.5,
            "publishing.minInterval": 900,
            "consumers.restartHoldDown": 45,
            "publishing.nodeId": "AB" * 20,
            "leaderElection.leaseName": "ics-lease",
            "leaderElection.leaseDuration": 20,
            "leaderElection.renewDeadline": 12,
            "leaderElection.retryPeriod": 3,
            "api.port": 9500,
            "api.listenAddress": "::",
            "api.reflection": False,
            "api.maxConcurrentRpcs": 64,
            "api.maxStreams": 48,
            "api.tls.existingSecret": "api-tls",
            "api.tls.clientCaSecret": "api-clients",
            "metrics.port": 9600,
            "log.level": "debug",
            "log.format": "text",
            "endpointPolicy.denyCidrs": ["10.0.0.0/8"],
            "endpointPolicy.allowCidrs": ["192.0.2.0/24"],
            "endpointPolicy.allowDnsNames": False,
            "endpointPolicy.profile": "testnet",
            "consumers.maxPeers": 17,
            "endpointPolicy.denyNameSuffixes": ["internal", "local"],
        }
    )
    container = _container(objects)
    env = _environment(objects)
    s = _settings(env, monkeypatch)
    assert s.provider_websocket_urls == ["ws://provider:26657/websocket"]
    assert s.provider_grpc_urls == ["provider:9090", "[2001:db8::1]:9090"]
    assert s.provider_grpc_tls is True
    assert s.provider_rest_urls == ["https://rest.example.org"]
    assert (s.service_name, s.service_namespace) == ("consumer-lb", "edge")
    assert s.port_scheme is PortScheme.ICS_OPERATOR
    assert s.reserved_ports == [30100, 30200]
    assert s.compat is Compat.ICS_OPERATOR
    assert s.consumer_namespace == "consumers"
    assert s.consumer_pod_labels == {"team": "validators"}
    assert s.consumer_rpc_port == 36657
    assert s.notify_default is NotifyMode.DIAL
    assert s.notify_modes == {
        "c-1": NotifyMode.COSMOPILOT,
        "chain-a": NotifyMode.RESTART,
        "chain-b": NotifyMode.NONE,
    }
    assert s.notify_resources == {"c-1": "ChainNodeSet/c-nodes"}
    assert s.restart_scope() == frozenset({("StatefulSet", "consumers", "chain-a-node")})
    assert s.resync_interval == 45.5
    assert s.publish_endpoint is True
    assert s.publish_key_env is not None
    assert env[s.publish_key_env] == FAKE_KEY
    assert s.publish_key_file is None
    assert s.publish_authz_granter == "cosmos1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnrk363e"
    assert (s.publish_fee_denom, s.publish_gas_price) == ("uatom", 0.0025)
    assert s.publish_gas_adjustment == 1.3
    assert (s.publish_max_fee, s.publish_hold_down, s.publish_min_interval) == (2500000, 12.5, 900)
    assert s.restart_hold_down == 45
    assert s.publish_node_id == "ab" * 20
    assert s.node_key_secret_env is None
    assert s.peers_namespaces == []
    assert (s.lease_name, s.lease_namespace) == ("ics-lease", "validators")
    assert (s.lease_duration, s.renew_deadline, s.retry_period) == (20, 12, 3)
    assert s.grpc_listen == "[::]:9500"
    assert s.grpc_reflection is False
    assert (s.grpc_max_concurrent_rpcs, s.grpc_max_streams) == (64, 48)
    assert s.metrics_listen == ":9600"
    assert str(s.grpc_tls_cert_file) == "/run/ics-discovery/tls/tls.crt"
    assert str(s.grpc_tls_key_file) == "/run/ics-discovery/tls/tls.key"
    assert str(s.grpc_tls_client_ca_file) == "/run/ics-discovery/tls/client-ca.crt"
    assert (s.log_level, s.log_format) == ("debug", "text")
    assert s.endpoint_deny_cidrs == ["10.0.0.0/8"]
    assert s.endpoint_allow_cidrs == ["192.0.2.0/24"]
    assert s.endpoint_allow_dns_names is False
    assert s.endpoint_profile == "testnet"
    assert s.max_peers == 17
    assert s.endpoint_deny_name_suffixes == ["internal", "local"]
    # The key reaches the process only by reference: no env value holds it.
    key_var = next(v for v in container["env"] if v["name"] == s.publish_key_env)
    assert key_var["valueFrom"]["secretKeyRef"] == {"name": "operator-key", "key": "signing-key"}
    # TLS files are mounted where the settings point (copied with mode 0600 by the init container).
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/run/ics-discovery/tls" in mounts
    (init,) = _init_containers(objects)
    assert "install -m 0600" in " ".join(init["command"])


def _init_containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(one(objects, "Deployment")["spec"]["template"]["spec"].get("initContainers", []))


def test_node_key_secret_and_peers_namespaces_arrive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Consumers anywhere: peers only in the listed namespaces; the node key secret by reference."""
    objects = _rendered(
        **{
            "consumers.namespace": "",
            "consumers.peersNamespaces": ["team-b", "team-a"],
            "publishing.enabled": True,
            "publishing.key.existingSecret": "operator-key",
            "nodeKey.existingSecret": "node-secret",
            "nodeKey.existingSecretKey": "seed",
        }
    )
    container = _container(objects)
    node_secret = "n" * 64
    secrets = {("operator-key", "signing-key"): FAKE_KEY, ("node-secret", "seed"): node_secret}
    env = container_environment(objects, pod_name=POD_NAME, secrets=secrets)
    s = _settings(env, monkeypatch)
    assert s.consumer_namespace is None
    assert s.peers_namespaces == ["team-a", "team-b"]
    assert s.node_key_secret_env is not None
    assert env[s.node_key_secret_env] == node_secret
    var = next(v for v in container["env"] if v["name"] == s.node_key_secret_env)
    assert var["valueFrom"]["secretKeyRef"] == {"name": "node-secret", "key": "seed"}
    assert node_secret not in str(one(objects, "Deployment"))

    # Without publishing the service has no use for the secret: it is not given it.
    quiet = _rendered(**{"nodeKey.existingSecret": "node-secret"})
    names = {v["name"] for v in _container(quiet)["env"]}
    assert "ICS_DISCOVERY_NODE_KEY_SECRET_ENV" not in names


@pytest.mark.parametrize("case", sorted(CASES))
def test_chart_defaults_to_mainnet_and_its_kind_examples_to_testnet(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _settings(_environment(_rendered(*CASES[case])), monkeypatch)
    assert s.endpoint_profile == ("mainnet" if case == "defaults" else "testnet")
    assert s.endpoint_allow_dns_names is None
    assert s.max_peers == 50
