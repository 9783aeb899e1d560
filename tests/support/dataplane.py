"""Per-cluster data plane on the shared network: real kube-proxy, LoadBalancer addresses.

For each cluster (a `ControlPlane` on 127.0.0.1 of the root namespace) in a
`netlab.Network`:

- an API relay: socat listens on a Unix socket in the root namespace and
  forwards to the apiserver; a second socat inside the node namespace listens on
  the node's own 127.0.0.1:6443 and forwards to that socket. Nothing is bound to
  an address of the root namespace and no route is needed.
- a Node object (kube-proxy otherwise waits about half a minute for it) and a
  `kube-proxy` ServiceAccount bound to the built-in `system:node-proxier` role.
- the real kube-proxy (nftables mode) inside the node namespace. It changes
  nothing outside that namespace: `--conntrack-max-per-core=0` and zero
  conntrack timeouts leave the host's conntrack settings alone, its nftables
  rules live in the node namespace.
- address assignment and L2 announcement: the real MetalLB controller and
  speaker (`make tools`), out of cluster in the node namespace; the controller's
  admission webhooks are off, the speaker runs as its host-network Pod would (a
  Pod object bound to the node, memberlist off) and answers ARP for the
  addresses it announces. They read the real `IPAddressPool`/`L2Advertisement`
  objects (all MetalLB CRDs, from its own module, are installed).
- `LoadBalancerStandIn` is the fallback (`metallb=False`): it assigns from the
  same objects and annotations (simplified rules) and "announces" by adding the
  address to the node's interface on the bridge.

The address choice is pure (`assign_addresses`); the rest is a thin shell.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import netlab, netprobe
from .chain import ProviderNode
from .kube import ControlPlane, write_kubeconfig
from .lb import model, set_pod_status
from .netlab import Network, NodePlan
from .polling import any_error, wait_until
from .procs import Process, TestBedError, pids_alive, tool

log = logging.getLogger(__name__)

METALLB_GROUP: Final = "metallb.io"
METALLB_VERSION: Final = "v1beta1"
METALLB_NAMESPACE: Final = "metallb-system"
REQUEST_IPS_ANNOTATION: Final = "metallb.io/loadBalancerIPs"
POOL_ANNOTATION: Final = "metallb.io/address-pool"
NODE_API_PORT: Final = 6443
KUBE_PROXY_BINDING: Final = "ics-dataplane-kube-proxy"
IPv4 = ipaddress.IPv4Address


# ---- pure: MetalLB-style address assignment --------------------------------


@dataclass(frozen=True)
class Pool:
    """An `IPAddressPool`: its addresses in order, whether it auto-assigns, whether announced."""

    name: str
    addresses: tuple[IPv4, ...]
    auto_assign: bool = True
    announced: bool = False

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any], announced: bool) -> Pool:
        out: list[IPv4] = []
        for entry in spec.get("addresses") or []:
            out.extend(_expand(str(entry)))
        return cls(name, tuple(out), bool(spec.get("autoAssign", True)), announced)


def _expand(entry: str) -> list[IPv4]:
    """ "a.b.c.d-e.f.g.h" or a CIDR (IPv4 only; IPv6 entries are not this network's)."""
    try:
        if "-" in entry:
            lo, hi = (ipaddress.ip_address(p.strip()) for p in entry.split("-", 1))
            if not isinstance(lo, IPv4) or not isinstance(hi, IPv4):
                return []
            return [IPv4(i) for i in range(int(lo), int(hi) + 1)]
        net = ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return []
    if not isinstance(net, ipaddress.IPv4Network):
        return []
    return list(net) if net.prefixlen >= 31 else list(net.hosts())


@dataclass(frozen=True)
class LbService:
    """What the assignment needs of a LoadBalancer Service."""

    key: str  # namespace/name
    current: IPv4 | None = None
    requested: tuple[IPv4, ...] = ()
    pool: str | None = None


def assign_addresses(
    services: Sequence[LbService], pools: Sequence[Pool]
) -> dict[str, tuple[IPv4, str] | None]:
    """Each Service's address and pool, or None when it gets none (MetalLB's rules, simplified).

    A Service keeps a current address that is still in an allowed pool and still
    what it asks for; otherwise it gets its requested address (annotation
    `metallb.io/loadBalancerIPs`) if a pool holds it and nobody else has it;
    otherwise the first free address of the first auto-assign pool (name order,
    or the pool the `metallb.io/address-pool` annotation names). Services are
    served in key order, current holders first: the result depends only on input.
    """
    by_name = {p.name: p for p in sorted(pools, key=lambda p: p.name)}
    owner: dict[IPv4, str] = {}
    for p in by_name.values():
        for a in p.addresses:
            owner.setdefault(a, p.name)
    taken: set[IPv4] = set()
    out: dict[str, tuple[IPv4, str] | None] = {}

    def allowed(s: LbService, addr: IPv4) -> str | None:
        name = owner.get(addr)
        if name is None or (s.pool is not None and name != s.pool):
            return None
        return name

    ordered = sorted(services, key=lambda s: (s.current is None, s.key))
    for s in ordered:
        choice: tuple[IPv4, str] | None = None
        if s.current is not None and s.current not in taken:
            pool = allowed(s, s.current)
            if pool and (not s.requested or s.current in s.requested):
                choice = (s.current, pool)
        if choice is None and s.requested:
            for addr in s.requested:
                pool = allowed(s, addr)
                if pool and addr not in taken:
                    choice = (addr, pool)
                    break
        if choice is None and not s.requested:
            candidates = [by_name[s.pool]] if s.pool in by_name else list(by_name.values())
            for p in candidates:
                if not p.auto_assign and s.pool != p.name:
                    continue
                free = next((a for a in p.addresses if a not in taken), None)
                if free is not None:
                    choice = (free, p.name)
                    break
        if choice is not None:
            taken.add(choice[0])
        out[s.key] = choice
    return out


def current_assignment(
    services: Sequence[LbService], pools: Sequence[Pool]
) -> dict[str, tuple[IPv4, str] | None]:
    """What someone else (MetalLB's controller) assigned: each Service's address and its pool."""
    owner: dict[IPv4, str] = {}
    for p in sorted(pools, key=lambda p: p.name):
        for a in p.addresses:
            owner.setdefault(a, p.name)
    return {s.key: (s.current, owner[s.current]) if s.current in owner else None for s in services}


def announced_addresses(
    assignment: Mapping[str, tuple[IPv4, str] | None], pools: Sequence[Pool]
) -> set[IPv4]:
    """Assigned addresses whose pool an `L2Advertisement` covers."""
    announced = {p.name for p in pools if p.announced}
    return {a for v in assignment.values() if v is not None for a, pool in [v] if pool in announced}


# ---- shell -----------------------------------------------------------------


def install_metallb_crds(api: client.ApiClient, timeout: float = 60) -> list[str]:
    """Create every MetalLB CRD (from `make tools`) and its namespace; wait until established."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(tool("metallb-crds").glob("metallb.io_*.yaml")):
        doc = yaml.safe_load(path.read_text())
        names.append(doc["metadata"]["name"])
        try:
            ext.create_custom_resource_definition(doc)
        except ApiException as e:
            if e.status != 409:
                raise

    def established() -> bool:
        for n in names:
            crd = ext.read_custom_resource_definition(n)
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") != "True":
                return False
        return True

    wait_until(
        "MetalLB CRDs established", established, timeout=timeout, interval=0.2, not_yet=any_error
    )
    core = client.CoreV1Api(api)
    with contextlib.suppress(ApiException):
        core.create_namespace(model(client.V1Namespace, {"metadata": {"name": METALLB_NAMESPACE}}))
    return names


def apply_pool(
    api: client.ApiClient,
    name: str,
    addresses: Sequence[str],
    *,
    announce: bool = True,
    auto_assign: bool = True,
) -> None:
    """An IPAddressPool (and an L2Advertisement naming it) in metallb-system."""
    co = client.CustomObjectsApi(api)
    delete_pool(api, name)
    pool = {
        "apiVersion": f"{METALLB_GROUP}/{METALLB_VERSION}",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": METALLB_NAMESPACE},
        "spec": {"addresses": list(addresses), "autoAssign": auto_assign},
    }
    co.create_namespaced_custom_object(
        METALLB_GROUP, METALLB_VERSION, METALLB_NAMESPACE, "ipaddresspools", pool
    )
    if announce:
        adv = {
            "apiVersion": f"{METALLB_GROUP}/{METALLB_VERSION}",
            "kind": "L2Advertisement",
            "metadata": {"name": name, "namespace": METALLB_NAMESPACE},
            "spec": {"ipAddressPools": [name]},
        }
        co.create_namespaced_custom_object(
            METALLB_GROUP, METALLB_VERSION, METALLB_NAMESPACE, "l2advertisements", adv
        )


def delete_pool(api: client.ApiClient, name: str) -> None:
    """Remove a pool and its L2Advertisement (absent is fine)."""
    co = client.CustomObjectsApi(api)
    for plural in ("l2advertisements", "ipaddresspools"):
        try:
            co.delete_namespaced_custom_object(
                METALLB_GROUP, METALLB_VERSION, METALLB_NAMESPACE, plural, name
            )
        except ApiException as e:
            if e.status != 404:
                raise


def read_pools(api: client.ApiClient) -> list[Pool]:
    co = client.CustomObjectsApi(api)
    pools = co.list_namespaced_custom_object(
        METALLB_GROUP, METALLB_VERSION, METALLB_NAMESPACE, "ipaddresspools"
    )["items"]
    advs = co.list_namespaced_custom_object(
        METALLB_GROUP, METALLB_VERSION, METALLB_NAMESPACE, "l2advertisements"
    )["items"]
    covered: set[str] = set()
    every = False
    for adv in advs:
        spec = adv.get("spec") or {}
        names = spec.get("ipAddressPools") or []
        if not names and not spec.get("ipAddressPoolSelectors"):
            every = True  # an L2Advertisement without selection announces every pool
        covered.update(names)
    return [
        Pool.from_spec(
            p["metadata"]["name"],
            p.get("spec") or {},
            every or p["metadata"]["name"] in covered,
        )
        for p in pools
    ]


def _service_view(svc: Any) -> LbService:
    ann = svc.metadata.annotations or {}
    requested: list[IPv4] = []
    for text in str(ann.get(REQUEST_IPS_ANNOTATION, "")).split(","):
        with contextlib.suppress(ValueError):
            a = ipaddress.ip_address(text.strip())
            if isinstance(a, IPv4):
                requested.append(a)
    current: IPv4 | None = None
    ingress = (svc.status.load_balancer.ingress if svc.status.load_balancer else None) or []
    for i in ingress:
        with contextlib.suppress(ValueError, TypeError):
            a = ipaddress.ip_address(i.ip)
            if isinstance(a, IPv4):
                current = a
                break
    return LbService(
        f"{svc.metadata.namespace}/{svc.metadata.name}",
        current,
        tuple(requested),
        ann.get(POOL_ANNOTATION),
    )


@dataclass
class LoadBalancerStandIn:
    """MetalLB's controller (assignment) and speaker (L2 announcement) for one node."""

    api: client.ApiClient
    net: Network
    cluster: str
    interval: float = 0.1
    # Only Services in these namespaces (None: all, as MetalLB); lets tests share a cluster.
    namespaces: frozenset[str] | None = None
    # False: the real MetalLB controller assigns; this only announces what it assigned.
    assign: bool = True
    announced: set[IPv4] = field(default_factory=set)
    assigned: dict[str, tuple[IPv4, str] | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def reconcile(self) -> None:
        core = client.CoreV1Api(self.api)
        services = [
            s
            for s in core.list_service_for_all_namespaces().items
            if s.spec.type == "LoadBalancer"
            and not s.spec.load_balancer_class
            and (self.namespaces is None or s.metadata.namespace in self.namespaces)
        ]
        pools = read_pools(self.api)
        views = {f"{s.metadata.namespace}/{s.metadata.name}": s for s in services}
        if self.assign:
            assignment = assign_addresses([_service_view(s) for s in services], pools)
        else:
            assignment = current_assignment([_service_view(s) for s in services], pools)
        want = announced_addresses(assignment, pools)
        # Announce before publishing the address, withdraw after.
        for addr in sorted(want - self.announced):
            self.net.add_address(self.cluster, addr)
            log.info("announce %s on %s", addr, self.cluster)
        for key, choice in assignment.items() if self.assign else ():
            svc = views[key]
            ingress = [{"ip": str(choice[0]), "ipMode": "VIP"}] if choice else []
            have = _service_view(svc).current
            if (choice[0] if choice else None) != have:
                core.patch_namespaced_service_status(
                    str(svc.metadata.name),
                    str(svc.metadata.namespace),
                    {"status": {"loadBalancer": {"ingress": ingress}}},
                )
                log.info("assign %s -> %s", key, choice[0] if choice else None)
        for addr in sorted(self.announced - want):
            self.net.remove_address(self.cluster, addr)
            log.info("withdraw %s on %s", addr, self.cluster)
        self.announced = want
        self.assigned = assignment

    def start(self) -> LoadBalancerStandIn:
        self.reconcile()
        self._thread = threading.Thread(target=self._loop, name=f"lb-{self.cluster}", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reconcile()
            except Exception as e:  # keep going: the apiserver may be restarting
                self.errors.append(repr(e))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def ensure_node(api: client.ApiClient, name: str, node: NodePlan) -> None:
    """The Node object kube-proxy looks for (no kubelet runs to register it)."""
    core = client.CoreV1Api(api)
    body = {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"podCIDR": str(node.pod_cidr), "podCIDRs": [str(node.pod_cidr)]},
    }
    try:
        core.create_node(model(client.V1Node, body))
    except ApiException as e:
        if e.status != 409:
            raise
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    core.patch_node_status(
        name,
        {
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": str(node.address)},
                    {"type": "Hostname", "address": name},
                ],
                # MetalLB's speaker announces only from Ready nodes.
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "StandInKubelet",
                        "message": "no kubelet runs; the node namespace is up",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
            }
        },
    )


def kube_proxy_token(plane: ControlPlane) -> str:
    """A token of ServiceAccount kube-system/kube-proxy bound to `system:node-proxier`."""
    api = plane.admin_client()
    core = client.CoreV1Api(api)
    with contextlib.suppress(ApiException):
        core.create_namespaced_service_account(
            "kube-system", model(client.V1ServiceAccount, {"metadata": {"name": "kube-proxy"}})
        )
    with contextlib.suppress(ApiException):
        binding = model(
            client.V1ClusterRoleBinding,
            {
                "metadata": {"name": KUBE_PROXY_BINDING},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:node-proxier",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "kube-proxy", "namespace": "kube-system"}
                ],
            },
        )
        client.RbacAuthorizationV1Api(api).create_cluster_role_binding(binding)
    return plane.service_account_token("kube-system", "kube-proxy", seconds=86400)


# A failure report cuts each log line here (MetalLB's debug lines dump whole objects).
TAIL_LINE_CHARS: Final = 400
# The speaker's log lines that say whether, and why (not), it announces an address.
SPEAKER_DECISIONS: Final = (
    "shouldannounce",
    "serviceAnnounced",
    "serviceWithdrawn",
    "reprocessAll",
    "initial load",
    "config reloaded",
    "ARPResponder",
    '"level":"error"',
    '"level":"warn"',
)


@dataclass
class ClusterDataPlane:
    """One cluster's relay, Node, kube-proxy and LoadBalancer stand-in."""

    cluster: str
    plane: ControlPlane
    net: Network
    rundir: Path
    processes: list[Process] = field(default_factory=list)
    kube_proxy: Process | None = None
    lb: LoadBalancerStandIn | None = None
    kube_proxy_started: float = 0.0
    # The namespaces whose LoadBalancer Services this data plane gives addresses to.
    lb_namespaces: frozenset[str] = frozenset()

    @property
    def node_name(self) -> str:
        return f"{self.cluster}-control-plane"

    @property
    def node_netns(self) -> str:
        return self.net.node_netns(self.cluster)

    def start_relay(self) -> None:
        """The cluster's apiserver on the node's own 127.0.0.1:6443."""
        self.relay("api", self.plane.api_port, NODE_API_PORT)

    def relay(self, name: str, root_port: int, node_port: int) -> None:
        """127.0.0.1:root_port of the root namespace on 127.0.0.1:node_port inside the node.

        Two socat processes joined by a Unix socket (mode 0600): nothing is bound to
        an address of the root namespace and no route is added anywhere.
        """
        sock = self.rundir / f"{self.cluster}-{name}.sock"
        root_side = Process(
            f"{name}-relay-{self.cluster}-root",
            [
                str(tool("socat")),
                f"UNIX-LISTEN:{sock},fork,unlink-early,mode=600",
                f"TCP:127.0.0.1:{root_port}",
            ],
            self.rundir / "logs" / f"{name}-relay-{self.cluster}-root.log",
        )
        self.processes.append(root_side)
        root_side.start()
        wait_until(
            f"{self.cluster}: {name} relay socket",
            sock.is_socket,
            timeout=30,
            interval=0.05,
            alive=root_side.exit_reason,
            not_yet=any_error,
        )
        node_side = self.net.start(
            f"{name}-relay-{self.cluster}",
            self.node_netns,
            [
                str(tool("socat")),
                f"TCP-LISTEN:{node_port},bind=127.0.0.1,fork,reuseaddr",
                f"UNIX-CONNECT:{sock}",
            ],
        )
        self.processes.append(node_side)

    def start_kube_proxy(self) -> Process:
        node = self.net.plan.node(self.cluster)
        kubeconfig = self.rundir / f"{self.cluster}-kube-proxy.kubeconfig"
        write_kubeconfig(
            kubeconfig,
            self.cluster,
            f"https://127.0.0.1:{NODE_API_PORT}",
            self.plane.pki_ca,
            kube_proxy_token(self.plane),
        )
        self.kube_proxy_started = time.monotonic()
        self.kube_proxy = self.net.start(
            f"kube-proxy-{self.cluster}",
            self.node_netns,
            [
                str(tool("kube-proxy")),
                f"--kubeconfig={kubeconfig}",
                "--proxy-mode=nftables",
                f"--hostname-override={self.node_name}",
                f"--bind-address={node.address}",
                f"--cluster-cidr={node.pod_cidr}",
                # Leave the host's conntrack settings alone (0 = do not change).
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0s",
                "--conntrack-tcp-timeout-close-wait=0s",
                "--healthz-bind-address=127.0.0.1:10256",
                "--metrics-bind-address=127.0.0.1:10249",
                "--v=2",
            ],
        )
        self.processes.append(self.kube_proxy)
        return self.kube_proxy

    def wait_kube_proxy_synced(self, timeout: float = 120) -> float:
        """Seconds from kube-proxy's start to its first complete rule sync."""
        proc = self.kube_proxy
        if proc is None:
            raise TestBedError("kube-proxy was not started")
        wait_until(
            f"{self.cluster}: kube-proxy first sync",
            lambda: "SyncProxyRules complete" in proc.log_path.read_text(errors="replace"),
            timeout=timeout,
            interval=0.05,
            alive=proc.exit_reason,
            not_yet=any_error,
        )
        return time.monotonic() - self.kube_proxy_started

    def start_metallb_controller(self) -> Process:
        """The real MetalLB controller (address assignment), in the node namespace.

        Its admission webhooks and certificate rotation are off (nothing in the
        cluster could call them); the memberlist secret is the speaker's, which
        does not run here.
        """
        kubeconfig = self.rundir / f"{self.cluster}-metallb.kubeconfig"
        write_kubeconfig(
            kubeconfig,
            self.cluster,
            f"https://127.0.0.1:{NODE_API_PORT}",
            self.plane.pki_ca,
            self.plane.admin_token,
        )
        proc = self.net.start(
            f"metallb-controller-{self.cluster}",
            self.node_netns,
            [
                str(tool("metallb-controller")),
                f"--kubeconfig={kubeconfig}",
                f"--namespace={METALLB_NAMESPACE}",
                "--webhook-mode=disabled",
                "--disable-cert-rotation",
                "--port=7472",
                "--log-level=info",
            ],
        )
        self.processes.append(proc)
        return proc

    @property
    def speaker_pod(self) -> str:
        return f"speaker-{self.cluster}"

    def start_metallb_speaker(self) -> Process:
        """The real MetalLB speaker (L2 announcement: it answers ARP for assigned addresses
        on the node's interfaces), in the node namespace, as the host-network pod it
        normally is: its Pod object exists, bound to the node, with the node's address.
        Without memberlist each speaker announces from its own node only.
        """
        api = self.plane.admin_client()
        node = self.net.plan.node(self.cluster)
        pod = {
            "metadata": {
                "name": self.speaker_pod,
                "labels": {"app": "metallb", "component": "speaker"},
            },
            "spec": {
                "nodeName": self.node_name,
                "hostNetwork": True,
                "containers": [{"name": "speaker", "image": "quay.io/metallb/speaker:v0.15.2"}],
            },
        }
        with contextlib.suppress(ApiException):
            client.CoreV1Api(api).create_namespaced_pod(METALLB_NAMESPACE, model(client.V1Pod, pod))
        set_pod_status(
            api, METALLB_NAMESPACE, self.speaker_pod, ips=[str(node.address)], ready=True
        )
        kubeconfig = self.rundir / f"{self.cluster}-metallb-speaker.kubeconfig"
        write_kubeconfig(
            kubeconfig,
            self.cluster,
            f"https://127.0.0.1:{NODE_API_PORT}",
            self.plane.pki_ca,
            self.plane.admin_token,
        )
        proc = self.net.start(
            f"metallb-speaker-{self.cluster}",
            self.node_netns,
            [
                str(tool("metallb-speaker")),
                f"--kubeconfig={kubeconfig}",
                f"--namespace={METALLB_NAMESPACE}",
                f"--node-name={self.node_name}",
                f"--pod-name={self.speaker_pod}",
                "--host=127.0.0.1",
                "--port=7473",
                # Debug: each announce decision and its reason, shown when a test fails.
                "--log-level=debug",
            ],
        )
        self.processes.append(proc)
        return proc

    def stop_kube_proxy(self, *, flush: bool = True) -> None:
        """Stop kube-proxy; with `flush`, delete its tables (in the node namespace) too."""
        if self.kube_proxy is not None:
            self.kube_proxy.stop(grace=10)
            self.processes.remove(self.kube_proxy)
            self.kube_proxy = None
        if flush:
            for family in ("ip", "ip6"):
                subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        self.node_netns,
                        "nft",
                        "delete",
                        "table",
                        family,
                        "kube-proxy",
                    ],
                    capture_output=True,
                    timeout=30,
                )

    def nft_tables(self) -> str:
        r = subprocess.run(
            ["ip", "netns", "exec", self.node_netns, "nft", "list", "tables"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return r.stdout

    def stop(self) -> list[str]:
        """Stop every process and take back what was added to the (shared) cluster;
        the LoadBalancer Services that outlived a bounded wait for their deletion."""
        if self.lb is not None:
            self.lb.stop()
        for p in reversed(self.processes):
            p.stop(grace=5)
        # The cluster may be shared with other tests: take back what was added to it.
        api = self.plane.admin_client()
        survivors = release_lb_services(api, self.lb_namespaces)
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        with contextlib.suppress(ApiException):
            # Bound to a node whose kubelet never runs: only a forced deletion completes.
            core.delete_namespaced_pod(self.speaker_pod, METALLB_NAMESPACE, grace_period_seconds=0)
        with contextlib.suppress(ApiException):
            core.delete_node(self.node_name)
        with contextlib.suppress(ApiException):
            rbac.delete_cluster_role_binding(KUBE_PROXY_BINDING)
        with contextlib.suppress(ApiException):
            core.delete_namespaced_service_account("kube-proxy", "kube-system")
        return survivors

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        tails = {
            p.name: f"(whole log: {p.log_path})\n"
            + "\n".join(line[:TAIL_LINE_CHARS] for line in p.log_tail(lines).splitlines())
            for p in self.processes
        }
        speaker = next((p for p in self.processes if p.name.startswith("metallb-speaker")), None)
        if speaker is not None:
            # Debug logs are long: the announce decisions, picked from the whole log.
            decisions = [
                line[:TAIL_LINE_CHARS]
                for line in speaker.log_lines()
                if any(word in line for word in SPEAKER_DECISIONS)
            ]
            tails[f"{speaker.name} decisions"] = "\n".join(decisions[-lines:])
        tails[f"{self.cluster}/node network"] = self.network_state()
        return tails

    def network_state(self) -> str:
        """What a failed routing check needs to tell MetalLB's part from kube-proxy's:
        the node namespace's addresses and neighbours (did ARP resolve?) and the
        LoadBalancer addresses kube-proxy programmed (its `service-ips` map)."""
        out: list[str] = []
        for argv in (
            ["ip", "-br", "addr"],
            ["ip", "neigh"],
            ["nft", "list", "map", "ip", "kube-proxy", "service-ips"],
        ):
            try:
                r = subprocess.run(
                    netlab.netns_exec(self.node_netns, *argv),
                    capture_output=True,
                    text=True,
                    timeout=10,
                )
                text = (r.stdout + r.stderr).strip()
            except (OSError, subprocess.TimeoutExpired) as e:
                text = f"could not run: {e}"
            out.append(f"$ {' '.join(argv)}\n{text}")
        return "\n".join(out)


@dataclass
class DataPlane:
    """kube-proxy and LoadBalancer addresses for every cluster on one network."""

    net: Network
    clusters: dict[str, ClusterDataPlane] = field(default_factory=dict)
    rundir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="icsdp-")))

    def add_cluster(
        self,
        cluster: str,
        plane: ControlPlane,
        *,
        lb: bool = True,
        lb_namespaces: Iterable[str] | None = None,
        kube_proxy: bool = True,
        metallb: bool = True,
    ) -> ClusterDataPlane:
        """Relay, Node, kube-proxy (unless told not to; not waited for) and MetalLB's
        controller and speaker (every namespace's Services, as MetalLB does); with
        `metallb=False` the stand-in assigns and announces instead, for `lb_namespaces`."""
        cdp = ClusterDataPlane(
            cluster, plane, self.net, self.rundir, lb_namespaces=frozenset(lb_namespaces or ())
        )
        self.clusters[cluster] = cdp
        api = plane.admin_client()
        ensure_node(api, cdp.node_name, self.net.plan.node(cluster))
        cdp.start_relay()
        if kube_proxy:
            cdp.start_kube_proxy()
        if lb:
            install_metallb_crds(api)
            if metallb:
                cdp.start_metallb_controller()
                cdp.start_metallb_speaker()
            else:
                only = cdp.lb_namespaces if lb_namespaces is not None else None
                cdp.lb = LoadBalancerStandIn(api, self.net, cluster, namespaces=only).start()
        return cdp

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        out: dict[str, str] = {}
        for c in self.clusters.values():
            out.update(c.log_tails(lines))
        return out

    def close(self) -> None:
        survivors: list[str] = []
        try:
            for c in self.clusters.values():
                survivors += [f"{c.cluster}/{s}" for s in c.stop()]
        finally:
            self.net.close()
            shutil.rmtree(self.rundir, ignore_errors=True)
        if survivors:
            raise TestBedError(f"LoadBalancer Services survived teardown: {survivors}")

    def pids(self) -> list[int]:
        return [
            p.pid for c in self.clusters.values() for p in c.processes if p.popen is not None
        ] + self.net.pids()


def start_service_in_node(
    dp: DataPlane,
    cluster: str,
    provider: ProviderNode,
    folder: Path,
    settings: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> Process:
    """`ics-discovery run` in the cluster's node namespace, as its pod runs in a cluster.

    It reaches its apiserver (the node's 127.0.0.1:6443) and its provider node
    (the node's 127.0.0.1 at the same RPC and gRPC ports) through relays, and the
    consumer pods by their pod IPs. `settings` (the service's settings, as its
    JSON config file) add to or override the connection settings made here.
    """
    cdp = dp.clusters[cluster]
    cdp.relay("provider-rpc", provider.ports.rpc, provider.ports.rpc)
    cdp.relay("provider-grpc", provider.ports.grpc, provider.ports.grpc)
    kubeconfig = folder / f"{cluster}-service.kubeconfig"
    write_kubeconfig(kubeconfig, cluster, f"https://127.0.0.1:{NODE_API_PORT}",
                     cdp.plane.pki_ca, cdp.plane.admin_token)  # fmt: skip
    doc: dict[str, Any] = {
        "kubeconfig": str(kubeconfig),
        "provider_rpc_urls": [f"http://127.0.0.1:{provider.ports.rpc}"],
        "provider_grpc_urls": [f"127.0.0.1:{provider.ports.grpc}"],
        "grpc_listen": "127.0.0.1:0",
        "metrics_listen": "127.0.0.1:0",
        "leader_election": False,
        "log_format": "text",
        # A Kind-like network: private LoadBalancer addresses, as on a testnet.
        "endpoint_profile": "testnet",
        **settings,
    }
    config = folder / f"{cluster}-service.json"
    config.write_text(json.dumps(doc))
    proc = dp.net.start(
        f"ics-discovery-{cluster}",
        cdp.node_netns,
        [str(Path(sys.executable).parent / "ics-discovery"), "run", "--config", str(config)],
        env=env,
    )
    cdp.processes.append(proc)
    return proc


def wait_routed(
    probe: netprobe.Prober, ip: str, port: int, expect: str, timeout: float = 60
) -> float:
    """Seconds until a connection to ip:port (via `probe`, a netprobe.Prober) answers `expect`."""
    t0 = time.monotonic()
    last: dict[str, object] = {}

    def ok() -> bool:
        nonlocal last
        last = probe.connect(ip, port, timeout=1.0)
        return bool(last.get("ok")) and expect in str(last.get("reply", ""))

    try:
        wait_until(
            f"{ip}:{port} answering {expect!r}",
            ok,
            timeout=timeout,
            interval=0.01,
            not_yet=any_error,
        )
    except TimeoutError as e:
        raise TimeoutError(f"{e}; last probe: {last}") from e
    return time.monotonic() - t0


def planned_pools(
    net: Network, clusters: Sequence[str], size: int = 4
) -> dict[str, tuple[str, str]]:
    """`ics-discovery metallb-pools` fed the network's `docker network inspect` document.

    Each cluster's pool as (first, last) address.
    """
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ics-discovery"), "metallb-pools",
         "--network-json", "-", "--clusters", ",".join(clusters), "--size", str(size), "--json"],
        input=net.inspect_json(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {c: (p["start"], p["end"]) for c, p in json.loads(out.stdout)["pools"].items()}


def release_lb_services(
    api: client.ApiClient, namespaces: Iterable[str], timeout: float = 30
) -> list[str]:
    """Delete the LoadBalancer Services of `namespaces` and wait until they are gone;
    the `namespace/name` of those still there after `timeout`.

    A test's namespace is deleted in the background, and its Service keeps the
    address it was given until the namespace controller gets to it. The next test
    on the same cluster plans the same pool: a Service that lingers from the last
    one would hold an address of it (and MetalLB, restarted, would announce it) while
    the new test's own Service is assigned and routed. Give the addresses back first.
    """
    core = client.CoreV1Api(api)

    def ours() -> list[str]:
        left: list[str] = []
        for ns in sorted(namespaces):
            try:
                items = core.list_namespaced_service(ns).items
            except ApiException as e:
                if e.status == 404:
                    continue
                raise
            left += [
                f"{ns}/{svc.metadata.name}"
                for svc in items
                if svc.spec is not None and svc.spec.type == "LoadBalancer"
            ]
        return left

    for key in ours():
        ns, name = key.split("/", 1)
        with contextlib.suppress(ApiException):
            core.delete_namespaced_service(name, ns)
    try:
        wait_until("our LoadBalancer Services to be gone", lambda: not ours(), timeout=timeout)
    except TimeoutError:
        return ours()
    return []


def lb_address(
    api: client.ApiClient, namespace: str, service: str = "p2p-loadbalancer"
) -> str | None:
    """The LoadBalancer Service's first ingress address, or None (none yet, or no Service)."""
    try:
        svc = client.CoreV1Api(api).read_namespaced_service(service, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    status = svc.status.load_balancer if svc.status else None
    ingress = (status.ingress if status else None) or []
    return str(ingress[0].ip) if ingress else None


class WiredCluster(Protocol):
    """What `cluster_wire` needs of a test cluster."""

    @property
    def name(self) -> str: ...
    @property
    def plane(self) -> ControlPlane: ...
    @property
    def namespace(self) -> str: ...


def cluster_lb_address(c: WiredCluster) -> str | None:
    """`lb_address` of a test cluster's LoadBalancer Service (in its namespace)."""
    return lb_address(c.plane.admin_client(), c.namespace)


@contextlib.contextmanager
def cluster_wire(clusters: Sequence[WiredCluster], workdir: Path) -> Iterator[DataPlane]:
    """The shared network, kube-proxy and a planned address pool per cluster.

    On the way out, checks that no namespace or process of ours is left and
    that the host's root network namespace is as it was.
    """
    before = netlab.root_network_state()
    names = [c.name for c in clusters]
    net = netlab.build_network(names, workdir=workdir)
    dp = DataPlane(net)
    try:
        pools = planned_pools(net, names)
        for c in clusters:
            dp.add_cluster(c.name, c.plane, lb_namespaces=[c.namespace])
            first, last = pools[c.name]
            apply_pool(c.plane.admin_client(), f"dp-{c.name}", [f"{first}-{last}"])
        yield dp
    finally:
        pids = dp.pids()
        dp.close()
        for c in clusters:
            delete_pool(c.plane.admin_client(), f"dp-{c.name}")
    assert netlab.our_namespaces() == [], "a namespace survived teardown"
    assert pids_alive(pids) == [], "a process survived teardown"
    assert netlab.root_network_state() == before, "the root network namespace changed"


__all__ = [
    "ClusterDataPlane",
    "DataPlane",
    "LbService",
    "LoadBalancerStandIn",
    "Pool",
    "announced_addresses",
    "apply_pool",
    "assign_addresses",
    "cluster_lb_address",
    "cluster_wire",
    "current_assignment",
    "delete_pool",
    "ensure_node",
    "install_metallb_crds",
    "lb_address",
    "planned_pools",
    "read_pools",
    "start_service_in_node",
    "wait_routed",
]
