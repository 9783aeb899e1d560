"""`ics-discovery endpoint parse|format` print stable JSON, or one line on stderr with status 2."""

from __future__ import annotations

import argparse
import json

import pytest

from discovery.cli import build_parser, main
from discovery.commands import Subparsers
from discovery.commands import endpoint as endpoint_command

NODE = "0123456789abcdef0123456789abcdef01234567"


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], profile: str | None = "testnet"
) -> tuple[int, str, str]:
    """Run the CLI; these tests use private and documentation addresses, so testnet by default."""
    if profile is not None:
        argv = [*argv, "--endpoint-profile", profile]
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_prints_host_and_null_node_id(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["endpoint", "parse", "Validator bob - p2p=192.168.97.110", "--json"], capsys
    )
    assert (code, err) == (0, "")
    assert out == '{\n  "host": "192.168.97.110",\n  "node_id": null\n}\n'


def test_parse_prints_node_id_lower_case(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["endpoint", "parse", f"p2p=[2001:DB8::1]:26656 node={NODE.upper()}", "--json"], capsys
    )
    assert code == 0
    assert json.loads(out) == {"host": "2001:db8::1", "node_id": NODE}


def test_parse_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["endpoint", "parse", "node.example.com"], capsys)
    assert code == 0
    assert out == "host: node.example.com\nnode_id: -\n"


@pytest.mark.parametrize(
    ("details", "reason"),
    [
        ("Validator bob", "no-endpoint"),
        ("p2p=127.0.0.1", "forbidden-address"),
        ("p2p=1.2.3.4 p2p=5.6.7.8", "conflicting-endpoints"),
        ("p2p=1.2.3.4,5.6.7.8", "malformed-host"),
        ("p2p=evil\n\x1b[31mINFO all good", "malformed-host"),
    ],
)
def test_rejections_exit_2_with_one_line(
    details: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["endpoint", "parse", details, "--json"], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith(f"ics-discovery endpoint: {reason}: ")
    assert err.count("\n") == 1
    assert "\x1b" not in err


def test_policy_options_apply(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["endpoint", "parse", "p2p=10.1.2.3", "--deny", "10.0.0.0/8"], capsys)
    assert code == 2
    assert "denied-by-policy" in err
    code, _, err = run(["endpoint", "parse", "p2p=10.1.2.3", "--allow", "192.168.0.0/16"], capsys)
    assert code == 2
    assert "not-in-allow-list" in err
    code, _, err = run(["endpoint", "parse", "p2p=a.example", "--no-dns-names"], capsys)
    assert code == 2
    assert "denied-by-policy" in err
    code, _, err = run(
        ["endpoint", "parse", "p2p=a.corp.example", "--deny-name-suffix", "corp.example"], capsys
    )
    assert code == 2
    assert "denied-by-policy" in err
    code, _, err = run(["endpoint", "parse", "p2p=1.2.3.4", "--deny", "bogus"], capsys)
    assert code == 2
    assert "invalid endpoint policy entry" in err


def test_format_keeps_text_and_prints_details(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        [
            "endpoint",
            "format",
            "--details",
            "Validator bob\np2p=192.168.97.110",
            "--host",
            "2001:db8::7",
            "--node-id",
            NODE,
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    # node= first, p2p= last on its line; IPv6 after a line the Go reader skips on.
    assert out == f"Validator bob\np2p=\nnode={NODE} p2p=[2001:db8::7]\n"


def test_format_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["endpoint", "format", "--details", "", "--host", "203.0.113.7", "--json"], capsys
    )
    assert code == 0
    assert json.loads(out) == {"details": "p2p=203.0.113.7"}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--details", "x" * 270, "--host", "node.example.com"], "over the limit of 280"),
        (["--details", "", "--host", "127.0.0.1"], "forbidden-address"),
        (["--details", "", "--host", "1.2.3.4", "--node-id", "zz"], "invalid node ID"),
    ],
)
def test_format_errors_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["endpoint", "format", *argv], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert fragment in err


def test_a_further_action_can_be_registered(capsys: pytest.CaptureFixture[str]) -> None:
    def add_echo(actions: Subparsers) -> None:
        parser = actions.add_parser("echo")
        parser.set_defaults(func=lambda args: print("echo") or 0)

    original = list(endpoint_command.ACTIONS)
    endpoint_command.ACTIONS.append(add_echo)
    try:
        args: argparse.Namespace = build_parser().parse_args(["endpoint", "echo"])
        assert args.func(args) == 0
        assert capsys.readouterr().out == "echo\n"
    finally:
        endpoint_command.ACTIONS[:] = original


@pytest.mark.parametrize(
    "details",
    [
        "p2p=10.96.0.1",
        "p2p=100.64.0.1",
        "p2p=192.168.97.110",
        "p2p=203.0.113.7",
        "p2p=[fd00::1]",
        "p2p=[2001:db8::1]",
        "p2p=kubernetes.default",
        "p2p=metadata.google.internal",
    ],
)
def test_the_default_profile_is_mainnet_and_refuses_private_ranges_and_names(
    details: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["endpoint", "parse", details], capsys, profile=None)
    assert (code, out) == (2, "")
    assert "denied-by-policy" in err
    code, _, _ = run(["endpoint", "parse", details], capsys, profile="testnet")
    assert code == 0


def test_mainnet_accepts_public_unicast(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["endpoint", "parse", "p2p=8.8.4.4", "--json"], capsys, profile=None)
    assert code == 0
    assert json.loads(out)["host"] == "8.8.4.4"
    code, out, _ = run(["endpoint", "parse", "p2p=[2606:4700::1111]"], capsys, profile=None)
    assert code == 0
