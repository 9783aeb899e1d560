"""Publishing with a signer cosmpy cannot sign for: one clear error, a metric, /readyz, no storm.

The signing key belongs to a real vesting account on the provider chain
(created with `tx vesting create-vesting-account`). cosmpy refuses any account
that is not a BaseAccount with a bare `RuntimeError`, which used to escape
publishing, so every wake-up of the service tried again at once. Now it is a
permanent publish error: counted in `ics_discovery_faults_total{part=
"publishing",kind="permanent"}`, shown by `ics_discovery_part_failed_permanently`
and `/readyz` (503, naming the part and why), logged once, and not tried
again for ten minutes however often the service wakes up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from kubernetes import client

from discovery.metrics import sample_value
from tests.conftest import ControlPlaneFactory, create_namespace, namespace_name
from tests.support.chain import ProviderChain, write_key_file
from tests.support.fault_scenarios import delete_namespace, launched_chain, move, validator_cast
from tests.support.polling import eventually
from tests.support.service_fixtures import SERVICE_NAME, Cluster, RunningService, running_service

pytestmark = [pytest.mark.kube, pytest.mark.chain]


@pytest.fixture
def cast(
    request: pytest.FixtureRequest,
    control_planes: ControlPlaneFactory,
    provider_chain3: ProviderChain,
) -> Iterator[list[Cluster]]:
    plane = control_planes("alice")
    name = namespace_name(request.node.nodeid)
    create_namespace(plane.admin_client(), name)
    yield validator_cast(plane, name, provider_chain3)
    delete_namespace(plane, name)


def set_ingress(cluster: Cluster, ip: str) -> None:
    client.CoreV1Api(cluster.plane.admin_client()).patch_namespaced_service_status(
        SERVICE_NAME,
        cluster.namespace,
        {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}},
        _content_type="application/merge-patch+json",
    )


def readyz(service: RunningService) -> tuple[int, str]:
    url = f"http://127.0.0.1:{service.service.http.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


def metric(service: RunningService, name: str, labels: dict[str, str]) -> float | None:
    return sample_value(service.service.metrics.render()[0].decode(), name, labels)


async def test_a_vesting_signer_is_a_permanent_reported_fault_not_retried_on_every_wake_up(
    cast: list[Cluster], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = cast[0]
    chain = alice.chain
    signer_key = PrivateKey()
    signer = str(LocalWallet(signer_key, prefix="cosmos").address())
    end = str(int(time.time()) + 30 * 24 * 3600)
    await asyncio.to_thread(
        chain.tx, 0, "vesting", "create-vesting-account", signer, "1000000stake", end
    )
    key_file = write_key_file(tmp_path, "vesting.key", signer_key.private_key_hex)
    caplog.set_level(logging.INFO, logger="discovery.service")
    async with (
        launched_chain(cast, workload=False) as chain_id,
        running_service(alice, publish_endpoint=True, publish_key_file=key_file) as a,
    ):
        await eventually(
            "alice's LoadBalancer Service",
            lambda: (v := a.service.store.current.chain(chain_id)) and v.exposed,
            in_thread=False,
        )
        assert (await asyncio.to_thread(readyz, a))[0] == 200
        await asyncio.to_thread(set_ingress, alice, "198.51.100.125")
        failed = {"outcome": "failed"}
        publishing = {"part": "publishing", "kind": "permanent"}
        await eventually(
            "the failed publication",
            lambda: metric(a, "ics_discovery_endpoint_publications_total", failed) == 1,
            in_thread=False,
        )
        status, text = await asyncio.to_thread(readyz, a)
        assert status == 503
        assert "publishing failed permanently" in text
        assert "not a base account" in text
        assert metric(a, "ics_discovery_faults_total", publishing) == 1
        await eventually(
            "the standing fault's gauge",
            lambda: metric(a, "ics_discovery_part_failed_permanently", {"part": "publishing"}) == 1,
            in_thread=False,
        )
        # Many wake-ups (chain changes, a new address): no new attempt.
        reconciles = a.service.stats.reconciles
        for i in range(3):
            await move(cast, "bob", f"198.51.100.{60 + i}")
        await asyncio.to_thread(set_ingress, alice, "198.51.100.126")
        await eventually(
            "wake-ups", lambda: a.service.stats.reconciles >= reconciles + 3, in_thread=False
        )
        await asyncio.sleep(2)
        assert metric(a, "ics_discovery_endpoint_publications_total", failed) == 1
        assert metric(a, "ics_discovery_faults_total", publishing) == 1
        errors = [r for r in caplog.records if r.getMessage().startswith("part failed")]
        assert len(errors) == 1
        assert getattr(errors[0], "part", None) == "publishing"
        assert signer_key.private_key_hex not in caplog.text
        assert not a.task.done()
