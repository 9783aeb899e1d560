"""Kubernetes' name rules are written once (lbmanager.k8snames) and every checker agrees.

The settings, the Service builder and LbSettings all ask k8snames, so a label
key or a namespace accepted in one place is accepted in every other.
"""

from __future__ import annotations

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainmonitor.addresses import bech32_encode
from discovery.settings import Settings
from lbmanager.errors import InvalidSettings
from lbmanager.k8snames import (
    is_dns1035_label,
    is_dns_label,
    is_dns_subdomain,
    is_label_key,
    is_label_value,
)
from lbmanager.service_builder import validate_chain
from lbmanager.types import ChainExposure, ChainKey, ExposedPort, LbSettings, PodSelector

BASE = {
    "provider_rpc_urls": ["http://127.0.0.1:26657"],
    "provider_grpc_urls": ["127.0.0.1:9090"],
    "operator_address": bech32_encode("cosmosvaloper", bytes(range(1, 21))),
}


@pytest.mark.parametrize(
    ("check", "text", "ok"),
    [
        (is_dns_label, "consumer-1", True),
        (is_dns_label, "a" * 63, True),
        (is_dns_label, "a" * 64, False),
        (is_dns_label, "Consumer", False),
        (is_dns_label, "consumer\n", False),
        (is_dns_label, "-a", False),
        (is_dns_label, "", False),
        (is_dns1035_label, "p2p-lb", True),
        (is_dns1035_label, "1lb", False),
        (is_dns_subdomain, "example.com", True),
        (is_dns_subdomain, "a." * 126 + "a", True),
        (is_dns_subdomain, "a." * 127 + "a", False),
        (is_dns_subdomain, "example..com", False),
        (is_label_key, "app", True),
        (is_label_key, "example.com/app", True),
        (is_label_key, "app.kubernetes.io/name", True),
        (is_label_key, "Bad_Prefix!/app", False),
        (is_label_key, "/app", False),
        (is_label_key, "example.com/", False),
        (is_label_key, "a" * 64, False),
        (is_label_key, "app\n", False),
        (is_label_value, "", True),
        (is_label_value, "v1.2_x-Y", True),
        (is_label_value, "-v", False),
        (is_label_value, "v" * 64, False),
        (is_label_value, "v\n", False),
    ],
)
def test_the_rules(check: object, text: str, ok: bool) -> None:
    assert callable(check)
    assert check(text) is ok


def _settings_accept_label(key: str, value: str) -> bool:
    try:
        Settings.model_validate({**BASE, "consumer_pod_labels": {key: value}})
    except pydantic.ValidationError:
        return False
    return True


def _builder_accepts_label(key: str, value: str) -> bool:
    chain = ChainExposure(
        key=ChainKey("chain-a"),
        ports=(ExposedPort(name="p2p", port=26656, target_port=26656),),
        pods=PodSelector(namespace="consumers", labels={key: value}),
    )
    return validate_chain(chain) is None


label_text = st.text(
    alphabet=st.sampled_from("aZ09-_./!\n"), min_size=0, max_size=70
) | st.sampled_from(["Bad_Prefix!/app", "example.com/app", "/app", "app", "a" * 64])


@given(key=label_text, value=label_text)
def test_settings_and_the_service_builder_agree_on_labels(key: str, value: str) -> None:
    if not key:
        return  # the builder needs at least one label; an empty key is no label at all
    expected = is_label_key(key) and is_label_value(value)
    assert _settings_accept_label(key, value) is expected
    assert _builder_accepts_label(key, value) is expected


@given(st.text(alphabet=st.sampled_from("az09-.\nA"), max_size=70))
def test_settings_and_lbsettings_agree_on_namespaces(name: str) -> None:
    try:
        Settings.model_validate({**BASE, "service_namespace": name})
        settings_ok = True
    except pydantic.ValidationError:
        settings_ok = False
    try:
        LbSettings(namespace=name)
        lb_ok = True
    except InvalidSettings:
        lb_ok = False
    assert settings_ok is lb_ok is is_dns_label(name)
