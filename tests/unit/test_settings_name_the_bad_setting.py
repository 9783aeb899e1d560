"""Settings load from environment and file, and every problem names its setting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import tomli_w
import yaml

from chainmonitor.addresses import bech32_encode
from discovery.cli import main
from discovery.interop import Compat
from discovery.ports import PortScheme
from discovery.settings import (
    ENV_PREFIX,
    Settings,
    SettingsInvalid,
    check_files,
    load_settings,
    parse_host_port,
    unknown_environment,
)
from discovery.types import NotifyMode

# Well-formed addresses (valid bech32 checksums) of one 20-byte account.
OPERATOR = bech32_encode("cosmosvaloper", bytes(range(1, 21)))
ACCOUNT = bech32_encode("cosmos", bytes(range(1, 21)))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_RPC_URLS", "http://127.0.0.1:26657")
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_GRPC_URLS", "127.0.0.1:9090")
    monkeypatch.setenv(ENV_PREFIX + "OPERATOR_ADDRESS", OPERATOR)


def problems_of(exc: pytest.ExceptionInfo[SettingsInvalid]) -> dict[str, str]:
    return {p.setting: p.message for p in exc.value.problems}


def test_defaults_follow_the_issue() -> None:
    s = load_settings()
    assert s.service_name == "p2p-loadbalancer"
    assert s.service_namespace == "provider"
    assert s.port_scheme is PortScheme.DOCUMENT
    assert s.publish_endpoint is False
    assert s.notify_default is NotifyMode.NONE
    assert s.effective_lease_namespace() == "provider"
    assert s.websocket_urls() == ["ws://127.0.0.1:26657/websocket"]
    assert s.operator_address == OPERATOR


def test_lists_and_maps_accept_commas_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_RPC_URLS", "https://a.example:443/, http://b:26657")
    monkeypatch.setenv(ENV_PREFIX + "RESERVED_PORTS", "[30301, 30100, 30301]")
    monkeypatch.setenv(ENV_PREFIX + "NOTIFY_MODES", "chain-b=dial, chain-a=restart")
    monkeypatch.setenv(ENV_PREFIX + "CONSUMER_POD_LABELS", '{"app": "consumer"}')
    monkeypatch.setenv(ENV_PREFIX + "PORT_SCHEME", "ics-operator")
    s = load_settings()
    assert s.provider_rpc_urls == ["https://a.example:443", "http://b:26657"]
    assert s.websocket_urls() == ["wss://a.example:443/websocket", "ws://b:26657/websocket"]
    assert s.reserved_ports == [30100, 30301]
    assert list(s.notify_modes) == ["chain-a", "chain-b"]
    assert s.notify_mode("chain-b") is NotifyMode.DIAL
    assert s.notify_mode("other") is NotifyMode.NONE
    assert s.consumer_pod_labels == {"app": "consumer"}
    assert s.port_scheme is PortScheme.ICS_OPERATOR


def test_each_bad_value_is_reported_with_setting_and_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "OPERATOR_ADDRESS", ACCOUNT)
    monkeypatch.setenv(ENV_PREFIX + "RESYNC_INTERVAL", "0")
    monkeypatch.setenv(ENV_PREFIX + "RESERVED_PORTS", "80,70000")
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_WEBSOCKET_URLS", "http://wrong-scheme")
    monkeypatch.setenv(ENV_PREFIX + "NOTIFY_DEFAULT", "reboot")
    monkeypatch.setenv(ENV_PREFIX + "ENDPOINT_DENY_CIDRS", "10.0.0.1/8")
    monkeypatch.setenv(ENV_PREFIX + "SERVICE_NAMESPACE", "Not_A_Label")
    monkeypatch.setenv(ENV_PREFIX + "GRPC_LISTEN", "::1:9400")
    with pytest.raises(SettingsInvalid) as exc:
        load_settings()
    found = problems_of(exc)
    assert set(found) == {
        "operator_address",
        "resync_interval",
        "reserved_ports",
        "provider_websocket_urls",
        "notify_default",
        "endpoint_deny_cidrs",
        "service_namespace",
        "grpc_listen",
    }
    text = str(exc.value)
    assert "ICS_DISCOVERY_RESYNC_INTERVAL" in text
    assert "item 1" in found["reserved_ports"]
    assert "brackets" in found["grpc_listen"]


def test_required_settings_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PREFIX + "OPERATOR_ADDRESS")
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_RPC_URLS", "")
    with pytest.raises(SettingsInvalid) as exc:
        load_settings()
    found = problems_of(exc)
    assert found["operator_address"] == "required, not set"
    assert "provider_rpc_urls" in found


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_settings_file_in_every_format_with_environment_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    data = {
        "service_namespace": "validators",
        "resync_interval": 42,
        "reserved_ports": [30400],
        "notify_modes": {"chain-x": "restart"},
        "lease_name": "from-file",
    }
    path = tmp_path / f"settings{suffix}"
    if suffix == ".yaml":
        path.write_text(yaml.safe_dump(data))
    elif suffix == ".toml":
        path.write_text(tomli_w.dumps(data))
    else:
        path.write_text(json.dumps(data))
    monkeypatch.setenv(ENV_PREFIX + "LEASE_NAME", "from-env")
    s = load_settings(path)
    assert s.service_namespace == "validators"
    assert s.resync_interval == 42
    assert s.reserved_ports == [30400]
    assert s.notify_mode("chain-x") is NotifyMode.RESTART
    assert s.lease_name == "from-env"
    # The same file found through the environment variable.
    monkeypatch.setenv(ENV_PREFIX + "CONFIG_FILE", str(path))
    assert load_settings().service_namespace == "validators"


def test_settings_file_problems_name_the_file_and_key(tmp_path: Path) -> None:
    typo = tmp_path / "s.yaml"
    typo.write_text("resync_intervall: 5\n")
    with pytest.raises(SettingsInvalid) as exc:
        load_settings(typo)
    assert problems_of(exc) == {"resync_intervall": f"unknown setting in {typo}"}

    broken = tmp_path / "s.toml"
    broken.write_text("resync_interval = \n")
    with pytest.raises(SettingsInvalid) as exc:
        load_settings(broken)
    assert "is not valid toml" in problems_of(exc)["config_file"]

    bad_value = tmp_path / "s.json"
    bad_value.write_text('{"resync_interval": "soon"}')
    with pytest.raises(SettingsInvalid) as exc:
        load_settings(bad_value)
    assert "resync_interval" in problems_of(exc)
    assert str(bad_value) in str(exc.value)

    with pytest.raises(SettingsInvalid) as exc:
        load_settings(tmp_path / "missing.yaml")
    assert "config_file" in problems_of(exc)


def test_settings_that_contradict_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_ENDPOINT", "true")
    monkeypatch.setenv(ENV_PREFIX + "GRPC_TLS_CERT_FILE", "/tls/cert.pem")
    monkeypatch.setenv(ENV_PREFIX + "GRPC_TLS_CLIENT_CA_FILE", "/tls/ca.pem")
    monkeypatch.setenv(ENV_PREFIX + "LEASE_DURATION", "10")
    monkeypatch.setenv(ENV_PREFIX + "RENEW_DEADLINE", "10")
    with pytest.raises(SettingsInvalid) as exc:
        load_settings()
    found = problems_of(exc)
    assert set(found) == {"publish_key_file", "grpc_tls_key_file", "renew_deadline"}


def test_queries_need_grpc_or_rest_and_publishing_needs_grpc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_GRPC_URLS", "")
    with pytest.raises(SettingsInvalid) as exc:
        load_settings()
    assert "need a gRPC endpoint" in problems_of(exc)["provider_grpc_urls"]

    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_REST_URLS", "http://127.0.0.1:1317")
    assert load_settings().provider_rest_urls == ["http://127.0.0.1:1317"]

    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_ENDPOINT", "true")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_KEY_ENV", "VALIDATOR_MNEMONIC")
    with pytest.raises(SettingsInvalid) as exc:
        load_settings()
    assert problems_of(exc) == {
        "provider_grpc_urls": "publish_endpoint needs a gRPC endpoint to sign through"
    }


def test_key_file_must_be_private_and_key_variable_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "mnemonic"
    key.write_text("secret words\n")
    key.chmod(0o644)
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_ENDPOINT", "1")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_KEY_FILE", str(key))
    s = load_settings()
    with pytest.raises(SettingsInvalid) as exc:
        check_files(s)
    assert "chmod 600" in problems_of(exc)["publish_key_file"]
    assert "secret" not in str(exc.value)
    key.chmod(0o600)
    check_files(s)

    monkeypatch.delenv(ENV_PREFIX + "PUBLISH_KEY_FILE")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_KEY_ENV", "VALIDATOR_MNEMONIC")
    s = load_settings()
    with pytest.raises(SettingsInvalid) as exc:
        check_files(s, environ={})
    assert "VALIDATOR_MNEMONIC is not set" in problems_of(exc)["publish_key_env"]
    check_files(s, environ={"VALIDATOR_MNEMONIC": "abandon abandon"})


def test_publication_fees_node_id_and_granter_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_FEE_DENOM", "uatom")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_GAS_PRICE", "0.005")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_NODE_ID", " " + "AB" * 20 + " ")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_AUTHZ_GRANTER", ACCOUNT)
    s = load_settings()
    assert (s.publish_fee_denom, s.publish_gas_price) == ("uatom", 0.005)
    assert s.publish_node_id == "ab" * 20
    assert s.publish_authz_granter == ACCOUNT
    assert s.grpc_targets() == ["127.0.0.1:9090"]
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_GRPC_TLS", "true")
    assert load_settings().grpc_targets() == ["grpcs://127.0.0.1:9090"]
    monkeypatch.delenv(ENV_PREFIX + "PROVIDER_GRPC_TLS")

    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_FEE_DENOM", "1atom")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_GAS_PRICE", "-1")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_NODE_ID", "ab" * 19)
    with pytest.raises(SettingsInvalid) as exc:
        load_settings()
    found = problems_of(exc)
    assert set(found) == {"publish_fee_denom", "publish_gas_price", "publish_node_id"}
    assert "coin denomination" in found["publish_fee_denom"]
    assert "40" in found["publish_node_id"]

    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_FEE_DENOM", "ibc/27394FB092D2ECCD56123C74F36E4C1F")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_GAS_PRICE", "0")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_NODE_ID", "ab" * 20)
    monkeypatch.setenv(ENV_PREFIX + "NODE_KEY_SECRET_ENV", "NODE_SECRET")
    other = bech32_encode("cosmos", bytes(range(2, 22)))
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_AUTHZ_GRANTER", other)
    with pytest.raises(SettingsInvalid) as exc:
        load_settings()
    found = problems_of(exc)
    assert set(found) == {"node_key_secret_env", "publish_authz_granter"}
    assert "publish_node_id" in found["node_key_secret_env"]
    assert "not the account of operator_address" in found["publish_authz_granter"]


def test_peers_namespaces_are_labels_and_only_for_consumers_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "PEERS_NAMESPACES", "team-b, team-a,team-b")
    assert load_settings().peers_namespaces == ["team-a", "team-b"]
    monkeypatch.setenv(ENV_PREFIX + "PEERS_NAMESPACES", "team-a,Team_B")
    with pytest.raises(SettingsInvalid) as exc:
        load_settings()
    assert "'Team_B' is not a DNS label" in problems_of(exc)["peers_namespaces"]
    monkeypatch.setenv(ENV_PREFIX + "PEERS_NAMESPACES", "team-a")
    monkeypatch.setenv(ENV_PREFIX + "CONSUMER_NAMESPACE", "consumers")
    with pytest.raises(SettingsInvalid) as exc:
        load_settings()
    assert "only for consumer_namespace empty" in problems_of(exc)["peers_namespaces"]


def test_node_key_secret_variable_must_be_set_and_long_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_ENDPOINT", "1")
    monkeypatch.setenv(ENV_PREFIX + "PUBLISH_KEY_ENV", "VALIDATOR_MNEMONIC")
    monkeypatch.setenv(ENV_PREFIX + "NODE_KEY_SECRET_ENV", "NODE_SECRET")
    s = load_settings()
    key = {"VALIDATOR_MNEMONIC": "abandon abandon"}
    with pytest.raises(SettingsInvalid) as exc:
        check_files(s, environ=key)
    assert "NODE_SECRET is not set" in problems_of(exc)["node_key_secret_env"]
    with pytest.raises(SettingsInvalid) as exc:
        check_files(s, environ={**key, "NODE_SECRET": "tooshort-secret"})
    assert "shorter than 32 bytes" in problems_of(exc)["node_key_secret_env"]
    assert "tooshort" not in str(exc.value)
    check_files(s, environ={**key, "NODE_SECRET": "x" * 32})


def test_kubernetes_service_links_are_not_mistaken_for_typos() -> None:
    env = {
        "ICS_DISCOVERY_SERVICE_HOST": "10.0.0.9",
        "ICS_DISCOVERY_SERVICE_PORT": "9400",
        "ICS_DISCOVERY_SERVICE_PORT_GRPC": "9400",
        "ICS_DISCOVERY_PORT": "tcp://10.0.0.9:9400",
        "ICS_DISCOVERY_PORT_9400_TCP_ADDR": "10.0.0.9",
        "ICS_DISCOVERY_RESYNC_INTERVAL": "5",
        "ICS_DISCOVERY_CONFIG_FILE": "/etc/x.yaml",
        "ICS_DISCOVERY_RESYNC_INTERVALL": "5",
        "HOME": "/root",
    }
    assert unknown_environment(env) == ["ICS_DISCOVERY_RESYNC_INTERVALL"]


def test_host_port_forms() -> None:
    assert parse_host_port("[::1]:9400", allow_empty_host=False) == ("::1", 9400)
    assert parse_host_port(":9401", allow_empty_host=True) == ("", 9401)
    for bad in ("9400", "host:", "host:99999", "[nope]:1", ":1"):
        with pytest.raises(ValueError, match=r"."):
            parse_host_port(bad, allow_empty_host=False)


def test_run_help_documents_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name, info in Settings.model_fields.items():
        assert f"{ENV_PREFIX}{name.upper()}  (" in out, name
        assert info.description, name
        first_words = " ".join(info.description.split()[:3])
        assert first_words in " ".join(out.split()), name


def test_run_refuses_bad_settings_with_their_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "LOG_LEVEL", "verbose")
    assert main(["run", "--check-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "setting log_level (ICS_DISCOVERY_LOG_LEVEL)" in err


def test_run_check_config_prints_effective_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "LOG_LEVEL", "DEBUG")
    assert main(["run", "--check-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["log_level"] == "debug"
    assert shown["operator_address"] == OPERATOR
    assert set(shown) == set(Settings.model_fields)


def test_compat_is_off_by_default_and_needs_the_go_port_scheme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().compat is Compat.NONE
    monkeypatch.setenv(ENV_PREFIX + "COMPAT", "ics-operator")
    with pytest.raises(SettingsInvalid) as info:
        load_settings()
    assert "compat ics-operator needs port_scheme ics-operator" in problems_of(info)["port_scheme"]
    monkeypatch.setenv(ENV_PREFIX + "PORT_SCHEME", "ics-operator")
    assert load_settings().compat is Compat.ICS_OPERATOR
    monkeypatch.setenv(ENV_PREFIX + "COMPAT", "go")
    with pytest.raises(SettingsInvalid) as info:
        load_settings()
    assert "compat" in problems_of(info)
