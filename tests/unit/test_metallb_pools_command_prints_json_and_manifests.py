"""`ics-discovery metallb-pools`: JSON, manifests, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from discovery.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "docker-network-inspect"


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "metallb-pools",
            "--network-json",
            str(DATA / "ipv6-first-16.json"),
            "--clusters",
            "alice,bob,charlie",
            "--size",
            "10",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {
        "subnet": "172.18.0.0/16",
        "pools": {
            "alice": {"start": "172.18.255.245", "end": "172.18.255.254"},
            "bob": {"start": "172.18.255.235", "end": "172.18.255.244"},
            "charlie": {"start": "172.18.255.225", "end": "172.18.255.234"},
        },
    }


def test_manifests_output_from_stdin() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "discovery.cli",
            "metallb-pools",
            "--network-json",
            "-",
            "--clusters",
            "alice,bob",
            "--manifests",
            "--only",
            "bob",
        ],
        input=(DATA / "ipv6-first-24-no-gateway.json").read_text(),
        capture_output=True,
        text=True,
        check=True,
    )
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert [d["kind"] for d in docs] == ["IPAddressPool", "L2Advertisement"]
    assert docs[0]["metadata"]["namespace"] == "metallb-system"
    assert docs[0]["spec"]["addresses"] == ["10.89.3.230-10.89.3.239"]


def test_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            ["metallb-pools", "--network-json", str(DATA / "docker27-20.json"), "--clusters", "a,b"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "192.168.32.0/20" in out
    assert "192.168.47.233 - 192.168.47.242" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--network-json", str(DATA / "ipv6-only.json"), "--clusters", "alice"], "no IPv4 subnet"),
        (["--network-json", str(DATA / "ipv4-only-28.json"), "--clusters", "a,b"], "no free run"),
        (["--network-json", "/nonexistent.json", "--clusters", "alice"], "cannot read"),
        (["--network-json", str(DATA / "ipv4-first-16.json"), "--clusters", ","], "at least one"),
        (
            ["--network-json", str(DATA / "ipv4-first-16.json"), "--clusters", "a", "--only", "a"],
            "--only works with --manifests",
        ),
    ],
)
def test_errors_are_one_line_with_status_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["metallb-pools", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
