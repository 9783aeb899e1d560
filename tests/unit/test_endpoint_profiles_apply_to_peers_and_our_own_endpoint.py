"""Endpoint policy profiles: mainnet (the service's default) and testnet, for peers and for us."""

from __future__ import annotations

import pytest

from chainmonitor.addresses import bech32_encode
from discovery.endpoints import (
    MAINNET_POLICY,
    TESTNET_POLICY,
    EndpointPolicy,
    EndpointProfile,
    PublishedEndpoint,
    read_details,
)
from discovery.errors import InvalidEndpointPolicy
from discovery.own_endpoint import endpoint_update
from discovery.settings import load_settings

NODE = "ab" * 20

NOT_PUBLIC = [
    "10.96.0.1",  # a cluster's kubernetes Service
    "172.18.0.5",
    "192.168.1.1",
    "100.64.0.1",  # CGNAT
    "192.0.2.1",  # documentation ranges
    "198.51.100.1",
    "203.0.113.1",
    "[fd00::1]",  # ULA
    "[2001:db8::1]",
    "[::ffff:10.0.0.1]",
]
NAMES = ["kubernetes.default", "metadata.google.internal", "node.example.com"]


@pytest.mark.parametrize("host", NOT_PUBLIC + NAMES)
def test_mainnet_refuses_what_testnet_accepts(host: str) -> None:
    assert not isinstance(read_details(f"p2p={host}", MAINNET_POLICY), PublishedEndpoint)
    assert isinstance(read_details(f"p2p={host}", TESTNET_POLICY), PublishedEndpoint)


@pytest.mark.parametrize("host", ["8.8.4.4", "1.1.1.1", "[2606:4700::1111]"])
def test_both_accept_public_unicast(host: str) -> None:
    assert isinstance(read_details(f"p2p={host}", MAINNET_POLICY), PublishedEndpoint)
    assert isinstance(read_details(f"p2p={host}", TESTNET_POLICY), PublishedEndpoint)


def test_the_service_defaults_to_mainnet_and_testnet_is_one_setting_away() -> None:
    operator = bech32_encode("cosmosvaloper", b"\x01" * 20)
    base = {
        "provider_rpc_urls": ["http://127.0.0.1:26657"],
        "provider_grpc_urls": ["127.0.0.1:9090"],
        "operator_address": operator,
    }
    s = load_settings(None, **base)
    assert s.endpoint_profile is EndpointProfile.MAINNET
    assert s.endpoint_policy() == MAINNET_POLICY
    t = load_settings(None, endpoint_profile="testnet", **base)
    assert t.endpoint_policy() == TESTNET_POLICY
    # An explicit choice on DNS names wins over the profile's.
    names = load_settings(None, endpoint_allow_dns_names=True, **base).endpoint_policy()
    assert isinstance(read_details("p2p=node.example.com", names), PublishedEndpoint)
    assert not isinstance(read_details("p2p=10.0.0.1", names), PublishedEndpoint)


def test_unknown_profiles_are_refused() -> None:
    with pytest.raises(InvalidEndpointPolicy):
        EndpointPolicy.for_profile("devnet")


def test_our_own_endpoint_obeys_the_same_policy() -> None:
    ingress = ["10.0.0.7", "lb.example.com"]
    # On mainnet a private LoadBalancer address or a name is never published.
    assert endpoint_update(ingress, "", MAINNET_POLICY, None) is None
    assert endpoint_update(ingress, "", TESTNET_POLICY, None) == "p2p=10.0.0.7"
    assert endpoint_update([*ingress, "8.8.4.4"], "", MAINNET_POLICY, None) == "p2p=8.8.4.4"
