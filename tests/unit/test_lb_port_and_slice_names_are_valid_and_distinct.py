"""Port and slice names: DNS labels, at most 63 chars, stable, distinct even if sanitised alike."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from lbmanager.naming import (
    is_dns_label,
    is_label_value,
    key_hash,
    sanitize,
    service_port_name,
    shard_index,
    shard_service_name,
    slice_name,
)

keys = st.text(min_size=1, max_size=120)
roles = st.sampled_from(["p2p", "rpc", "grpc", "grpc-web", "P2P_Port", "x" * 63])


@given(keys, roles)
def test_port_names_are_dns_labels(key: str, role: str) -> None:
    name = service_port_name(key, role)
    assert is_dns_label(name), name
    assert name == service_port_name(key, role)


@given(keys, st.sampled_from(["p2p-loadbalancer", "p2p-loadbalancer-12", "x" * 63]))
def test_slice_names_are_dns_labels_per_family(key: str, service: str) -> None:
    v4, v6 = slice_name(service, key, "IPv4"), slice_name(service, key, "IPv6")
    assert is_dns_label(v4)
    assert is_dns_label(v6)
    assert v4 != v6
    assert v4.endswith("-v4")
    assert v6.endswith("-v6")


@given(keys, keys, roles)
def test_different_keys_get_different_names(a: str, b: str, role: str) -> None:
    if a != b:
        assert service_port_name(a, role) != service_port_name(b, role)
        assert slice_name("svc", a, "IPv4") != slice_name("svc", b, "IPv4")


def test_keys_that_sanitise_alike_stay_distinct() -> None:
    keys = ["Chain_A", "chain-a", "chain.a", "CHAIN A", "chain--a", "chain/a"]
    assert len({sanitize(k) for k in keys}) == 1
    names = {service_port_name(k, "p2p") for k in keys}
    assert len(names) == len(keys)
    assert all(n.startswith("p2p-chain-a-") for n in names)


def test_names_are_readable_and_pinned() -> None:
    # The derivation is part of the cluster state (ownership records name these
    # ports), so it is pinned: readable prefix + SHA-256 of the JSON array.
    port_hash = hashlib.sha256(b'["port","testchain-0","p2p"]').hexdigest()[:10]
    assert service_port_name("testchain-0", "p2p") == f"p2p-testchain-0-{port_hash}"
    assert service_port_name("testchain-0", "p2p") == "p2p-testchain-0-4c049bfb2d"
    slice_hash = hashlib.sha256(b'["slice","p2p-loadbalancer","testchain-0"]').hexdigest()[:10]
    assert slice_name("p2p-loadbalancer", "testchain-0", "IPv4") == (
        f"p2p-loadbalancer-testchain-0-{slice_hash}-v4"
    )
    assert len(service_port_name("a" * 50, "p2p")) == 63
    assert service_port_name("___", "p2p").startswith("p2p-")
    assert is_dns_label(service_port_name("!!!", "!!!"))


@given(keys)
def test_key_hash_is_a_label_value(key: str) -> None:
    h = key_hash(key)
    assert is_label_value(h)
    assert len(h) == 40


@given(st.integers(min_value=0, max_value=99999))
def test_shard_names_round_trip(index: int) -> None:
    name = shard_service_name("p2p-loadbalancer", index)
    assert shard_index("p2p-loadbalancer", name) == index


def test_other_services_are_not_shards() -> None:
    for name in [
        "p2p-loadbalancer-0",
        "p2p-loadbalancer-01",
        "p2p-loadbalancerx",
        "p2p-lb",
        "p2p-loadbalancer-a",
    ]:
        assert shard_index("p2p-loadbalancer", name) is None
