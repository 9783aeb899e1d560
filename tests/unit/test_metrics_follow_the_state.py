"""State gauges are recomputed whole from each state: counts right, no stale series."""

from __future__ import annotations

from dataclasses import replace

from discovery.endpoints import RejectReason
from discovery.metrics import ServiceMetrics, parse_request_head, sample_value, state_gauges
from tests.support.discovery_states import build_state


def test_gauges_count_validators_rejections_and_peers() -> None:
    g = state_gauges(build_state(chains={"1": "consumer-a", "2": "consumer-b"}))
    assert g.validators == 4
    assert set(g.endpoints_invalid) == {r.value for r in RejectReason}
    assert g.endpoints_invalid["forbidden-address"] == 1
    assert sum(g.endpoints_invalid.values()) == 1
    assert g.chains_exposed == 2
    assert g.peers == {"consumer-a": 2, "consumer-b": 2}
    assert g.left_out == {
        ("consumer-a", "invalid-endpoint"): 1,
        ("consumer-b", "invalid-endpoint"): 1,
    }


def test_a_chain_that_goes_away_leaves_no_series() -> None:
    metrics = ServiceMetrics()
    state = build_state(chains={"1": "consumer-a", "2": "consumer-b"})
    metrics.observe_state(state)
    text = metrics.render()[0].decode()
    assert sample_value(text, "ics_discovery_peers", {"chain_id": "consumer-b"}) == 2
    metrics.observe_state(replace(state, chains=state.chains[:1], height=101))
    text = metrics.render()[0].decode()
    assert sample_value(text, "ics_discovery_peers", {"chain_id": "consumer-b"}) is None
    assert sample_value(text, "ics_discovery_peers", {"chain_id": "consumer-a"}) == 2
    assert sample_value(text, "ics_discovery_chains_exposed") == 1
    assert sample_value(text, "ics_discovery_snapshot_height") == 101


def test_counters_and_histograms_render() -> None:
    metrics = ServiceMetrics()
    metrics.count_writes("configmaps", "update", 2)
    metrics.count_writes("configmaps", "update", 0)
    metrics.reconcile_duration.observe(0.02)
    metrics.resyncs.labels(trigger="timer").inc()
    text = metrics.render()[0].decode()
    labels = {"resource": "configmaps", "verb": "update"}
    assert sample_value(text, "ics_discovery_kubernetes_writes_total", labels) == 2
    assert sample_value(text, "ics_discovery_reconcile_duration_seconds_count") == 1
    assert sample_value(text, "ics_discovery_resyncs_total", {"trigger": "timer"}) == 1
    assert sample_value(text, "ics_discovery_reconcile_errors_total", {"kind": "permanent"}) == 0
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_request_heads_are_parsed_strictly() -> None:
    req = parse_request_head(b"GET /metrics?x=1 HTTP/1.1\r\nAccept: text/plain\r\nHost: a")
    assert req is not None
    assert (req.method, req.path, req.headers["accept"]) == ("GET", "/metrics", "text/plain")
    assert parse_request_head(b"GET /metrics") is None
    assert parse_request_head(b"GET / SPDY/3\r\n") is None
    assert parse_request_head(b"GET / HTTP/1.1\r\nno colon here") is None
