"""Status and the API say, per chain, which notify target is used and whether its node
resource carries the current peers."""

from __future__ import annotations

from discovery.api import list_consumers_response, watch_message
from discovery.commands.status import render_status
from discovery.service import with_notify_views
from tests.support.discovery_states import build_state


def _rows(text: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    start = lines.index("how consumer nodes learn their peers:")
    out = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        out[line.split()[0]] = line.split()[1:]
    return out


def test_each_exposed_chain_shows_its_target_and_node_resource() -> None:
    state = build_state(chains={"1": "chain-a", "2": "chain-b", "3": "chain-c"})
    state = with_notify_views(
        state,
        {"chain-a": "cosmos-operator", "chain-b": "cosmopilot", "chain-c": "restart"},
        {"chain-a": ("CosmosFullNode consumers/node-a", True), "chain-b": ("", False)},
    )
    answer = list_consumers_response(state)
    by_id = {c.chain_id: c for c in answer.consumers}
    assert by_id["chain-a"].notify == "cosmos-operator"
    assert by_id["chain-a"].node_resources == "CosmosFullNode consumers/node-a"
    assert by_id["chain-a"].node_peers_current
    assert by_id["chain-b"].notify == "cosmopilot"
    assert not by_id["chain-b"].node_peers_current

    peers = {c.chain_id: watch_message(state, c.chain_id).peers for c in state.chains}
    rows = _rows(render_status(answer, peers))
    assert rows["chain-a"] == ["cosmos-operator", "CosmosFullNode", "consumers/node-a", "yes"]
    assert rows["chain-b"] == ["cosmopilot", "-", "no", "(none", "found)"]
    assert rows["chain-c"] == ["restart", "-", "-"]


def test_without_notify_information_the_section_is_left_out() -> None:
    state = build_state(chains={"1": "chain-a"})
    answer = list_consumers_response(state)
    text = render_status(answer, {})
    assert "how consumer nodes learn their peers:" not in text
    assert answer.consumers[0].notify == ""
