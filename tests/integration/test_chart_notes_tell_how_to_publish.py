"""NOTES.txt, as a real `helm install` prints it, tells the operator how to publish the endpoint.

It names the LoadBalancer Service and how to read its address, says whether the
service publishes by itself (and with which Secret) or gives the one command to
publish by hand, warns when required values are missing, and never shows a key.
"""

from __future__ import annotations

import base64

import pytest
from kubernetes import client

from tests.support.helm import values
from tests.support.helm_fixtures import ChartReleases

pytestmark = [pytest.mark.kube, pytest.mark.helm]

OPERATOR = "cosmosvaloper1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnxz90a2"
GRANTER = "cosmos1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnrk363e"


def _notes(output: str) -> str:
    assert "NOTES:" in output, output
    return output.split("NOTES:", 1)[1]


def test_notes_follow_the_values(
    chart_releases: ChartReleases, kube: client.ApiClient, namespace: str
) -> None:
    consumers = chart_releases.new_namespace("consumers")
    bare = _notes(
        chart_releases.install(
            values(**{"loadBalancer.keepOnUninstall": False, "consumers.namespace": consumers})
        )
    )
    assert "WARNING: the service refuses to start" in bare
    assert "provider.operatorAddress" in bare
    lb_ns = chart_releases.lb_namespace()
    assert f"kubectl -n {lb_ns} get service p2p-loadbalancer" in bare
    assert f"Services and EndpointSlices in namespace {lb_ns} only" in bare
    assert "ics-discovery endpoint publish --host ADDRESS" in bare
    assert "--node-id NODE_ID" in bare
    assert "--key-file" in bare

    configured = {
        "provider.operatorAddress": OPERATOR,
        "provider.rpcUrls": ["http://provider:26657"],
        "loadBalancer.keepOnUninstall": False,
        "loadBalancer.ip": "172.18.255.200",
        "consumers.namespace": consumers,
    }
    by_hand = _notes(chart_releases.install(values(**configured)))
    assert "WARNING" not in by_hand
    assert "Requested address: 172.18.255.200 (MetalLB annotations)" in by_hand
    assert f"written in: {consumers}" in by_hand

    restart = _notes(
        chart_releases.install(
            values(
                **configured,
                **{
                    "consumers.notify": "restart",
                    "consumers.restartWorkloads": [{"kind": "StatefulSet", "name": "node"}],
                },
            )
        )
    )
    assert f"Restart mode rolls only: StatefulSet {consumers}/node" in restart

    automatic = _notes(
        chart_releases.install(
            values(
                **configured,
                **{
                    "publishing.enabled": True,
                    "provider.grpcUrls": ["provider:9090"],
                    "publishing.key.generate": True,
                    "publishing.authzGranter": GRANTER,
                },
            )
        )
    )
    assert "The service publishes it itself" in automatic
    assert f"{namespace}/ics-ics-validator-publish-key" in automatic
    assert GRANTER in automatic
    assert "MsgEditValidator" in automatic
    assert "ics-discovery endpoint publish" not in automatic
    secret = client.CoreV1Api(kube).read_namespaced_secret(
        "ics-ics-validator-publish-key", namespace
    )
    key = base64.b64decode(secret.data["signing-key"]).decode()
    assert key not in automatic
    assert secret.data["signing-key"] not in automatic
