"""Every shipped alert fires on its condition and stays quiet otherwise (`promtool test rules`).

The rules are docs/alerts.rules.yaml (the chart's rules with its default
thresholds). Each case gives input series, a time the alert must not fire
yet (or a look-alike series that must never make it fire) and a time it must
fire with exactly these labels; the expected annotations are the rule's own
templates with the labels and value filled in, so a template naming a label
the series lacks shows up as a mismatch. The real promtool evaluates it all.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.procs import tool

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "docs" / "alerts.rules.yaml"
JOB = {"job": "ics-discovery", "instance": "10.0.0.5:9401"}


@dataclass(frozen=True)
class Case:
    alert: str
    # series selector text -> promtool expanding values
    series: dict[str, str]
    quiet_at: str
    fires_at: str
    # labels of each expected alert (the rule's own labels are added)
    expected: list[dict[str, str]]
    value: float = 1.0
    # alerts expected at `quiet_at` (normally none)
    quiet: list[dict[str, str]] = field(default_factory=list)


def _sel(name: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in {**JOB, **labels}.items())
    return f"{name}{{{inner}}}"


A = {"chain_id": "alpha-1"}
B = {"chain_id": "beta-1"}

CASES = [
    Case(
        "IcsDiscoveryProviderStreamDown",
        {_sel("ics_discovery_websocket_connected"): "1 1 0x20"},
        quiet_at="5m",
        fires_at="10m",
        expected=[JOB],
        value=0,
    ),
    Case(
        "IcsDiscoveryProviderStreamStale",
        {
            _sel("ics_discovery_websocket_connected"): "1x40",
            _sel("ics_discovery_last_event_timestamp_seconds"): "0+60x10 600x30",
        },
        quiet_at="12m",
        fires_at="20m",
        expected=[JOB],
        value=600,
    ),
    Case(
        "IcsDiscoveryStateNotRefreshed",
        {_sel("ics_discovery_last_resync_timestamp_seconds"): "0+60x5 300x60"},
        quiet_at="28m",
        fires_at="40m",
        expected=[JOB],
        value=2100,
    ),
    Case(
        "IcsDiscoveryChainNotExposed",
        {
            _sel(
                "ics_discovery_chain_opted_in",
                **A,
                consumer_id="0",
                phase="CONSUMER_PHASE_LAUNCHED",
            ): "1x30",
            _sel("ics_discovery_chain_exposed", **A, consumer_id="0"): "1x5 0x25",
            # Not launched yet: not exposed, and rightly so.
            _sel(
                "ics_discovery_chain_opted_in",
                **B,
                consumer_id="1",
                phase="CONSUMER_PHASE_INITIALIZED",
            ): "1x30",
            _sel("ics_discovery_chain_exposed", **B, consumer_id="1"): "0x30",
        },
        quiet_at="12m",
        fires_at="20m",
        expected=[{**JOB, **A, "consumer_id": "0", "phase": "CONSUMER_PHASE_LAUNCHED"}],
    ),
    Case(
        "IcsDiscoveryConsumerPodNotReady",
        {
            _sel("ics_discovery_consumer_pods", **A, ready="true"): "1x5 0x20",
            _sel("ics_discovery_consumer_pods", **A, ready="false"): "0x5 1x20",
            _sel("ics_discovery_consumer_pods", **B, ready="true"): "2x25",
        },
        quiet_at="12m",
        fires_at="20m",
        expected=[{**JOB, **A, "ready": "true"}],
        value=0,
    ),
    Case(
        "IcsDiscoveryPeersBelowExpected",
        {
            _sel("ics_discovery_peers", **A): "1x30",
            _sel("ics_discovery_expected_peers", **A): "3x30",
            # Two of three: enough.
            _sel("ics_discovery_peers", **B): "2x30",
            _sel("ics_discovery_expected_peers", **B): "3x30",
        },
        quiet_at="10m",
        fires_at="20m",
        expected=[{**JOB, **A}],
    ),
    Case(
        "IcsDiscoveryValidatorsLeftOut",
        {
            _sel("ics_discovery_left_out_validators", **A, reason="duplicate-node-id"): "2x40",
            # Their own business: no action of ours.
            _sel("ics_discovery_left_out_validators", **A, reason="no-endpoint"): "1x40",
        },
        quiet_at="20m",
        fires_at="35m",
        expected=[{**JOB, **A, "reason": "duplicate-node-id"}],
        value=2,
    ),
    Case(
        "IcsDiscoveryOwnEndpointDiffers",
        {_sel("ics_discovery_own_endpoint_matches"): "1x5 0x20"},
        quiet_at="12m",
        fires_at="20m",
        expected=[JOB],
        value=0,
    ),
    Case(
        "IcsDiscoveryEndpointPublishingFailing",
        {
            # Failing at every retry since 6m: pending from then, firing after 10m.
            _sel("ics_discovery_endpoint_publications_total", outcome="failed"): "0x5 1+1x40",
            # Another replica failed once, and its retry worked: no alert.
            _sel(
                "ics_discovery_endpoint_publications_total",
                outcome="failed",
                instance="10.0.0.6:9401",
            ): "0x5 1x40",
        },
        quiet_at="14m",
        fires_at="20m",
        expected=[{**JOB, "outcome": "failed"}],
    ),
    Case(
        "IcsDiscoveryKubernetesWritesFailing",
        {
            _sel("ics_discovery_kubernetes_write_errors_total", resource="configmaps"): (
                "0x5 1+1x25"
            ),
            # One failed reconcile, retried with success: no alert.
            _sel("ics_discovery_reconcile_errors_total", kind="transient"): "0x5 1x25",
        },
        quiet_at="14m",
        fires_at="20m",
        expected=[{**JOB, "resource": "configmaps"}],
    ),
    Case(
        "IcsDiscoveryPartFailedPermanently",
        {
            # Publishing refused for good since 6m: pending from then, firing after 10m.
            _sel("ics_discovery_part_failed_permanently", part="publishing"): "0x5 1x25",
            # A forbidden write fixed within minutes: no alert.
            _sel("ics_discovery_part_failed_permanently", part="kubernetes"): "0x5 1x3 0x20",
        },
        quiet_at="14m",
        fires_at="20m",
        expected=[{**JOB, "part": "publishing"}],
    ),
    Case(
        "IcsDiscoveryNoLeader",
        {
            _sel("ics_discovery_leader"): "1x5 0x20",
            _sel("ics_discovery_leader", instance="10.0.0.6:9401"): "0x25",
        },
        quiet_at="6m",
        fires_at="10m",
        expected=[{"job": "ics-discovery"}],
        value=0,
    ),
    Case(
        "IcsDiscoveryLeadershipFlapping",
        {
            _sel("ics_discovery_leadership_changes_total"): "0x10 1 2 3 4 5 6 7 8 8x20",
            _sel("ics_discovery_leadership_changes_total", instance="10.0.0.6:9401"): (
                "0x10 1 2 3 4 5 6 7 8 8x20"
            ),
        },
        quiet_at="10m",
        fires_at="20m",
        expected=[{"job": "ics-discovery"}],
        value=16,
    ),
    Case(
        "IcsDiscoveryConsumerNotificationsFailing",
        {
            _sel(
                "ics_discovery_consumer_notifications_total", **A, mode="dial", outcome="failed"
            ): "0x5 1+1x25",
            # A node catching up is not a failure.
            _sel(
                "ics_discovery_consumer_notifications_total", **B, mode="dial", outcome="waiting"
            ): "0+1x30",
        },
        quiet_at="14m",
        fires_at="20m",
        expected=[{**JOB, **A, "mode": "dial", "outcome": "failed"}],
    ),
    Case(
        "IcsDiscoveryConsumerRestartRefused",
        {
            _sel(
                "ics_discovery_consumer_notifications_total", **A, mode="restart", outcome="refused"
            ): "0x5 1x25",
            _sel(
                "ics_discovery_consumer_notifications_total", **A, mode="restart", outcome="done"
            ): "0x5 1x25",
        },
        quiet_at="5m",
        fires_at="10m",
        expected=[{**JOB, **A, "mode": "restart", "outcome": "refused"}],
    ),
]

_TEMPLATE = re.compile(r"\{\{\s*(\$labels\.([A-Za-z_]+)|\$value)\s*\}\}")


def _go_float(value: float) -> str:
    """How Go's text/template prints a float64 (shortest form, no trailing .0)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def expand(template: str, labels: dict[str, str], value: float) -> str:
    """The annotation Prometheus renders (our templates use only $labels.x and $value)."""
    left = _TEMPLATE.sub(
        lambda m: _go_float(value) if m.group(1) == "$value" else labels.get(m.group(2), ""),
        template,
    )
    assert "{{" not in left, f"a template form this test does not know: {template!r}"
    return left


def rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _expected_alert(rule: dict[str, Any], labels: dict[str, str], value: float) -> dict[str, Any]:
    all_labels = {**labels, **rule.get("labels", {})}
    return {
        "exp_labels": all_labels,
        "exp_annotations": {
            k: expand(v, all_labels, value) for k, v in rule.get("annotations", {}).items()
        },
    }


def promtool_tests() -> dict[str, Any]:
    by_name = rules()
    tests = []
    for case in CASES:
        rule = by_name[case.alert]
        tests.append(
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": case.quiet_at,
                        "alertname": case.alert,
                        "exp_alerts": [_expected_alert(rule, q, case.value) for q in case.quiet],
                    },
                    {
                        "eval_time": case.fires_at,
                        "alertname": case.alert,
                        "exp_alerts": [_expected_alert(rule, e, case.value) for e in case.expected],
                    },
                ],
            }
        )
    return {"rule_files": [RULES.name], "evaluation_interval": "1m", "tests": tests}


def test_every_alert_has_a_case_and_the_expected_shape() -> None:
    by_name = rules()
    assert sorted(by_name) == sorted(c.alert for c in CASES)
    for name, rule in by_name.items():
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        # What to check and what to do: more than a restatement of the summary.
        assert len(annotations["description"].split()) >= 25, name
        assert annotations["runbook"] == f"docs/operations.md#{name.lower()}"
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        if "chain_id" in rule["expr"] or name in (
            "IcsDiscoveryChainNotExposed",
            "IcsDiscoveryPeersBelowExpected",
            "IcsDiscoveryConsumerPodNotReady",
        ):
            case = next(c for c in CASES if c.alert == name)
            assert all("chain_id" in e for e in case.expected), name


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        [str(tool("promtool")), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_each_alert_fires_on_its_condition_only(tmp_path: Path) -> None:
    shutil.copy(RULES, tmp_path / RULES.name)
    spec = tmp_path / "alerts_test.yaml"
    spec.write_text(yaml.safe_dump(promtool_tests(), sort_keys=False))
    done = subprocess.run(
        [str(tool("promtool")), "test", "rules", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
