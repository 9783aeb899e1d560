"""Operator notify modes and notify_resources: accepted, or refused naming the setting."""

from __future__ import annotations

import os

import pytest

from chainmonitor.addresses import bech32_encode
from discovery.operator_notify import OperatorNotifyError, parse_resource_ref
from discovery.operators import CHAIN_NODE_SET, COSMOS_FULL_NODE
from discovery.settings import ENV_PREFIX, SettingsInvalid, load_settings
from discovery.types import NotifyMode

OPERATOR = bech32_encode("cosmosvaloper", bytes(range(1, 21)))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_RPC_URLS", "http://127.0.0.1:26657")
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_GRPC_URLS", "127.0.0.1:9090")
    monkeypatch.setenv(ENV_PREFIX + "OPERATOR_ADDRESS", OPERATOR)


def test_operator_modes_and_named_resources_load() -> None:
    s = load_settings(
        notify_modes="chain-a=cosmos-operator,chain-b=cosmopilot",
        notify_resources="chain-b=ChainNodeSet/b-nodes,chain-a=a-node",
    )
    assert s.notify_mode("chain-a") is NotifyMode.COSMOS_OPERATOR
    assert s.notify_mode("chain-b") is NotifyMode.COSMOPILOT
    assert s.notify_resources == {"chain-a": "a-node", "chain-b": "ChainNodeSet/b-nodes"}


@pytest.mark.parametrize(
    ("modes", "resources", "problem"),
    [
        ("chain-a=restart", "chain-a=node", "only for cosmos-operator or cosmopilot"),
        ("chain-a=cosmos-operator", "chain-a=ChainNode/node", "CosmosFullNode"),
        ("chain-a=cosmopilot", "chain-a=CosmosFullNode/node", "ChainNodeSet or ChainNode"),
        ("chain-a=cosmopilot", "chain-a=Bad_Name", "Kubernetes object name"),
        ("chain-a=cosmopilot", "chain-a=/node", "Kubernetes object name"),
    ],
)
def test_a_bad_node_resource_names_the_setting(modes: str, resources: str, problem: str) -> None:
    with pytest.raises(SettingsInvalid) as info:
        load_settings(notify_modes=modes, notify_resources=resources)
    assert [p.setting for p in info.value.problems] == ["notify_resources"]
    assert problem in str(info.value)


def test_resource_references_name_a_kind_of_the_target() -> None:
    assert parse_resource_ref("cosmopilot", "chainnodesets/x") == (CHAIN_NODE_SET, "x")
    assert parse_resource_ref("cosmos-operator", "CosmosFullNode/x") == (COSMOS_FULL_NODE, "x")
    assert parse_resource_ref("cosmopilot", "x") == (None, "x")
    with pytest.raises(OperatorNotifyError, match="no kind"):
        parse_resource_ref("cosmos-operator", "ChainNode/x")
