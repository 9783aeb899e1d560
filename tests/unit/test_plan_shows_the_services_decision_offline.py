"""`ics-discovery plan` prints the service's own decision from a snapshot, or exits 2 on junk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chainmonitor.types import ConsumerPhase
from discovery.cli import main
from discovery.desired import ExposurePolicy, desired_cluster
from discovery.endpoints import TESTNET_POLICY
from discovery.nodekey import insecure_node_id_from_moniker
from discovery.ports import PortScheme, derive_ports
from discovery.snapshot_file import SnapshotInvalid, read_snapshot, snapshot_document
from tests.support.snapshots import cons, consumer, node_id, op, snapshot, validator

T0 = "2026-01-01T00:00:00Z"


def chain_state() -> Any:
    vals = [validator(n) for n in range(1, 6)]
    vals.append(validator(6, f"p2p=127.0.0.1 node={node_id(6)}"))
    return snapshot(
        vals,
        [
            consumer(0, "spam-0", opted_in=[1], phase=ConsumerPhase.REGISTERED),
            consumer(
                1,
                "neutron-1",
                opted_in=[1, 2, 3, 4, 6],
                spawn_time=T0,
                powers={1: 50, 2: 40, 3: 30, 4: 0, 6: 5},
            ),
            consumer(2, "theirs-1", opted_in=[2], spawn_time=T0, powers={2: 1}),
        ],
        height=1234,
    )


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_snapshot_documents_round_trip() -> None:
    snap = chain_state()
    doc = snapshot_document(snap)
    assert doc["height"] == 1234
    again = read_snapshot(json.loads(json.dumps(doc)))

    # The schema carries what decisions read (not, e.g., the consensus key type).
    def fields(v: Any) -> tuple[Any, ...]:
        return (
            v.operator,
            v.moniker,
            v.description.details,
            v.status,
            v.jailed,
            v.tokens,
            v.consensus_address,
        )

    assert [fields(v) for v in again.validators] == [fields(v) for v in snap.validators]
    assert again.consumers == snap.consumers
    assert snapshot_document(again) == doc


def test_plan_json_is_the_services_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snap = chain_state()
    path = write(tmp_path, snapshot_document(snap))
    argv = ["plan", "--snapshot", path, "--operator", op(1), "--endpoint-profile", "testnet"]
    code, out, err = run([*argv, "--json"], capsys)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    by_id = {c["consumer_id"]: c for c in doc["chains"]}
    assert set(by_id) == {"0", "1", "2"}
    assert set(by_id["1"]) == {
        "consumer_id",
        "chain_id",
        "phase",
        "exposed",
        "ports",
        "peers",
        "left_out",
    }
    # The service's own function, with the parameters the service builds.
    service = desired_cluster(
        read_snapshot(snapshot_document(snap)),
        op(1),
        ExposurePolicy(consumer_namespace="consumers"),
        TESTNET_POLICY,
    )
    [chain] = service.chains
    assert by_id["1"]["exposed"] is True
    assert by_id["1"]["peers"] == [p.checked_entry() for p in chain.peers.peers]
    assert by_id["1"]["ports"] == chain.allocation.ports.as_json()
    # 2 and 3 have power; 4 has none; 6 publishes loopback and is left out with the reason.
    assert len(by_id["1"]["peers"]) == 2
    assert by_id["1"]["left_out"] == [{"operator": op(6), "reason": "invalid-endpoint"}]
    # A registered chain holds no ports; a launched chain we are not in holds them.
    assert (by_id["0"]["ports"], by_id["0"]["exposed"]) == (None, False)
    assert by_id["2"]["ports"] is not None
    assert by_id["2"]["exposed"] is False
    # The default profile (mainnet) refuses documentation addresses: no peers.
    code, out, _ = run([*argv[:-2], "--json"], capsys)
    mainnet = {c["consumer_id"]: c for c in json.loads(out)["chains"]}
    assert mainnet["1"]["peers"] == []
    assert {x["reason"] for x in mainnet["1"]["left_out"]} == {"invalid-endpoint"}
    # max_peers applies.
    code, out, _ = run([*argv, "--json", "--max-peers", "1"], capsys)
    capped = {c["consumer_id"]: c for c in json.loads(out)["chains"]}
    assert capped["1"]["peers"] == [f"{node_id(2)}@203.0.113.2:{chain.allocation.ports.p2p}"]


def test_plan_table_is_readable_and_escapes_chain_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = snapshot_document(chain_state())
    doc["consumers"][2]["chain_id"] = "evil\x1b[31m-1"
    path = write(tmp_path, doc)
    code, out, _ = run(
        ["plan", "--snapshot", path, "--operator", op(1), "--endpoint-profile", "testnet"], capsys
    )
    assert code == 0
    assert out.splitlines()[0].split() == [
        "CONSUMER",
        "CHAIN",
        "ID",
        "PHASE",
        "EXPOSED",
        "P2P",
        "RPC",
        "GRPC",
        "PEERS",
        "NOTE",
    ]
    assert "\x1b" not in out
    assert "neutron-1 (consumer 1): 2 peers" in out
    assert "invalid-endpoint" in out


def _broken(change: str) -> Any:
    doc: Any = snapshot_document(chain_state())
    if change == "height":
        doc["height"] = "1"
    elif change == "operator":
        doc["validators"][0]["operator"] = "cosmos1notanoperator"
    elif change == "status":
        doc["validators"][1]["status"] = "BOND_STATUS_MAYBE"
    elif change == "tokens":
        doc["validators"][1]["tokens"] = "-5"
    elif change == "phase":
        doc["consumers"][1]["phase"] = "LAUNCHED"
    elif change == "spawn":
        doc["consumers"][1]["spawn_time"] = "tomorrow"
    elif change == "power":
        doc["consumers"][1]["validators"][0]["power"] = -1
    elif change == "opted":
        doc["consumers"][1]["opted_in"] = [op(1)]
    elif change == "unknown":
        doc["consumers"][1]["colour"] = "blue"
    elif change == "dup":
        doc["consumers"].append(dict(doc["consumers"][1]))
    elif change == "consumer_id":
        doc["consumers"][1]["consumer_id"] = "01"
    return doc


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ("height", "height"),
        ("operator", "validators[0].operator"),
        ("status", "validators[1].status"),
        ("tokens", "validators[1].tokens"),
        ("phase", "consumers[1].phase"),
        ("spawn", "consumers[1].spawn_time"),
        ("power", "consumers[1].validators[0].power"),
        ("opted", "consumers[1].opted_in[0]"),
        ("unknown", "consumers[1].colour"),
        ("dup", "consumers[3].consumer_id"),
        ("consumer_id", "consumers[1].consumer_id"),
    ],
)
def test_an_invalid_snapshot_exits_2_naming_the_problem(
    change: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SnapshotInvalid) as info:
        read_snapshot(_broken(change))
    assert info.value.where == where
    path = write(tmp_path, _broken(change))
    code, out, err = run(["plan", "--snapshot", path, "--operator", op(1)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("ics-discovery plan: invalid snapshot ")
    assert f"{where}:" in err
    assert err.count("\n") == 1


def test_not_json_and_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.json"
    path.write_text("{nope")
    code, _, err = run(["plan", "--snapshot", str(path), "--operator", op(1)], capsys)
    assert code == 2
    assert "is not JSON" in err
    code, _, err = run(["plan", "--operator", op(1)], capsys)
    assert code == 2
    assert "--snapshot" in err
    code, _, err = run(
        ["plan", "--snapshot", str(path), "--operator", op(1), "--max-peers", "0"], capsys
    )
    assert code == 2
    assert "--max-peers" in err


def test_absent_validators_of_a_launched_chain_mean_none() -> None:
    doc = snapshot_document(chain_state())
    del doc["consumers"][1]["validators"]
    launched = read_snapshot(doc).consumer("1")
    assert launched is not None
    assert launched.validators == ()
    assert cons(1) in launched.opted_in


def test_plan_compat_lists_a_go_validator_by_its_moniker_node_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Validator 3 runs the Go implementation: `p2p=HOST` and no node ID.
    vals = [validator(n) for n in (1, 2)]
    vals.append(validator(3, "Validator gopher - p2p=203.0.113.3", moniker="gopher"))
    snap = snapshot(
        vals,
        [consumer(1, "neutron-1", opted_in=[1, 2, 3], spawn_time=T0, powers={1: 3, 2: 2, 3: 1})],
    )
    path = write(tmp_path, snapshot_document(snap))
    argv = ["plan", "--snapshot", path, "--operator", op(1), "--endpoint-profile", "testnet"]

    code, out, _ = run([*argv, "--json"], capsys)
    [plain] = json.loads(out)["chains"]
    assert code == 0
    assert plain["left_out"] == [{"operator": op(3), "reason": "no-node-id"}]

    code, out, _ = run([*argv, "--json", "--compat", "ics-operator"], capsys)
    [compat] = json.loads(out)["chains"]
    assert code == 0
    p2p = compat["ports"]["p2p"]
    assert p2p == derive_ports("neutron-1", PortScheme.ICS_OPERATOR).p2p
    go_id = insecure_node_id_from_moniker("gopher", "neutron-1")
    assert compat["peers"] == [
        f"{node_id(2)}@203.0.113.2:{p2p}",
        f"{go_id}@203.0.113.3:{p2p}",
    ]
    assert compat["left_out"] == []

    # Compatibility mode implies its port scheme; another one is refused.
    code, _, err = run([*argv, "--compat", "ics-operator", "--scheme", "document"], capsys)
    assert code == 2
    assert "--compat ics-operator needs --scheme ics-operator" in err
