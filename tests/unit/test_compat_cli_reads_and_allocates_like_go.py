"""`ports` and `endpoint parse --compat ics-operator` (expected values from the Go translation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discovery.cli import main
from tests.support.go_reference import go_calculate_ports, go_node_id

REFUSED_CHAIN = "consumer-180"  # offset 26: Go's RPC port would be 27017


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_ports_compat_uses_the_go_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["ports", "consumer-0-1751686503-0", "--compat", "ics-operator", "--json"], capsys
    )
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["scheme"] == "ics-operator"
    go = go_calculate_ports("consumer-0-1751686503-0")
    assert go is not None
    assert (
        {k: doc[k] for k in go}
        == go
        == {
            "p2p": 28766,
            "rpc": 28767,
            "grpc": 11200,
            "grpc_web": 11201,
        }
    )


def test_ports_compat_refuses_what_go_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["ports", REFUSED_CHAIN, "--compat", "ics-operator"], capsys)
    assert (code, out) == (2, "")
    assert "gets no ports" in err
    assert "27017" in err
    assert "MongoDB" in err
    # Without compat mode the same chain gets its derived ports.
    code, out, _ = run(["ports", REFUSED_CHAIN, "--scheme", "ics-operator", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["rpc"] == 27017
    code, _, err = run(["ports", "x", "--compat", "ics-operator", "--scheme", "document"], capsys)
    assert code == 2
    assert "needs --scheme ics-operator" in err


def test_plan_compat_lists_refused_chains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            [
                {"consumer_id": "0", "chain_id": "alpha-1"},
                {"consumer_id": "1", "chain_id": REFUSED_CHAIN},
            ]
        )
    )
    code, out, err = run(
        ["ports", "--plan", str(plan), "--compat", "ics-operator", "--reserve", "30000", "--json"],
        capsys,
    )
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["compat"] == "ics-operator"
    assert doc["reserved"] == [30000]
    assert [27017, 27017, "MongoDB"] in doc["go_reserved"]
    assert [c["chain_id"] for c in doc["chains"]] == ["alpha-1"]
    [refused] = doc["refused"]
    assert (refused["consumer_id"], refused["chain_id"]) == ("1", REFUSED_CHAIN)
    assert "27017" in refused["reason"]
    code, out, _ = run(["ports", "--plan", str(plan), "--compat", "ics-operator"], capsys)
    assert code == 0
    assert f"{REFUSED_CHAIN!a} no ports:" in out


def test_endpoint_parse_compat_reads_go_forms_and_derives_the_go_node_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    details = '{"p2p":"203.0.113.9:26656"}'
    code, _, err = run(["endpoint", "parse", details], capsys)
    assert code == 2
    assert "no-endpoint" in err
    code, out, err = run(
        [
            "endpoint",
            "parse",
            details,
            "--compat",
            "ics-operator",
            "--moniker",
            "bob",
            "--chain-id",
            "alpha-1",
            "--endpoint-profile",
            "testnet",
            "--json",
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "host": "203.0.113.9",
        "node_id": go_node_id("bob", "alpha-1"),
        "node_id_source": "moniker (insecure)",
    }
    testnet = ["--endpoint-profile", "testnet"]
    code, out, _ = run(
        ["endpoint", "parse", "p2p=203.0.113.9", "--compat", "ics-operator", *testnet], capsys
    )
    assert code == 0
    assert out == "host: 203.0.113.9\nnode_id: -\nnode_id_source: -\n"


def test_endpoint_parse_compat_still_refuses_hostile_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        ["endpoint", "parse", 'x {"p2p":"127.0.0.1:1"}', "--compat", "ics-operator"], capsys
    )
    assert (code, out) == (2, "")
    assert "forbidden-address" in err
    code, _, err = run(["endpoint", "parse", "p2p=203.0.113.9", "--moniker", "bob"], capsys)
    assert code == 2
    assert "go together" in err
    code, _, err = run(
        ["endpoint", "parse", "p2p=203.0.113.9", "--moniker", "bob", "--chain-id", "c"], capsys
    )
    assert code == 2
    assert "needs --compat ics-operator" in err
