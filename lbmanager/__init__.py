"""Talks to Kubernetes: LoadBalancer Service ports, EndpointSlices, consumer pods, MetalLB pools.

The package exports only its pure vocabulary (types, errors, the pod convention),
so importing it loads no Kubernetes client. The I/O lives in its modules:
`lbmanager.kube` (the one Kubernetes layer; its paths in `lbmanager.paths`), `lbmanager.reconciler`,
`lbmanager.pods` (the pod watch), `lbmanager.leader`.
"""

from .consumer_pods import (
    POD_KEY_ANNOTATION,
    POD_KEY_HASH_LABEL,
    keyed_pod_selector,
    pod_annotations_for_key,
    pod_labels_for_key,
)
from .errors import ChainRefused, LbManagerError
from .types import (
    ChainExposure,
    ChainKey,
    ChainOutcome,
    DesiredState,
    ExposedPort,
    LbSettings,
    PodSelector,
    ReconcileReport,
    ServiceOutcome,
)

__all__ = [
    "POD_KEY_ANNOTATION",
    "POD_KEY_HASH_LABEL",
    "ChainExposure",
    "ChainKey",
    "ChainOutcome",
    "ChainRefused",
    "DesiredState",
    "ExposedPort",
    "LbManagerError",
    "LbSettings",
    "PodSelector",
    "ReconcileReport",
    "ServiceOutcome",
    "keyed_pod_selector",
    "pod_annotations_for_key",
    "pod_labels_for_key",
]
