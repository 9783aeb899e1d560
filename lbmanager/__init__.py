"""Talks to Kubernetes: LoadBalancer Service ports, EndpointSlices, consumer pods, MetalLB pools."""

from .errors import ChainRefused, LbManagerError
from .kube import api_client_from_kubeconfig
from .pods import (
    POD_KEY_ANNOTATION,
    POD_KEY_HASH_LABEL,
    keyed_pod_selector,
    pod_annotations_for_key,
    pod_labels_for_key,
)
from .reconciler import LoadBalancerController, LoadBalancerReconciler
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
    "LoadBalancerController",
    "LoadBalancerReconciler",
    "PodSelector",
    "ReconcileReport",
    "ServiceOutcome",
    "api_client_from_kubeconfig",
    "keyed_pod_selector",
    "pod_annotations_for_key",
    "pod_labels_for_key",
]
