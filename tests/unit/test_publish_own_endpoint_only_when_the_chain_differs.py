"""Our LoadBalancer address goes on chain only when the chain shows something else; text is kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from discovery.endpoints import DEFAULT_POLICY, EndpointPolicy, PublishedEndpoint, read_details
from discovery.own_endpoint import chosen_host, endpoint_update, ingress_of
from discovery.types import NodeId

NODE = "ab" * 20


def test_nothing_to_do_when_the_chain_shows_our_address() -> None:
    details = f"Validator alice node={NODE} p2p=198.51.100.7"
    assert endpoint_update(["198.51.100.7"], details, DEFAULT_POLICY) is None


def test_the_old_token_order_is_rewritten_once_so_go_reads_it() -> None:
    details = f"Validator alice p2p=198.51.100.7 node={NODE}"
    new = endpoint_update(["198.51.100.7"], details, DEFAULT_POLICY)
    assert new == f"Validator alice node={NODE} p2p=198.51.100.7"
    assert endpoint_update(["198.51.100.7"], new, DEFAULT_POLICY) is None


def test_a_new_address_replaces_the_old_one_and_keeps_text_and_node_id() -> None:
    details = f"Validator alice p2p=198.51.100.7 node={NODE}"
    new = endpoint_update(["198.51.100.8"], details, DEFAULT_POLICY)
    assert new is not None
    assert new.startswith("Validator alice ")
    parsed = read_details(new)
    assert isinstance(parsed, PublishedEndpoint)
    assert parsed.host.name == "198.51.100.8"
    assert parsed.node_id == NODE


def test_a_configured_node_id_is_published_and_replaces_a_different_one() -> None:
    ours = NodeId("cd" * 20)
    same = f"Validator alice node={ours} p2p=198.51.100.7"
    assert endpoint_update(["198.51.100.7"], same, DEFAULT_POLICY, ours) is None
    for details in (
        "Validator alice p2p=198.51.100.7",
        f"Validator alice p2p=198.51.100.7 node={NODE}",
        "Validator alice",
    ):
        new = endpoint_update(["198.51.100.7"], details, DEFAULT_POLICY, ours)
        assert new is not None
        assert new.startswith("Validator alice")
        parsed = read_details(new)
        assert isinstance(parsed, PublishedEndpoint)
        assert (parsed.host.name, parsed.node_id) == ("198.51.100.7", ours)


def test_first_publication_adds_the_token_to_plain_text() -> None:
    new = endpoint_update(["lb.example.org"], "Validator alice", DEFAULT_POLICY)
    assert new == "Validator alice p2p=lb.example.org"


def test_unacceptable_or_missing_ingress_publishes_nothing() -> None:
    assert endpoint_update([], "p2p=198.51.100.7", DEFAULT_POLICY) is None
    assert endpoint_update(["127.0.0.1", "fe80::1"], "x", DEFAULT_POLICY) is None
    denied = EndpointPolicy.from_strings(deny=["198.51.100.0/24"])
    assert endpoint_update(["198.51.100.9"], "x", denied) is None


@given(st.permutations(["lb.example.org", "2001:db8::4", "198.51.100.3", "198.51.100.2"]))
def test_the_choice_does_not_depend_on_ingress_order(ingress: list[str]) -> None:
    host = chosen_host(ingress, DEFAULT_POLICY)
    assert host is not None
    assert host.name == "198.51.100.2"


def test_ingress_is_read_from_the_service_status() -> None:
    service = {
        "status": {
            "loadBalancer": {
                "ingress": [{"ip": "198.51.100.2"}, {"hostname": "lb.example.org"}, {"ip": ""}]
            }
        }
    }
    assert ingress_of(service) == ("198.51.100.2", "lb.example.org")
    assert ingress_of({"status": {}}) == ()
