"""Bad settings fail at construction naming the setting; bad chain specs are refused one by one."""

from __future__ import annotations

from typing import Any

import pytest

from lbmanager.consumer_pods import keyed_pod_selector
from lbmanager.errors import InvalidSettings, LbManagerError
from lbmanager.service_builder import parse_ownership, render_ownership, validate_chain
from lbmanager.types import ChainExposure, ChainKey, ExposedPort, LbSettings, PodSelector


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"namespace": "Provider"}, "namespace"),
        ({"service_name": "p2p_lb"}, "service_name"),
        ({"owner": ""}, "owner"),
        ({"owner": "has space"}, "owner"),
        ({"max_ports_per_service": 0}, "max_ports_per_service"),
        ({"max_ports_per_service": 5, "service_name": "x" * 60}, "service_name"),
        ({"write_concurrency": 0}, "write_concurrency"),
    ],
)
def test_bad_settings_name_the_setting(kwargs: dict[str, Any], setting: str) -> None:
    with pytest.raises(InvalidSettings) as err:
        LbSettings(**kwargs)
    assert err.value.setting == setting
    assert setting in str(err.value)
    assert isinstance(err.value, LbManagerError)
    assert not err.value.transient


def test_defaults_match_the_existing_deployments() -> None:
    s = LbSettings()
    assert (s.namespace, s.service_name) == ("provider", "p2p-loadbalancer")
    assert s.max_ports_per_service is None


def chain(
    *ports: ExposedPort, selector: PodSelector | None = None, key: str = "c"
) -> ChainExposure:
    return ChainExposure(ChainKey(key), tuple(ports), selector or keyed_pod_selector(key))


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (chain(), "no ports"),
        (chain(ExposedPort("p2p", 0, 1)), "not in 1..65535"),
        (chain(ExposedPort("p2p", 1, 65536)), "not in 1..65535"),
        (chain(ExposedPort("p2p", 1, 1, "ICMP")), "protocol"),  # type: ignore[arg-type]
        (chain(ExposedPort("p2p", 1, 1), ExposedPort("p2p", 2, 2)), "appears twice"),
        (chain(ExposedPort("p2p", 1, 1), ExposedPort("rpc", 1, 2)), "1/TCP appears twice"),
        (chain(ExposedPort("", 1, 1)), "role name"),
        (chain(ExposedPort("p2p", 1, 1), key=""), "empty"),
        (chain(ExposedPort("p2p", 1, 1), key="k" * 513), "longer"),
        (chain(ExposedPort("p2p", 1, 1), selector=PodSelector(labels={})), "at least one label"),
        (chain(ExposedPort("p2p", 1, 1), selector=PodSelector(labels={"a": "b c"})), "not a valid"),
        (
            chain(
                ExposedPort("p2p", 1, 1), selector=PodSelector(labels={"a": "b"}, namespace="NS")
            ),
            "namespace",
        ),
    ],
)
def test_bad_chain_specs_are_explained(spec: ChainExposure, problem: str) -> None:
    err = validate_chain(spec)
    assert err is not None
    assert problem in str(err)
    assert not err.transient


def test_good_chain_spec_passes() -> None:
    assert validate_chain(chain(ExposedPort("p2p", 30001, 26656, "TCP"), key="Odd_ID/ü")) is None


def test_ownership_record_round_trips_and_rejects_other_shapes() -> None:
    own = {"me": {"b": ("n2", "n1"), "a": ("n3",)}, "empty": {}}
    text = render_ownership(own)
    assert text == '{"owners":{"me":{"a":["n3"],"b":["n1","n2"]}},"v":1}'
    assert parse_ownership(text) == {"me": {"a": ("n3",), "b": ("n1", "n2")}}
    assert render_ownership({}) is None
    for bad in (
        '{"v":2,"owners":{}}',
        "[]",
        '{"v":1,"owners":{"me":["x"]}}',
        '{"v":1,"owners":{"me":{"k":[1]}}}',
    ):
        with pytest.raises(ValueError, match=r"expected|owners"):
            parse_ownership(bad)
