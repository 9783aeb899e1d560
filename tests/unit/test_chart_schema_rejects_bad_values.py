"""The chart's values.schema.json refuses unknown keys and wrong types, with real `helm`.

A typo in a validator's values must stop `helm install`, not produce a service
that silently runs with a default. Every case is refused by both `helm lint`
and `helm template`, and the message names the offending value.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.helm import (
    CHART,
    EXAMPLE_VALUES,
    lint_args,
    run_helm,
    template_args,
    values,
)

pytestmark = pytest.mark.helm

# (values as dotted --set-json keys, text the refusal must contain)
BAD: list[tuple[dict[str, Any], str]] = [
    ({"replicas": 2}, "Additional property replicas is not allowed"),
    ({"provider.rpcUrl": ["http://node:26657"]}, "Additional property rpcUrl is not allowed"),
    ({"publishing.key.value": "0" * 64}, "Additional property value is not allowed"),
    ({"loadBalancer.ipAddress": "10.0.0.5"}, "Additional property ipAddress is not allowed"),
    ({"replicaCount": "two"}, "replicaCount: Invalid type. Expected: integer"),
    ({"replicaCount": 1.5}, "replicaCount: Invalid type. Expected: integer"),
    ({"provider.rpcUrls": "http://node:26657"}, "provider.rpcUrls: Invalid type. Expected: array"),
    ({"provider.rpcUrls": ["ftp://node:26657"]}, "provider.rpcUrls.0: Does not match pattern"),
    (
        {"provider.rpcUrls": ["http://user:secret@node:26657"]},
        "provider.rpcUrls.0: Does not match pattern",
    ),
    ({"provider.websocketUrls": ["http://node:26657"]}, "provider.websocketUrls.0"),
    ({"provider.grpcUrls": ["node"]}, "provider.grpcUrls.0: Does not match pattern"),
    ({"provider.grpcTls": "yes"}, "provider.grpcTls: Invalid type. Expected: boolean"),
    ({"provider.operatorAddress": "cosmos1qqqsyqcyq5rqwzqf"}, "provider.operatorAddress"),
    ({"loadBalancer.ip": "10.0.0.300"}, "loadBalancer.ip"),
    ({"loadBalancer.ip": 167772165}, "loadBalancer.ip"),
    ({"loadBalancer.ipMode": "annotation"}, "loadBalancer.ipMode"),
    ({"loadBalancer.externalTrafficPolicy": "Global"}, "loadBalancer.externalTrafficPolicy"),
    ({"loadBalancer.sourceRanges": ["everyone"]}, "loadBalancer.sourceRanges.0"),
    ({"loadBalancer.name": "1-p2p"}, "loadBalancer.name: Does not match pattern"),
    ({"loadBalancer.namespace": "Provider"}, "loadBalancer.namespace: Does not match pattern"),
    ({"loadBalancer.annotations": {"a": 1}}, "loadBalancer.annotations.a: Invalid type"),
    ({"ports.scheme": "sha256"}, "ports.scheme"),
    ({"ports.compat": "go"}, "ports.compat"),
    ({"ports.reserved": [70000]}, "ports.reserved.0: Must be less than or equal to 65535"),
    ({"consumers.notify": "sometimes"}, "consumers.notify"),
    ({"consumers.notifyModes": {"chain-1": "reboot"}}, "consumers.notifyModes.chain-1"),
    ({"consumers.notifyResources": {"chain-1": "Bad Name"}}, "consumers.notifyResources.chain-1"),
    ({"consumers.namespace": "Consumers"}, "consumers.namespace: Does not match pattern"),
    (
        {"consumers.restartWorkloads": [{"kind": "DaemonSet", "name": "node"}]},
        "consumers.restartWorkloads.0.kind",
    ),
    ({"consumers.restartWorkloads": [{"kind": "Deployment"}]}, "name is required"),
    ({"loadBalancer.createNamespace": "yes"}, "loadBalancer.createNamespace: Invalid type"),
    ({"api.maxStreams": 0}, "api.maxStreams: Must be greater than or equal to 1"),
    ({"api.maxConcurrentRpcs": "many"}, "api.maxConcurrentRpcs: Invalid type"),
    ({"consumers.peersNamespaces": ["a", "a"]}, "consumers.peersNamespaces"),
    ({"consumers.rpcPort": 0}, "consumers.rpcPort: Must be greater than or equal to 1"),
    ({"consumers.maxPeers": 0}, "consumers.maxPeers: Must be greater than or equal to 1"),
    ({"consumers.maxPeers": 201}, "consumers.maxPeers: Must be less than or equal to 200"),
    ({"endpointPolicy.profile": "devnet"}, "endpointPolicy.profile"),
    ({"endpointPolicy.allowDnsNames": "yes"}, "endpointPolicy.allowDnsNames"),
    ({"resyncInterval": 0}, "resyncInterval: Must be greater than 0"),
    ({"publishing.enabled": "yes"}, "publishing.enabled: Invalid type. Expected: boolean"),
    ({"publishing.authzGranter": "not-an-address"}, "publishing.authzGranter"),
    ({"publishing.feeDenom": "1atom"}, "publishing.feeDenom: Does not match pattern"),
    ({"publishing.gasPrice": -0.1}, "publishing.gasPrice: Must be greater than or equal to 0"),
    ({"publishing.gasPrice": "0.01"}, "publishing.gasPrice: Invalid type"),
    ({"publishing.gasAdjustment": 0.5}, "publishing.gasAdjustment: Must be greater than or"),
    ({"publishing.nodeId": "ab" * 19}, "publishing.nodeId: Does not match pattern"),
    ({"leaderElection.leaseName": "Not_A_Name"}, "leaderElection.leaseName"),
    ({"leaderElection.leaseDuration": "15s"}, "leaderElection.leaseDuration: Invalid type"),
    ({"api.listenAddress": "localhost"}, "api.listenAddress"),
    ({"metrics.port": "9401"}, "metrics.port: Invalid type. Expected: integer"),
    ({"metrics.serviceMonitor.interval": "often"}, "metrics.serviceMonitor.interval"),
    ({"log.level": "verbose"}, "log.level"),
    ({"image.pullPolicy": "Sometimes"}, "image.pullPolicy"),
    ({"image.digest": "latest"}, "image.digest: Does not match pattern"),
    ({"podDisruptionBudget.minAvailable": "half"}, "podDisruptionBudget.minAvailable"),
    ({"networkPolicy.kubernetesApi.ports": ["https"]}, "networkPolicy.kubernetesApi.ports.0"),
    ({"extraEnv": [{"value": "x"}]}, "extraEnv.0: name is required"),
    ({"resources": "small"}, "resources: Invalid type. Expected: object"),
    ({"api.reflection": "yes"}, "api.reflection: Invalid type. Expected: boolean"),
    (
        {"metrics.prometheusRule.thresholds.streamDownFor": "5 minutes"},
        "metrics.prometheusRule.thresholds.streamDownFor: Does not match pattern",
    ),
    (
        {"metrics.prometheusRule.thresholds.peersMinRatio": 2},
        "metrics.prometheusRule.thresholds.peersMinRatio: Must be less than or equal to 1",
    ),
    (
        {"metrics.prometheusRule.thresholds.leftOutReasons": 'x"} or vector(1) #'},
        "metrics.prometheusRule.thresholds.leftOutReasons: Does not match pattern",
    ),
    ({"metrics.prometheusRule.thresholds.oops": "1m"}, "Additional property oops is not allowed"),
]


def _id(case: tuple[dict[str, Any], str]) -> str:
    return ",".join(case[0])


@pytest.mark.parametrize(("bad", "message"), BAD, ids=[_id(c) for c in BAD])
def test_helm_lint_and_template_refuse_the_value(bad: dict[str, Any], message: str) -> None:
    v = values(**bad)
    for args in (lint_args(v), template_args(v)):
        done = run_helm(args)
        out = done.stdout + done.stderr
        assert done.returncode != 0, f"helm {args[0]} accepted {bad}"
        assert message in out, out


def test_defaults_and_examples_pass_strict_lint() -> None:
    for v in [values(), *(values(path) for path in EXAMPLE_VALUES.values())]:
        done = run_helm(lint_args(v))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "0 chart(s) failed" in done.stdout


def test_every_documented_value_is_in_the_schema() -> None:
    """values.yaml and the schema describe the same keys, at every level the schema closes."""
    import yaml

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    defs = schema["definitions"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return resolve(defs[ref.rsplit("/", 1)[1]]) if ref else node

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        node = resolve(node)
        if isinstance(value, dict) and node.get("additionalProperties") is False:
            props = node["properties"]
            assert set(value) <= set(props), f"{path}: {sorted(set(value) - set(props))}"
            assert set(props) - {"global"} <= set(value), (
                f"{path}: schema-only keys {sorted(set(props) - set(value) - {'global'})}"
            )
            for k, v in value.items():
                walk(v, props[k], f"{path}.{k}")

    walk(defaults, schema, "values")


# Names the schema knows at the top level; anything else must be refused.
_KNOWN = set(json.loads((CHART / "values.schema.json").read_text())["properties"])


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    key=st.from_regex(r"[a-z][a-zA-Z0-9]{0,14}", fullmatch=True).filter(lambda k: k not in _KNOWN),
    value=st.one_of(st.booleans(), st.integers(-5, 5), st.text("abc", max_size=3)),
)
def test_any_unknown_top_level_key_is_refused(key: str, value: Any) -> None:
    done = run_helm(template_args(values(**{key: value})))
    assert done.returncode != 0
    assert f"Additional property {key} is not allowed" in done.stderr
