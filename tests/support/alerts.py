"""The chart's alert rules as Prometheus loads them, rendered by the real `helm template`."""

from __future__ import annotations

from typing import Any

from tests.support.helm import one, template, values

PROMETHEUS_RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
BASE = {
    "provider.operatorAddress": "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2",
    "provider.rpcUrls": ["http://provider:26657"],
    "provider.grpcUrls": ["provider:9090"],
    "metrics.prometheusRule.enabled": True,
}


def chart_rules(**thresholds: Any) -> dict[str, Any]:
    """The PrometheusRule's `spec` (a Prometheus rules file) with these thresholds changed."""
    overrides = {f"metrics.prometheusRule.thresholds.{k}": v for k, v in thresholds.items()}
    objects = template(values(**BASE, **overrides), api_versions=[PROMETHEUS_RULE_API])
    rule = one(objects, "PrometheusRule")
    spec: dict[str, Any] = rule["spec"]
    return spec
