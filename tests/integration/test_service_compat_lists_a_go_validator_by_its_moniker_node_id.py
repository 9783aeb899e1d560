"""A mixed fleet on a real provider chain: charlie publishes the way the Go implementation does.

charlie's description carries `p2p=HOST` and no `node=`, as Go validators
publish it. alice and bob run in compatibility mode (`compat ics-operator`):
both list charlie with the node ID the Go implementation gives charlie's
consumer node (derived from its on-chain moniker and the chain ID; expected
values from the Go translation in tests/support/go_reference.py), on the Go
port of the chain; they log that insecure derivation once per validator and
count it. A chain whose Go ports hit Go's reserved list is not exposed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from discovery.ports import chain_offset
from tests.support.go_reference import go_calculate_ports, go_extract_p2p_endpoint, go_node_id
from tests.support.lb import create_consumer_pod
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]

COMPAT: dict[str, Any] = {"port_scheme": "ics-operator", "compat": "ics-operator"}
INSECURE_LOG = "INSECURE: peer node ID derived from the validator's public moniker"
COUNTER = "ics_discovery_insecure_moniker_node_ids_total"


def chain_id_with(offset_ok: Callable[[int], bool], prefix: str) -> str:
    """A fresh chain ID whose offset satisfies `offset_ok` (found by search)."""
    token = secrets.token_hex(3)
    for i in range(100_000):
        chain_id = f"{prefix}-{token}-{i}"
        if offset_ok(chain_offset(chain_id)):
            return chain_id
    raise AssertionError("no chain ID found")


async def test_compat_validators_list_a_go_validator_with_its_go_node_id(
    clusters: list[Cluster], caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    await publish_endpoints([alice, bob])
    go_details = f"Validator {charlie.name} - p2p={charlie.host}"
    assert go_extract_p2p_endpoint(go_details) == charlie.host
    await asyncio.to_thread(chain.edit_validator, charlie.index, details=go_details)

    caplog.set_level(logging.WARNING, logger="discovery.service")
    async with running_service(alice, **COMPAT) as a, running_service(bob, **COMPAT) as b:
        # Offsets already taken by the session's other chains would move ours.
        taken = {chain_offset(v.chain_id) for v in a.service.store.current.chains}
        chain_id = chain_id_with(lambda o: o != 26 and o not in taken, "go")
        refused_id = chain_id_with(lambda o: o == 26, "go")
        go_ports = go_calculate_ports(chain_id)
        assert go_ports is not None
        assert go_calculate_ports(refused_id) is None
        for c in (alice, bob):
            await asyncio.to_thread(c.add_consumer_pod, chain_id, f"10.244.{c.index}.9")
            await asyncio.to_thread(
                create_consumer_pod,
                c.plane.admin_client(),
                c.namespace,
                "refused-node",
                refused_id,
                ips=[f"10.244.{c.index}.10"],
            )

        consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
        refused_consumer = await asyncio.to_thread(chain.launch_consumer, refused_id, [0, 1, 2])
        try:
            view = await eventually(
                "alice exposing the chain",
                lambda: (v := a.service.store.current.chain(chain_id)) and v.exposed and v,
                in_thread=False,
            )
            assert view.ports is not None
            port = view.ports.ports["p2p"]
            # The port Go validators expose and dial for this chain.
            assert port == go_ports["p2p"]

            monikers = {v.operator_address: v.moniker for v in a.service.store.current.validators}
            charlie_moniker = monikers[charlie.validator.operator]
            assert charlie_moniker
            charlie_entry = f"{go_node_id(charlie_moniker, chain_id)}@{charlie.host}:{port}"
            expected = {
                "alice": ",".join(sorted([bob.entry(port), charlie_entry])),
                "bob": ",".join(sorted([alice.entry(port), charlie_entry])),
            }
            for c in (alice, bob):
                await eventually(
                    f"{c.name} listing charlie with its Go node ID",
                    partial(c.has_peers, chain_id, expected[c.name]),
                )
                assert await asyncio.to_thread(c.lb_port, chain_id) == port

            # The chain Go refuses (RPC port 27017) is exposed nowhere, and says why.
            await eventually(
                "alice refusing the chain Go refuses",
                lambda: (
                    (v := a.service.store.current.chain(refused_id)) is not None
                    and not v.exposed
                    and "27017" in v.problem
                ),
                in_thread=False,
            )
            for c in (alice, bob):
                assert await asyncio.to_thread(c.lb_port, refused_id) is None
                assert await asyncio.to_thread(c.configmap, refused_id) is None

            # Another round on both services (bob moves): charlie is still logged once each.
            await asyncio.to_thread(
                chain.edit_validator, bob.index, details=bob.details("203.0.113.98")
            )
            await eventually(
                "alice following bob",
                partial(
                    alice.has_peers,
                    chain_id,
                    ",".join(sorted([bob.entry(port, "203.0.113.98"), charlie_entry])),
                ),
            )
            for s in (a, b):
                assert s.service.metrics.registry.get_sample_value(COUNTER) == 1.0
            logged = [
                r
                for r in caplog.records
                if r.getMessage().startswith(INSECURE_LOG)
                and getattr(r, "operator", None) == charlie.validator.operator
            ]
            assert len(logged) == 2  # once in alice's service, once in bob's
        finally:
            await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
            await asyncio.to_thread(chain.remove_consumer, 0, refused_consumer)
