"""`ics-discovery ports` prints stable JSON and reports bad input on one line with status 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from discovery.cli import main
from discovery.ports import PortScheme, derive_ports
from tests.support.snapshots import colliding_chain_ids


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_single_chain_json_has_the_interop_check_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["ports", "consumer-0-1751686503-0", "--json"], capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "chain_id": "consumer-0-1751686503-0",
        "offset": 201,
        "scheme": "document",
        "p2p": 30301,
        "rpc": 30401,
        "grpc": 30501,
    }
    # Sorted keys, so the bytes are the same everywhere.
    assert list(json.loads(out)) == sorted(json.loads(out))
    assert out.endswith("}\n")


def test_ics_operator_json_includes_grpc_web_and_rest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["ports", "consumer-0-1751686503-0", "--scheme", "ics-operator", "--json"], capsys
    )
    assert code == 0
    doc = json.loads(out)
    assert (doc["p2p"], doc["rpc"], doc["grpc"]) == (28766, 28767, 11200)
    assert (doc["grpc_web"], doc["rest"]) == (11201, 29427)


def test_text_output_names_every_port(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ports", "testchain-0"], capsys)
    assert code == 0
    ports = derive_ports("testchain-0")
    assert f"p2p: {ports.p2p}" in out
    assert "offset: 59" in out


def write_plan(tmp_path: Path, entries: object) -> str:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(entries))
    return str(path)


def test_plan_lists_chains_in_allocation_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(
        tmp_path,
        [
            {"consumer_id": "10", "chain_id": "same-1", "phase": "CONSUMER_PHASE_STOPPED"},
            {"consumer_id": "9", "chain_id": "same-1"},
            {"consumer_id": "2", "chain_id": "other-1", "phase": "CONSUMER_PHASE_LAUNCHED"},
        ],
    )
    code, out, err = run(["ports", "--plan", plan, "--json"], capsys)
    assert (code, err) == (0, "")
    chains = json.loads(out)["chains"]
    assert [c["consumer_id"] for c in chains] == ["2", "9", "10"]
    first_same = chains[1]
    assert first_same["collided"] is False
    assert first_same["phase"] is None
    assert first_same["p2p"] == derive_ports("same-1").p2p
    assert chains[2]["collided"] is True
    assert chains[2]["phase"] == "CONSUMER_PHASE_STOPPED"
    assert set(chains[2]["moved"]) == {"p2p", "rpc", "grpc"}
    for c in chains:
        assert set(c) >= {"consumer_id", "chain_id", "offset", "p2p", "rpc", "grpc", "collided"}
    ports = [c[k] for c in chains for k in ("p2p", "rpc", "grpc")]
    assert len(ports) == len(set(ports))


def test_plan_output_is_byte_identical_across_runs_and_input_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [{"consumer_id": str(i), "chain_id": f"c-{i % 7}"} for i in range(30)]
    a = write_plan(tmp_path, entries)
    b = tmp_path / "reversed.json"
    b.write_text(json.dumps(list(reversed(entries))))
    outputs = set()
    for path in (a, str(b), a):
        code, out, _ = run(["ports", "--plan", path, "--scheme", "ics-operator", "--json"], capsys)
        assert code == 0
        outputs.add(out)
    assert len(outputs) == 1


def test_plan_from_stdin_with_reserved_ports(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = derive_ports("stdin-1")
    data = json.dumps([{"consumer_id": 0, "chain_id": "stdin-1"}]).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run(["ports", "--plan", "-", "--reserve", f"{target.p2p},1", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["reserved"] == [1, target.p2p]
    (only,) = doc["chains"]
    assert only["collided"] is True
    assert only["p2p"] != target.p2p


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["ports", ""], "empty"),
        (["ports", "x" * 51], "over the limit of 50"),
        (["ports"], "either CHAIN_ID or --plan"),
        (["ports", "a-1", "--reserve", "1"], "--reserve"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert fragment in err


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[{", "not valid JSON"),
        ("\xff", "not valid JSON"),
        ('{"chains": []}', "JSON list"),
        (
            '[{"consumer_id": "0", "chain_id": "a"}, {"consumer_id": "0", "chain_id": "b"}]',
            "duplicate consumer ID",
        ),
        ('[{"consumer_id": "00", "chain_id": "a"}]', "leading zeros"),
        ('[{"consumer_id": "-1", "chain_id": "a"}]', "invalid consumer ID"),
        ('[{"consumer_id": true, "chain_id": "a"}]', "consumer_id"),
        ('[{"consumer_id": "1", "chain_id": ""}]', "empty"),
        ('[{"consumer_id": "1", "chain_id": "' + "y" * 51 + '"}]', "over the limit"),
        ('[{"consumer_id": "1"}]', "chain_id must be a string"),
        ('[{"consumer_id": "1", "chain_id": "a", "phase": "LAUNCHED"}]', "phase must be"),
        ('[{"consumer_id": "1", "chain_id": "a", "chainid": "b"}]', "unknown keys"),
        ('["a"]', "expected an object"),
    ],
)
def test_bad_plans_exit_2_with_one_line(
    tmp_path: Path, content: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content.encode("latin-1"))
    code, out, err = run(["ports", "--plan", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert fragment in err
    assert err.startswith("ics-discovery ports: ")


def test_missing_plan_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["ports", "--plan", str(tmp_path / "nope.json")], capsys)
    assert code == 2
    assert "cannot read" in err


def test_unknown_scheme_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["ports", "a-1", "--scheme", "other"], capsys)
    assert code == 2
    assert "invalid choice" in err


ENTRY_POINT = Path(sys.executable).parent / "ics-discovery"


def test_installed_entry_point_prints_the_same_bytes() -> None:
    argv = [str(ENTRY_POINT), "ports", "testchain-0", "--json"]
    first = subprocess.run(argv, capture_output=True, check=True).stdout
    second = subprocess.run(argv, capture_output=True, check=True).stdout
    assert first == second
    assert json.loads(first)["p2p"] == derive_ports("testchain-0", PortScheme.DOCUMENT).p2p


def test_installed_entry_point_reports_bad_input_on_one_line() -> None:
    proc = subprocess.run([str(ENTRY_POINT), "ports", ""], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "ics-discovery ports: invalid chain ID '': empty\n"


def test_plan_entries_take_spawn_times_which_order_the_allocation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = colliding_chain_ids()
    plan = tmp_path / "plan.json"
    # The higher consumer ID launched first: it keeps its derived ports.
    plan.write_text(
        json.dumps(
            [
                {"consumer_id": "1", "chain_id": first, "spawn_time": "2026-01-02T00:00:00Z"},
                {"consumer_id": "9", "chain_id": second, "spawn_time": "2026-01-01T00:00:00Z"},
            ]
        )
    )
    assert main(["ports", "--plan", str(plan), "--json"]) == 0
    chains = json.loads(capsys.readouterr().out)["chains"]
    assert [c["consumer_id"] for c in chains] == ["9", "1"]
    assert chains[0]["moved"] == []
    assert "p2p" in chains[1]["moved"]
