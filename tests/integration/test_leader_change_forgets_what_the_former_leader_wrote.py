"""After leadership goes A -> B -> A, A makes the restart B's term made necessary.

Against the real apiserver and provider chain, with a real Lease: alice's
service leads, writes the peers ConfigMap and rolls the consumer Deployment to
the current peers. Another holder (this test, standing in for replica B) then
takes the Lease; alice stops leading, her writes are refused from then on (a
write attempted through her own client after her lease expired never reaches
the apiserver), and a resync writes nothing. While B leads, B rolls the
Deployment to other peers (its own view). When B gives the Lease back, alice
leads again with nothing remembered from her first term, sees the Deployment
is not on her peers, and rolls it back: the restart is not skipped.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from functools import partial

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from discovery.apply.effects import Wake
from lbmanager.leader import NotLeader, micro_time
from tests.support.polling import eventually
from tests.support.service_fixtures import Cluster, publish_endpoints, running_service
from tests.support.workloads import create_deployment, rollout, set_template_hash

pytestmark = [pytest.mark.kube, pytest.mark.chain]

LEASE = "ics-discovery-leader"


def set_lease_holder(cluster: Cluster, holder: str, seconds: int) -> None:
    """Write the Lease as another candidate would (re-read on conflicts)."""
    api = client.CoordinationV1Api(cluster.plane.admin_client())
    for _ in range(20):
        lease = api.read_namespaced_lease(LEASE, cluster.namespace)
        now = micro_time(datetime.now(UTC))
        lease.spec.holder_identity = holder
        lease.spec.lease_duration_seconds = seconds
        lease.spec.renew_time = now
        lease.spec.acquire_time = now
        try:
            api.replace_namespaced_lease(LEASE, cluster.namespace, lease)
            return
        except ApiException as e:
            if e.status != 409:
                raise
    raise AssertionError("the Lease kept conflicting")


async def test_a_b_a_leadership_makes_the_needed_restart_and_a_former_leader_writes_nothing(
    clusters: list[Cluster],
) -> None:
    alice = clusters[0]
    chain = alice.chain
    chain_id = f"aba-{secrets.token_hex(3)}-1"
    await publish_endpoints(clusters)
    await asyncio.to_thread(alice.add_consumer_pod, chain_id, "10.246.0.9")
    await asyncio.to_thread(create_deployment, alice, chain_id)
    consumer_id = await asyncio.to_thread(chain.launch_consumer, chain_id, [0, 1, 2])
    try:
        async with running_service(
            alice, identity="alice-a", leader_election=True, notify_default="restart"
        ) as a:
            svc = a.service
            view = await eventually(
                "alice leading and exposing the chain",
                lambda: (v := svc.store.current.chain(chain_id)) and v.exposed and v,
                in_thread=False,
            )
            assert view.peers is not None
            ours = view.peers.peers_hash()
            await eventually("alice's restart", lambda: rollout(alice)[0] == ours)

            # B takes the Lease (for an hour); alice notices and stops writing.
            await asyncio.to_thread(set_lease_holder, alice, "replica-b", 3600)
            await eventually("alice no longer leading", lambda: not svc.leading, in_thread=False)
            before = a.writes()

            # A write attempted now, through alice's own client, is refused before it is sent.
            probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}}
            with pytest.raises(NotLeader):
                await asyncio.to_thread(
                    svc.rest.create, f"/api/v1/namespaces/{alice.namespace}/configmaps", probe
                )
            assert await asyncio.to_thread(
                lambda: (
                    not any(
                        c.metadata.name == "probe"
                        for c in alice.core().list_namespaced_config_map(alice.namespace).items
                    )
                )
            )

            # B, leading, rolls the Deployment to its own peers; a resync of alice writes nothing.
            await asyncio.to_thread(set_template_hash, alice, "b" * 64)
            done = svc.stats.full_reconciles
            svc.wake(Wake.TIMER)
            await eventually(
                "a follower resync", lambda: svc.stats.full_reconciles > done, in_thread=False
            )
            assert a.writes() == before
            assert (await asyncio.to_thread(rollout, alice))[0] == "b" * 64

            # B gives the Lease back; alice leads again and restores her peers.
            await asyncio.to_thread(set_lease_holder, alice, "", 1)
            await eventually("alice leading again", lambda: svc.leading, in_thread=False)
            await eventually("alice's restart after A->B->A", lambda: rollout(alice)[0] == ours)
            assert await asyncio.to_thread(partial(alice.configmap, chain_id)) is not None
    finally:
        await asyncio.to_thread(chain.remove_consumer, 0, consumer_id)
