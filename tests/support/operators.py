"""Operator CRDs in the real API server, and node resources of cosmos-operator and cosmopilot.

cosmos-operator's CRDs are the released ones and its controller is built from
its source: `make tools` (`scripts/tools.sh cosmos-operator`) takes both from
the operator's Go module at the pinned version. cosmopilot's module is not
served by the Go module proxy this project may use, so its test CRD is a
transcription of the pinned release's schema for the fields ics-discovery reads and writes (see
`tests/support/crds/README.md`); everything else is kept as the API server
gets it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, cast

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.polling import any_error, wait_until
from tests.support.procs import tool

COSMOS_OPERATOR_CRD: Final = "cosmos.strange.love_cosmosfullnodes.yaml"
COSMOPILOT_CRDS: Final = Path(__file__).parent / "crds" / "cosmopilot-v3.0.0-subset.yaml"


def install_crds(api: client.ApiClient, documents: list[dict[str, Any]]) -> None:
    """Create the CRDs unless they exist (control planes outlive a test); wait until served."""
    ext = client.ApiextensionsV1Api(api)
    for doc in documents:
        name = doc["metadata"]["name"]
        try:
            ext.create_custom_resource_definition(cast(Any, doc))
        except ApiException as e:
            if e.status != 409:
                raise

        def established(name: str = name) -> bool:
            crd = ext.read_custom_resource_definition(name)
            return any(
                c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
            )

        wait_until(f"CRD {name} established", established, timeout=60, not_yet=any_error)


def install_cosmos_operator_crd(api: client.ApiClient) -> None:
    install_crds(api, [yaml.safe_load(tool(COSMOS_OPERATOR_CRD).read_text())])


def install_cosmopilot_crds(api: client.ApiClient) -> None:
    install_crds(api, list(yaml.safe_load_all(COSMOPILOT_CRDS.read_text())))


def cosmos_full_node(name: str, chain_id: str, peers: str | None = None) -> dict[str, Any]:
    """A CosmosFullNode as a validator writes one (every field the CRD requires)."""
    config: dict[str, Any] = {
        "maxInboundPeers": 40,
        "overrides": '[p2p]\nflush_throttle_timeout = "10ms"\n',
    }
    if peers is not None:
        config["peers"] = peers
    return {
        "apiVersion": "cosmos.strange.love/v1",
        "kind": "CosmosFullNode",
        "metadata": {"name": name, "labels": {"team": "validators"}},
        "spec": {
            "replicas": 1,
            "chain": {
                "chainID": chain_id,
                "network": "mainnet",
                "binary": "consumerd",
                "app": {"minGasPrice": "0.005stake"},
                "config": config,
            },
            "podTemplate": {"image": "registry.invalid/consumerd:v1.0.0"},
            "volumeClaimTemplate": {
                "storageClassName": "standard",
                "resources": {"requests": {"storage": "10Gi"}},
            },
        },
    }


def get_resource(
    api: client.ApiClient, group: str, plural: str, namespace: str, name: str
) -> dict[str, Any]:
    """One custom object (v1) as the API server returns it."""
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        group, "v1", namespace, plural, name
    )
    assert isinstance(obj, dict)
    return obj
