"""`ics-discovery status` ends with the alerts' conditions in words, each with what to do.

The inputs are real: API answers rendered from states built by the pure core,
and metrics rendered by the service's own `ServiceMetrics` and parsed back.
"""

from __future__ import annotations

from dataclasses import replace

from chainmonitor.monitor import MonitorCounters
from discovery.api import list_consumers_response, watch_message
from discovery.commands.problems import (
    MetricsView,
    Problem,
    find_problems,
    metrics_url,
    parse_metrics,
)
from discovery.commands.status import render_problems
from discovery.metrics import ServiceMetrics
from discovery.opsmetrics import PodCount
from discovery.state import DiscoveryState, LeftOutRecord
from tests.support.discovery_states import build_state

NOW = 10_000.0


def _healthy_metrics() -> ServiceMetrics:
    m = ServiceMetrics()
    counters = MonitorCounters()
    counters.stream.connected = True
    counters.stream.last_event_height = 100
    counters.resyncs_done = 1
    m.observe_counters(counters, leading=True, now=NOW - 5)
    m.ops.observe_pods({"consumer-a": PodCount(1, 1), "consumer-b": PodCount(2, 2)})
    m.ops.observe_own_endpoint(True)
    return m


def _view(m: ServiceMetrics) -> MetricsView:
    return parse_metrics(m.render()[0].decode())


def _problems(state: DiscoveryState, metrics: MetricsView | None) -> list[Problem]:
    consumers = list_consumers_response(state)
    peers = {c.chain_id: watch_message(state, c.chain_id).peers for c in state.chains if c.exposed}
    return find_problems(consumers, peers, metrics, NOW)


STATE = build_state(chains={"1": "consumer-a", "2": "consumer-b"})


def test_a_healthy_service_has_no_problems() -> None:
    assert _problems(STATE, _view(_healthy_metrics())) == []
    assert render_problems([]) == "\nproblems: none\n"


def test_a_launched_opted_in_chain_not_exposed_says_why() -> None:
    broken = replace(STATE.chains[1], exposed=False, problem="port 30001 is taken")
    [p] = _problems(replace(STATE, chains=(STATE.chains[0], broken)), None)
    assert p.chain_id == "consumer-b"
    assert "not exposed: port 30001 is taken" in p.what
    assert "retries" in p.todo


def test_too_few_peers_and_left_out_reasons_that_need_action() -> None:
    chain = STATE.chains[0]
    assert chain.peers is not None
    dup = LeftOutRecord("cosmosvalcons1x", "cosmosvaloper1x", "copycat", "duplicate-node-id", "")
    # Both peers gone as duplicates: 0 of 4 peers, and the duplicates named.
    peers = replace(chain.peers, peers=(), left_out=(*chain.peers.left_out, dup, dup))
    problems = _problems(replace(STATE, chains=(replace(chain, peers=peers),)), None)
    whats = [p.what for p in problems]
    assert any("has 0 peers of the 3 validators" in w for w in whats), whats
    [dup_problem] = [p for p in problems if "duplicate-node-id" in p.what]
    assert "copycat" in dup_problem.what
    assert dup_problem.chain_id == "consumer-a"
    # mallory's invalid endpoint is hers to fix: no problem of ours.
    assert not any("invalid-endpoint" in w for w in whats)


def test_validators_capped_by_max_peers_are_not_missing_peers() -> None:
    chain = STATE.chains[0]
    assert chain.peers is not None
    capped = [
        LeftOutRecord(f"cosmosvalcons1c{n}", f"cosmosvaloper1c{n}", f"c{n}", "over-max-peers", "")
        for n in range(10)
    ]
    # 2 peers, mallory left out, 10 over the cap: 2 of the 3 that belong is enough.
    peers = replace(chain.peers, left_out=(*chain.peers.left_out, *capped))
    problems = _problems(replace(STATE, chains=(replace(chain, peers=peers),)), None)
    assert not any("peers of" in p.what for p in problems), problems
    # With one peer gone it is 1 of 2, a problem, still not counting the capped ones.
    fewer = replace(peers, peers=peers.peers[:1])
    problems = _problems(replace(STATE, chains=(replace(chain, peers=fewer),)), None)
    assert any("has 1 peers of the 2 validators" in p.what for p in problems), problems


def test_metric_conditions_each_become_a_problem() -> None:
    m = _healthy_metrics()
    counters = MonitorCounters()
    counters.stream.connected = False
    counters.stream.last_event_height = 100
    counters.resyncs_done = 1
    m.observe_counters(counters, leading=True, now=NOW)
    m.ops.observe_pods({"consumer-a": PodCount(0, 1), "consumer-b": PodCount(1, 1)})
    m.ops.observe_own_endpoint(False)
    m.ops.endpoint_publications.labels(outcome="failed").inc(3)
    m.ops.kubernetes_write_errors.labels(resource="configmaps").inc()
    m.ops.leadership_changes.inc(6)
    m.ops.notifications.labels(chain_id="consumer-b", mode="restart", outcome="refused").inc()
    problems = _problems(STATE, _view(m))
    whats = "\n".join(p.what for p in problems)
    assert "no WebSocket to the provider chain" in whats
    assert "consumer-a is exposed but has no ready consumer pod" in whats
    assert "consumer-b is exposed" not in whats
    assert "our endpoint on chain differs" in whats
    assert "publishing our endpoint failed 3 time(s)" in whats
    assert "1 Kubernetes write(s)" in whats
    assert "leader Lease 6 times" in whats
    assert "consumer-b: telling consumer nodes by restart refused 1 time(s)" in whats
    assert all(p.todo for p in problems)


def test_stale_stream_and_stale_state() -> None:
    m = ServiceMetrics()
    counters = MonitorCounters()
    counters.stream.connected = True
    counters.stream.last_event_height = 100
    counters.resyncs_done = 1
    m.observe_counters(counters, leading=True, now=NOW - 2000)
    whats = [p.what for p in _problems(STATE, _view(m))]
    assert "the provider stream is connected but silent for 2000s" in whats
    assert "registry and consumer chains last read in full 2000s ago" in whats
    m.observe_counters(replace(counters, resyncs_done=2), leading=True, now=NOW - 100)
    whats = [p.what for p in _problems(STATE, _view(m))]
    assert not any("last read in full" in w for w in whats)


def test_unreadable_metrics_say_which_checks_were_skipped() -> None:
    [p] = _problems(STATE, MetricsView(error="cannot read http://127.0.0.1:1/metrics: refused"))
    assert "not checked" in p.what
    assert "--metrics-address" in p.todo
    assert parse_metrics("not { exposition").error


def test_rendering_keeps_hostile_chain_text_printable() -> None:
    text = render_problems([Problem("chain evil\x1b[31m-1 is bad", "do something", "evil")])
    assert "\x1b" not in text
    assert text.startswith("\nproblems (1):\n- chain evil?[31m-1 is bad\n  do: do something")


def test_metrics_url_for_listen_addresses() -> None:
    assert metrics_url(":9401") == "http://127.0.0.1:9401/metrics"
    assert metrics_url("0.0.0.0:9401") == "http://127.0.0.1:9401/metrics"
    assert metrics_url("10.1.2.3:9500") == "http://10.1.2.3:9500/metrics"
