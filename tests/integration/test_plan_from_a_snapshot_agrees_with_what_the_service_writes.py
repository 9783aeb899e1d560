"""`ics-discovery snapshot` then `plan`, run as commands, agree with what the service writes.

The service and `plan` share one decision function; this checks the whole
path on the real provider chain and a real API server: the snapshot the
command reads, the file round trip, and the peers and port the service put in
the ConfigMap and on the LoadBalancer.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]


def cli(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "discovery.cli", *argv],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_snapshot_then_plan_matches_the_services_configmap(
    clusters: list[Cluster], tmp_path: Path
) -> None:
    alice, bob, charlie = clusters
    chain = alice.chain
    chain_id = f"plan-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        async with running_service(alice, resync_interval=3600.0):
            await asyncio.to_thread(alice.add_consumer_pod, chain_id, "10.248.0.2")
            found = await eventually("the LoadBalancer port", partial(alice.lb_port, chain_id))
            assert found is not None
            port: int = found
            want = ",".join(sorted([bob.entry(port), charlie.entry(port)]))
            await eventually("the peers ConfigMap", partial(alice.has_peers, chain_id, want))
            written = await asyncio.to_thread(alice.persistent_peers, chain_id)

        snapshot = await asyncio.to_thread(cli, "snapshot", "--grpc", alice.node.grpc_address)
        path = tmp_path / "chain.json"
        path.write_text(snapshot)
        doc = json.loads(snapshot)
        [ours] = [c for c in doc["consumers"] if c["consumer_id"] == consumer_id]
        assert ours["phase"] == "CONSUMER_PHASE_LAUNCHED"
        assert ours["spawn_time"]
        assert {v["provider_address"] for v in ours["validators"]} == {
            c.validator.consensus for c in clusters
        }

        out = await asyncio.to_thread(
            cli,
            "plan",
            "--snapshot",
            str(path),
            "--operator",
            alice.validator.operator,
            "--endpoint-profile",
            "testnet",
            "--json",
        )
        [planned] = [c for c in json.loads(out)["chains"] if c["consumer_id"] == consumer_id]
        # --grpc reads the live chain the same way.
        live = await asyncio.to_thread(
            cli,
            "plan",
            "--grpc",
            alice.node.grpc_address,
            "--operator",
            alice.validator.operator,
            "--endpoint-profile",
            "testnet",
            "--json",
        )
        [planned_live] = [c for c in json.loads(live)["chains"] if c["consumer_id"] == consumer_id]
        assert planned_live == planned
        assert planned["exposed"] is True
        assert planned["ports"]["p2p"] == port
        assert ",".join(planned["peers"]) == written
        assert planned["left_out"] == []
        # With the default (mainnet) profile the test's documentation addresses are refused.
        out = await asyncio.to_thread(
            cli, "plan", "--snapshot", str(path), "--operator", alice.validator.operator, "--json"
        )
        [strict] = [c for c in json.loads(out)["chains"] if c["consumer_id"] == consumer_id]
        assert strict["peers"] == []
        assert {x["reason"] for x in strict["left_out"]} == {"invalid-endpoint"}
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
