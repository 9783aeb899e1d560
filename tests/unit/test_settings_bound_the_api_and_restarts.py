"""The API limits and the restart scope are settings: sound defaults, clear refusals."""

from __future__ import annotations

import os

import pytest

from chainmonitor.addresses import bech32_encode
from discovery.settings import ENV_PREFIX, SettingsInvalid, load_settings

OPERATOR = bech32_encode("cosmosvaloper", bytes(range(1, 21)))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_RPC_URLS", "http://127.0.0.1:26657")
    monkeypatch.setenv(ENV_PREFIX + "PROVIDER_GRPC_URLS", "127.0.0.1:9090")
    monkeypatch.setenv(ENV_PREFIX + "OPERATOR_ADDRESS", OPERATOR)


def test_defaults_bound_calls_and_streams() -> None:
    s = load_settings()
    assert s.grpc_max_concurrent_rpcs == 256
    assert s.grpc_max_streams == 128


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PREFIX + "GRPC_MAX_CONCURRENT_RPCS", "40")
    monkeypatch.setenv(ENV_PREFIX + "GRPC_MAX_STREAMS", "30")
    s = load_settings()
    assert (s.grpc_max_concurrent_rpcs, s.grpc_max_streams) == (40, 30)


def test_streams_must_leave_room_for_other_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PREFIX + "GRPC_MAX_CONCURRENT_RPCS", "10")
    monkeypatch.setenv(ENV_PREFIX + "GRPC_MAX_STREAMS", "10")
    with pytest.raises(SettingsInvalid) as bad:
        load_settings()
    (problem,) = bad.value.problems
    assert problem.setting == "grpc_max_streams"
    assert "grpc_max_concurrent_rpcs (10)" in problem.message


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_limit_must_be_a_positive_number(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_PREFIX + "GRPC_MAX_STREAMS", value)
    with pytest.raises(SettingsInvalid) as bad:
        load_settings()
    assert [p.setting for p in bad.value.problems] == ["grpc_max_streams"]


def test_restart_workloads_name_the_only_workloads_to_roll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "CONSUMER_NAMESPACE", "consumers")
    monkeypatch.setenv(
        ENV_PREFIX + "RESTART_WORKLOADS", '["StatefulSet/neutron-node", "Deployment/other/x"]'
    )
    s = load_settings()
    assert s.restart_scope() == frozenset(
        {("StatefulSet", "consumers", "neutron-node"), ("Deployment", "other", "x")}
    )


def test_no_restart_workloads_means_any_workload_of_the_chain() -> None:
    assert load_settings().restart_scope() is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("DaemonSet/x", "Kind Deployment or StatefulSet"),
        ("Deployment", "Kind/namespace/name or Kind/name"),
        ("Deployment/Bad_Name", "not a Kubernetes object name"),
        ("Deployment/Bad NS/x", "not a namespace name"),
        ("Deployment/x", "needs a namespace"),  # consumer_namespace empty
    ],
)
def test_bad_restart_workloads_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "RESTART_WORKLOADS", value)
    with pytest.raises(SettingsInvalid) as bad:
        load_settings()
    problems = {p.setting: p.message for p in bad.value.problems}
    assert list(problems) == ["restart_workloads"]
    assert message in problems["restart_workloads"]
