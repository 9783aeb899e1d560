"""A stand-in kubelet for one consumer workload of one cluster (no real kubelet runs here).

The workload is a real StatefulSet (one replica) whose pod template carries the
consumer convention for a chain; kube-controller-manager's StatefulSet
controller creates its Pod and, when the template changes (the service's
`restart` mode puts a peers hash on it), replaces that Pod. This stand-in does
what the kubelet and an init container would:

- it runs the consumer node process in the pod's network namespace, with
  `persistent_peers` rendered from the chain's peers ConfigMap in the cluster
  (the only source of peers), and starts it only once that ConfigMap exists;
- when the pod template's peers hash differs from the one the process started
  with, it restarts the process, rendering the peers again;
- it writes the Pod's status from the real process: the pod namespace's
  address as its IP, Ready when the node's RPC answers.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from discovery.peers_configmap import PEERS_HASH_ANNOTATION, peers_configmap_name
from lbmanager.consumer_pods import pod_annotations_for_key, pod_labels_for_key

from . import netprobe
from .consumer import RPC_PORT, ConsumerChain
from .lb import model, set_pod_status
from .netlab import Network, Pod

log = logging.getLogger(__name__)


def consumer_statefulset(name: str, chain_id: str) -> Any:
    """A one-replica StatefulSet running `chain_id`'s consumer node (the convention's labels)."""
    labels = {"app": name, **pod_labels_for_key(chain_id)}
    body = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": pod_annotations_for_key(chain_id)},
                "spec": {
                    "containers": [
                        {
                            "name": "node",
                            "image": "registry.invalid/interchain-security-cd:v7.0.1",
                            "ports": [{"name": "p2p", "containerPort": 26656}],
                        }
                    ]
                },
            },
        },
    }
    return model(client.V1StatefulSet, body)


# How long a restart waits for a just-started node to answer its RPC.
STARTUP_GRACE: Final = 30.0


@dataclass
class StandInKubelet:
    api: client.ApiClient
    namespace: str
    workload: str
    chain_id: str
    cluster: str
    consumer: ConsumerChain
    net: Network
    pod: Pod
    interval: float = 0.2
    # "restart": start once the peers ConfigMap exists and restart on a new peers hash
    # (an init container renders the peers); "dial": start at once with no peers and
    # never restart (the service tells the node its peers over RPC).
    mode: str = "restart"
    restarts: int = 0
    started_peers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _running_hash: str | None = None
    _started_at: float = 0.0
    _prober: netprobe.Prober | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pod_name(self) -> str:
        return f"{self.workload}-0"

    def _template_hash(self) -> str:
        sts = client.AppsV1Api(self.api).read_namespaced_stateful_set(self.workload, self.namespace)
        meta = sts.spec.template.metadata if sts.spec and sts.spec.template else None
        return str(((meta.annotations if meta else None) or {}).get(PEERS_HASH_ANNOTATION, ""))

    def _peers(self) -> str | None:
        try:
            cm = client.CoreV1Api(self.api).read_namespaced_config_map(
                peers_configmap_name(self.chain_id), self.namespace
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return str((cm.data or {}).get("persistent_peers", ""))

    def _rpc_answers(self) -> bool:
        if self._prober is None:
            self._prober = self.net.prober(self.net.node_netns(self.cluster))
        r = self._prober.get(str(self.pod.address), RPC_PORT, "/status", 2.0)
        return bool(r.get("ok")) and r.get("status") == 200

    def sync(self) -> None:
        with self._lock:
            self._sync()

    def recreate_pod(self, address: str) -> None:
        """The pod is replaced and comes back with `address` (same node key and data)."""
        with self._lock:
            self.consumer.stop_node(self.cluster)
            client.CoreV1Api(self.api).delete_namespaced_pod(self.pod_name, self.namespace)
            self.pod.readdress(ipaddress.IPv4Address(address))
            self.consumer.set_address(self.cluster, address)
            peers = self._peers() or ""
            self.consumer.set_peers(self.cluster, peers)
            self.consumer.start(self.net, self.cluster)
            self.restarts += 1
            self.started_peers.append(peers)

    def _sync(self) -> None:
        node = self.consumer.nodes[self.cluster]
        running = node.process is not None and node.process.exit_reason() is None
        if self.mode == "dial":
            if not running:
                self.consumer.start(self.net, self.cluster)
                self.started_peers.append("")
            self._write_status()
            return
        template_hash = self._template_hash()
        if running and template_hash != self._running_hash and self._still_starting():
            # Stopped while it creates its database, the node leaves it corrupt and then
            # panics on every start: let a first start finish before rolling it.
            self._write_status()
            return
        if not running or template_hash != self._running_hash:
            peers = self._peers()
            if peers is not None:
                if node.process is not None:
                    self.consumer.stop_node(self.cluster)
                    self.restarts += 1
                self.consumer.set_peers(self.cluster, peers)
                self.consumer.start(self.net, self.cluster)
                self._started_at = time.monotonic()
                self._running_hash = template_hash
                self.started_peers.append(peers)
                log.info("%s: consumer node (re)started with peers %s", self.cluster, peers)
        self._write_status()

    def _still_starting(self) -> bool:
        """Started under STARTUP_GRACE seconds ago and its RPC does not answer yet."""
        if time.monotonic() - self._started_at >= STARTUP_GRACE:
            return False
        return not self._rpc_answers()

    def _write_status(self) -> None:
        core = client.CoreV1Api(self.api)
        try:
            pod = core.read_namespaced_pod(self.pod_name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return  # the StatefulSet controller has not (re)created it yet
            raise
        node = self.consumer.nodes[self.cluster]
        ready = node.process is not None and self._rpc_answers()
        status = pod.status
        ips = [p.ip for p in (status.pod_ips or [])] if status else []
        conditions = {c.type: c.status for c in (status.conditions or [])} if status else {}
        if ips == [str(self.pod.address)] and conditions.get("Ready") == str(ready):
            return
        set_pod_status(self.api, self.namespace, self.pod_name, ips=[str(self.pod.address)],
                       ready=ready)  # fmt: skip

    def start(self) -> StandInKubelet:
        self._thread = threading.Thread(target=self._loop, name=f"kubelet-{self.cluster}",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except Exception as e:  # keep going, as a kubelet does; the test reads `errors`
                self.errors.append(repr(e))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.consumer.stop_node(self.cluster)


__all__ = ["StandInKubelet", "consumer_statefulset"]
