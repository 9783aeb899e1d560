"""`dial` mode decides from `/status`: only an in-sync node of this chain, with peers to dial."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.errors import InvalidPeerEntry
from discovery.notify import NotifyError, dial_refusal, dial_request, parse_status, rpc_base

ENTRY = f"{'ab' * 20}@203.0.113.5:30150"


def status(network: str = "consumer-1", catching_up: bool = False) -> dict[str, Any]:
    # The shape CometBFT v0.38 answers /status with (trimmed to what is read).
    return {
        "jsonrpc": "2.0",
        "id": -1,
        "result": {
            "node_info": {"id": "cd" * 20, "network": network, "moniker": "node"},
            "sync_info": {"latest_block_height": "42", "catching_up": catching_up},
        },
    }


def test_status_is_read() -> None:
    s = parse_status(status())
    assert (s.node_id, s.network, s.height, s.catching_up) == ("cd" * 20, "consumer-1", 42, False)


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"result": {}},
        {"result": {"node_info": {"id": "x", "network": "n"}, "sync_info": {}}},
        {
            "result": {
                "node_info": {"id": "x", "network": "n"},
                "sync_info": {"latest_block_height": "1", "catching_up": "false"},
            }
        },
        {
            "result": {
                "node_info": {"id": "x", "network": "n"},
                "sync_info": {"latest_block_height": "many", "catching_up": False},
            }
        },
    ],
)
def test_malformed_status_is_a_permanent_error(doc: dict[str, Any]) -> None:
    with pytest.raises(NotifyError) as e:
        parse_status(doc, "http://10.0.0.1:26657")
    assert not e.value.transient


def test_dial_only_a_synced_node_of_this_chain_with_peers() -> None:
    assert dial_refusal(parse_status(status()), "consumer-1", [ENTRY]) is None
    catching_up = dial_refusal(parse_status(status(catching_up=True)), "consumer-1", [ENTRY])
    assert catching_up == "the node is catching up"
    other = dial_refusal(parse_status(status(network="other-7")), "consumer-1", [ENTRY])
    assert other is not None
    assert "other-7" in other
    empty = dial_refusal(parse_status(status()), "consumer-1", [])
    assert empty is not None
    assert "empty" in empty


def test_dial_request_replaces_the_persistent_list() -> None:
    doc = json.loads(dial_request([ENTRY], request_id=7))
    assert doc == {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "dial_peers",
        "params": {"peers": [ENTRY], "persistent": True, "unconditional": False, "private": False},
    }


@given(st.text(max_size=80))
def test_dial_request_never_carries_an_unchecked_entry(text: str) -> None:
    try:
        body = dial_request([text])
    except InvalidPeerEntry:
        return
    # Whatever got through is exactly one well-formed entry.
    [entry] = json.loads(body)["params"]["peers"]
    node_id, _, host_port = entry.partition("@")
    assert len(node_id) == 40
    assert "," not in entry
    assert " " not in entry
    assert host_port.rsplit(":", 1)[1].isdigit()


def test_rpc_base_brackets_ipv6() -> None:
    assert rpc_base("10.1.2.3", 26657) == "http://10.1.2.3:26657"
    assert rpc_base("fd00::5", 26657) == "http://[fd00::5]:26657"
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        rpc_base("evil.example/x?", 26657)
