"""`ics-discovery nodekey` writes node_key.json mode 0600, never clobbers, never prints keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from discovery.cli import main
from discovery.nodekey import decode_node_key, derive_node_key, insecure_node_id_from_moniker


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_writes_a_0600_file_and_prints_its_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "node_key.json"
    code, out, err = run(["nodekey", "generate", "--out", str(out_file)], capsys)
    assert (code, err) == (0, "")
    assert mode(out_file) == 0o600
    key = decode_node_key(out_file.read_bytes())
    assert out == f"{key.node_id}\n"
    assert key.seed.hex() not in out
    assert list(tmp_path.iterdir()) == [out_file]


def test_existing_files_are_kept_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "node_key.json"
    out_file.write_text("precious")
    code, _, err = run(["nodekey", "generate", "--out", str(out_file)], capsys)
    assert code == 2
    assert "--force" in err
    assert err.count("\n") == 1
    assert out_file.read_text() == "precious"
    assert list(tmp_path.iterdir()) == [out_file]
    code, out, _ = run(["nodekey", "generate", "--out", str(out_file), "--force", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["node_id"] == decode_node_key(out_file.read_bytes()).node_id
    assert mode(out_file) == 0o600


def test_derive_from_secret_file_is_repeatable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"k" * 32 + b"\n")
    out_file = tmp_path / "node_key.json"
    argv = ["nodekey", "derive", "--chain-id", "consumer-1", "--secret-file", str(secret)]
    code, out, _ = run([*argv, "--out", str(out_file)], capsys)
    assert code == 0
    expected = derive_node_key(b"k" * 32, "consumer-1")
    assert decode_node_key(out_file.read_bytes()) == expected
    assert out == f"{expected.node_id}\n"
    code, again, _ = run(argv, capsys)
    assert (code, again) == (0, out)


def test_derive_without_chain_id_gives_the_key_for_all_chains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"k" * 40 + b"\n")
    code, out, _ = run(["nodekey", "derive", "--secret-file", str(secret), "--json"], capsys)
    assert code == 0
    assert json.loads(out) == {"node_id": derive_node_key(b"k" * 40).node_id}
    assert json.loads(out)["node_id"] != derive_node_key(b"k" * 40, "consumer-1").node_id
    code, out, err = run(["nodekey", "derive", "--insecure-derive-from-moniker", "alice"], capsys)
    assert (code, out) == (2, "")
    assert "needs --chain-id" in err


def test_short_secret_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"short\n")
    code, out, err = run(
        ["nodekey", "derive", "--chain-id", "c-1", "--secret-file", str(secret)], capsys
    )
    assert code == 2
    assert out == ""
    assert "at least 32" in err
    assert "short" not in err


def test_insecure_derivation_needs_its_explicit_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        ["nodekey", "derive", "--chain-id", "c-1", "--insecure-derive-from-moniker", "alice"],
        capsys,
    )
    assert code == 0
    assert out == f"{insecure_node_id_from_moniker('alice', 'c-1')}\n"
    code, _, err = run(["nodekey", "derive", "--chain-id", "c-1"], capsys)
    assert code == 2
    assert "required" in err


def test_id_reads_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "node_key.json"
    run(["nodekey", "generate", "--out", str(out_file)], capsys)
    node_id = decode_node_key(out_file.read_bytes()).node_id
    code, out, _ = run(["nodekey", "id", str(out_file), "--json"], capsys)
    assert code == 0
    assert json.loads(out) == {"node_id": node_id}


def test_id_of_a_broken_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "node_key.json"
    broken.write_text('{"priv_key": {"type": "tendermint/PrivKeyEd25519", "value": "AAAA"}}')
    code, _, err = run(["nodekey", "id", str(broken)], capsys)
    assert code == 2
    assert "64 bytes" in err
    assert "AAAA" not in err
    code, _, err = run(["nodekey", "id", str(tmp_path / "missing.json")], capsys)
    assert code == 2
    assert "cannot read" in err


def test_unwritable_target_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["nodekey", "generate", "--out", str(tmp_path / "no" / "k.json")], capsys)
    assert code == 2
    assert "cannot write" in err


def test_insecure_derivation_prints_the_go_node_id(capsys: pytest.CaptureFixture[str]) -> None:
    # Vector from tests/unit/test_nodekey_ids_match_cometbft_vectors.py (the Go steps run in Go).
    code, out, _ = run(
        [
            "nodekey",
            "derive",
            "--chain-id",
            "consumer-0-1751686503-0",
            "--insecure-derive-from-moniker",
            "alice",
        ],
        capsys,
    )
    assert (code, out) == (0, "5bfa116e205beffbb67840c4a4d3d8e46da44a06\n")
