"""`ics-discovery status` renders readable tables and never prints chain text raw."""

from __future__ import annotations

from discovery.api import list_consumers_response, list_validators_response, watch_message
from discovery.commands.status import printable, render_status
from tests.support.discovery_states import MALLORY, build_state


def test_table_lists_chains_ports_peers_and_left_out() -> None:
    state = build_state(chains={"1": "consumer-a", "2": "consumer-b"})
    peers = {c.chain_id: watch_message(state, c.chain_id).peers for c in state.chains}
    text = render_status(list_consumers_response(state), peers, list_validators_response(state))
    lines = text.splitlines()
    assert lines[0].startswith("provider height 100")
    header = next(line for line in lines if line.startswith("CONSUMER"))
    assert header.split() == [
        "CONSUMER",
        "CHAIN",
        "ID",
        "PHASE",
        "OPTED",
        "IN",
        "EXPOSED",
        "P2P",
        "RPC",
        "GRPC",
        "PEERS",
        "LEFT",
        "OUT",
        "PROBLEM",
    ]
    row = next(line for line in lines if line.startswith("1 "))
    ports = state.chains[0].ports
    assert ports is not None
    assert row.split()[:9] == [
        "1",
        "consumer-a",
        "LAUNCHED",
        "yes",
        "yes",
        str(ports.ports["p2p"]),
        str(ports.ports["rpc"]),
        str(ports.ports["grpc"]),
        "2",
    ]
    assert "peers of consumer-a (consumer 1):" in lines
    assert any(f"{'02' * 20}@[2001:db8::2]" in line for line in lines)
    assert any("invalid-endpoint" in line and "loopback" in line for line in lines)
    assert any("forbidden-address" in line for line in lines)


def test_escape_sequences_and_bidi_controls_never_reach_the_terminal() -> None:
    state = build_state()
    peers = {c.chain_id: watch_message(state, c.chain_id).peers for c in state.chains}
    text = render_status(list_consumers_response(state), peers, list_validators_response(state))
    assert "\x1b" in MALLORY.moniker
    assert "\x1b" not in text
    assert "mal?[31mlory" in text
    assert all(c.isprintable() or c == "\n" for c in text)
    assert printable("a\u202eb\tc") == "a?b?c"
    assert printable("x" * 100, 10) == "xxxxxxx..."
