"""One source of alert rules: the chart's file; docs/alerts.rules.yaml is it with the defaults.

The docs copy must be what scripts/render_alerts.py makes of the chart's file
(so nobody edits one and forgets the other), every placeholder must have a
default threshold and every threshold must be used, and the real `helm
template` must render the very same rules (and, with thresholds changed, put
them where they belong).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.support.alerts import chart_rules
from tests.support.helm import template, values

REPO = Path(__file__).resolve().parents[2]


def _render_alerts() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "render_alerts", REPO / "scripts/render_alerts.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_alerts"] = module
    spec.loader.exec_module(module)
    return module


def test_docs_copy_is_current() -> None:
    ra = _render_alerts()
    assert ra.main(["--check"]) == 0
    assert (REPO / "docs/alerts.rules.yaml").read_text() == ra.rendered_docs()


def test_every_placeholder_has_a_threshold_and_every_threshold_is_used() -> None:
    ra = _render_alerts()
    source = ra.SOURCE.read_text()
    used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", source))
    assert used == set(ra.default_thresholds())
    assert "${" not in ra.rendered_docs().replace("${...}", "")


@pytest.mark.helm
def test_the_chart_renders_the_same_rules_as_the_docs_copy() -> None:
    docs = yaml.safe_load((REPO / "docs/alerts.rules.yaml").read_text())
    assert chart_rules() == docs


@pytest.mark.helm
def test_chart_thresholds_reach_the_rules() -> None:
    spec = chart_rules(streamDownFor="30s", peersMinRatio=0.5, leftOutReasons="unknown-validator")
    by_name = {r["alert"]: r for g in spec["groups"] for r in g["rules"]}
    assert by_name["IcsDiscoveryProviderStreamDown"]["for"] == "30s"
    assert "30s" in by_name["IcsDiscoveryProviderStreamDown"]["annotations"]["description"]
    assert "0.5 * ics_discovery_expected_peers" in by_name["IcsDiscoveryPeersBelowExpected"]["expr"]
    assert 'reason=~"unknown-validator"' in by_name["IcsDiscoveryValidatorsLeftOut"]["expr"]


@pytest.mark.helm
def test_rules_and_dashboard_are_off_by_default() -> None:
    objects = template(
        values(
            **{
                "provider.operatorAddress": "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2",
                "provider.rpcUrls": ["http://provider:26657"],
            }
        )
    )
    assert [o for o in objects if o["kind"] == "PrometheusRule"] == []
    assert [o for o in objects if o["metadata"].get("labels", {}).get("grafana_dashboard")] == []


@pytest.mark.helm
def test_dashboard_configmap_carries_the_json_with_the_sidecar_label() -> None:
    import json

    objects = template(
        values(
            **{
                "provider.operatorAddress": "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2",
                "provider.rpcUrls": ["http://provider:26657"],
                "metrics.grafanaDashboard.enabled": True,
                "metrics.grafanaDashboard.labels": {"team": "validators"},
            }
        )
    )
    [cm] = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")
    ]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"]["team"] == "validators"
    dashboard = json.loads(cm["data"]["ics-discovery.json"])
    source = json.loads((REPO / "helm/ics-validator/files/dashboard.json").read_text())
    assert dashboard == source
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "Exposure per chain",
        "Peers per chain",
        "Left out of peers, by reason",
        "Kubernetes writes",
        "Leadership",
    ):
        assert wanted in titles
    assert any(
        "publication_latency" in t["expr"]
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    )


def test_every_alert_has_a_runbook_entry_where_its_annotation_points() -> None:
    docs = yaml.safe_load((REPO / "docs/alerts.rules.yaml").read_text())
    headings = {
        line.removeprefix("### ").strip().lower()
        for line in (REPO / "docs/operations.md").read_text().splitlines()
        if line.startswith("### ")
    }
    for group in docs["groups"]:
        for rule in group["rules"]:
            page, _, anchor = rule["annotations"]["runbook"].partition("#")
            assert page == "docs/operations.md"
            assert anchor == rule["alert"].lower()
            assert anchor in headings, rule["alert"]
