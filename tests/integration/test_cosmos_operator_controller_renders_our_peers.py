"""The real cosmos-operator controller renders the peers we write into its nodes' config.toml.

cosmos-operator v0.25.1, built from its Go module by `make tools`, runs
out-of-cluster against the test control plane. ics-discovery's applier writes
the chain's peers into a CosmosFullNode that already lists a sentry; the
operator renders `persistent_peers` into the instance's ConfigMap
(`config-overlay.toml`), the sentry first, and renders a later change too.
No pod runs (the control plane has no kubelet): the ConfigMap is what the
operator mounts as the node's config.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from discovery.operator_notify import OperatorNotifier, ResourceOutcome
from lbmanager.kube import KubeRest
from tests.support.kube import ControlPlane
from tests.support.operators import cosmos_full_node, install_cosmos_operator_crd, install_crds
from tests.support.polling import any_error, wait_until
from tests.support.procs import Process, free_ports, tool

pytestmark = [pytest.mark.kube]

CHAIN = "consumer-rendered-1"
SENTRY = "ee" * 20 + "@sentry.validator.example:26656"
BOB = "bb" * 20 + "@203.0.113.12:30110"
CAROL = "cc" * 20 + "@[2001:db8::13]:30110"
DAVE = "dd" * 20 + "@203.0.113.14:30110"


@pytest.fixture
def operator(
    control_plane: ControlPlane, kube: client.ApiClient, tmp_path: Path
) -> Iterator[Process]:
    install_cosmos_operator_crd(kube)
    install_crds(
        kube,
        [
            yaml.safe_load(tool(f"cosmos.strange.love_{name}.yaml").read_text())
            for name in ("scheduledvolumesnapshots", "statefuljobs")
        ],
    )
    metrics, probes = free_ports(2)
    proc = Process(
        "cosmos-operator",
        [
            str(tool("cosmos-operator")),
            "--metrics-bind-address",
            f"127.0.0.1:{metrics}",
            "--health-probe-bind-address",
            f"127.0.0.1:{probes}",
        ],
        tmp_path / "cosmos-operator.log",
        env={"KUBECONFIG": str(control_plane.kubeconfig)},
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def rendered_peers(proc: Process, kube: client.ApiClient, namespace: str) -> str | None:
    if (reason := proc.exit_reason()) is not None:
        raise AssertionError(reason)
    try:
        cm = client.CoreV1Api(kube).read_namespaced_config_map("node-0", namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    config: dict[str, Any] = tomllib.loads(cm.data["config-overlay.toml"])
    return str(config["p2p"]["persistent_peers"])


def test_the_operator_renders_our_peers_after_the_sentry(
    operator: Process, kube: client.ApiClient, namespace: str
) -> None:
    client.CustomObjectsApi(kube).create_namespaced_custom_object(
        "cosmos.strange.love",
        "v1",
        namespace,
        "cosmosfullnodes",
        cosmos_full_node("node", CHAIN, peers=SENTRY),
    )
    wait_until(
        "the operator's ConfigMap with the sentry",
        lambda: rendered_peers(operator, kube, namespace) == SENTRY,
        timeout=120,
        not_yet=any_error,
    )
    notifier = OperatorNotifier(KubeRest(kube))

    report = asyncio.run(notifier.notify("cosmos-operator", CHAIN, [BOB, CAROL], [namespace]))
    assert [r.outcome for r in report.results] == [ResourceOutcome.PATCHED], report
    want = f"{SENTRY},{BOB},{CAROL}"
    wait_until(
        "our peers in config.toml",
        lambda: rendered_peers(operator, kube, namespace) == want,
        timeout=120,
        not_yet=any_error,
    )

    # The peers change: the operator renders the new list, the sentry still first.
    asyncio.run(notifier.notify("cosmos-operator", CHAIN, [DAVE], [namespace]))
    wait_until(
        "the changed peers in config.toml",
        lambda: rendered_peers(operator, kube, namespace) == f"{SENTRY},{DAVE}",
        timeout=120,
        not_yet=any_error,
    )
