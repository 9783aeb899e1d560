"""A shared L2 network of network namespaces, like Kind's docker network, with nothing on the host.

Layout (every name starts with `icsdp-<pid>-`, the pid of the process that built it):

    <run>-net              the "docker network": bridge `br0`, gateway address on it
    <run>-<cluster>        one "node" per cluster: `eth0` on the bridge (node address),
                           ip_forward on, one veth per pod, masquerade of its pod CIDR
    <run>-<cluster>.<pod>  one per consumer pod: `eth0` with the pod address, default
                           route through its node (ptp, as kindnet does)

Every veth is created inside a namespace built here and its peer moved straight
into another such namespace: nothing is ever added to the host's root network
namespace (no address, route, rule or link). Deleting the namespaces removes
every link in them; `sweep()` removes what a crashed run left (its pid is gone).

The planning half is pure (`plan_network`, `inspect_document`); `Network` is the
thin imperative shell that runs `ip` and `nft`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from . import netprobe
from .polling import any_error, wait_until
from .procs import Process, TestBedError

PREFIX: Final = "icsdp-"
DEFAULT_SUBNET: Final = ipaddress.IPv4Network("172.30.0.0/24")
DEFAULT_POD_SUPERNET: Final = ipaddress.IPv4Network("10.244.0.0/16")
NETNS_DIR: Final = Path("/run/netns")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class NetlabError(RuntimeError):
    """The network could not be planned, built or changed."""


# ---- pure planning ---------------------------------------------------------


@dataclass(frozen=True)
class NodePlan:
    cluster: str
    index: int
    address: ipaddress.IPv4Address
    pod_cidr: ipaddress.IPv4Network

    @property
    def pod_gateway(self) -> ipaddress.IPv4Address:
        return self.pod_cidr.network_address + 1


@dataclass(frozen=True)
class NetworkPlan:
    """The shared subnet, its gateway (on the bridge) and one node per cluster."""

    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    nodes: tuple[NodePlan, ...]
    pod_supernet: ipaddress.IPv4Network

    def node(self, cluster: str) -> NodePlan:
        for n in self.nodes:
            if n.cluster == cluster:
                return n
        raise NetlabError(f"no node for cluster {cluster!r}")

    def pod_address(self, cluster: str, ordinal: int) -> ipaddress.IPv4Address:
        """The `ordinal`-th pod address of a cluster (ordinal >= 0; .1 is the node's)."""
        cidr = self.node(cluster).pod_cidr
        if ordinal < 0 or ordinal + 2 >= cidr.num_addresses - 1:
            raise NetlabError(f"pod ordinal {ordinal} does not fit {cidr}")
        return cidr.network_address + 2 + ordinal


def plan_network(
    clusters: Sequence[str],
    *,
    name: str = "kind",
    subnet: ipaddress.IPv4Network = DEFAULT_SUBNET,
    pod_supernet: ipaddress.IPv4Network = DEFAULT_POD_SUPERNET,
) -> NetworkPlan:
    """Gateway .1, nodes .2, .3, ... in cluster order; cluster i gets pod /24 number i+1."""
    if not clusters:
        raise NetlabError("no clusters given")
    if len(set(clusters)) != len(clusters):
        raise NetlabError("cluster names must be distinct")
    for c in clusters:
        if not _LABEL.match(c) or len(c) > 20:
            raise NetlabError(f"cluster name {c!r} is not a short DNS label")
    if len(clusters) + 3 > subnet.num_addresses:
        raise NetlabError(f"{subnet} is too small for {len(clusters)} nodes")
    pod_cidrs = list(pod_supernet.subnets(new_prefix=24)) if pod_supernet.prefixlen <= 24 else []
    if len(pod_cidrs) < len(clusters) + 1:
        raise NetlabError(f"{pod_supernet} has too few /24s for {len(clusters)} clusters")
    gateway = subnet.network_address + 1
    nodes = tuple(
        NodePlan(c, i, subnet.network_address + 2 + i, pod_cidrs[i + 1])
        for i, c in enumerate(clusters)
    )
    return NetworkPlan(name, subnet, gateway, nodes, pod_supernet)


def inspect_document(plan: NetworkPlan) -> list[dict[str, Any]]:
    """The network as `docker network inspect kind` prints it (one node per cluster)."""
    containers = {
        f"{n.index:064x}": {
            "Name": f"{n.cluster}-control-plane",
            "EndpointID": "",
            "MacAddress": "",
            "IPv4Address": f"{n.address}/{plan.subnet.prefixlen}",
            "IPv6Address": "",
        }
        for n in plan.nodes
    }
    return [
        {
            "Name": plan.name,
            "Id": "",
            "Scope": "local",
            "Driver": "bridge",
            "EnableIPv6": False,
            "IPAM": {
                "Driver": "default",
                "Options": {},
                "Config": [{"Subnet": str(plan.subnet), "Gateway": str(plan.gateway)}],
            },
            "Internal": False,
            "Containers": containers,
            "Options": {},
            "Labels": {"ics-discovery.io/netlab": "true"},
        }
    ]


def run_prefix(pid: int) -> str:
    return f"{PREFIX}{pid}-"


def stale_namespaces(names: Sequence[str], alive: set[int]) -> list[str]:
    """Our namespaces (by prefix) whose owning pid is no longer alive."""
    out = []
    for n in names:
        m = re.match(rf"^{re.escape(PREFIX)}(\d+)-", n)
        if m and int(m.group(1)) not in alive:
            out.append(n)
    return out


# ---- imperative shell ------------------------------------------------------


def _run(argv: Sequence[str], *, input_text: str | None = None) -> str:
    r = subprocess.run(list(argv), capture_output=True, text=True, input=input_text, timeout=60)
    if r.returncode != 0:
        raise NetlabError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def ip(*args: str, netns: str | None = None) -> str:
    return _run(["ip", *(["-n", netns] if netns else []), *args])


def netns_exec(netns: str, *argv: str) -> list[str]:
    """argv that runs a command inside `netns`."""
    return ["ip", "netns", "exec", netns, *argv]


def list_namespaces() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def namespace_pids(netns: str) -> list[int]:
    r = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=30)
    return [int(x) for x in r.stdout.split()] if r.returncode == 0 else []


def delete_namespace(netns: str, *, grace: float = 5.0) -> None:
    """Kill every process still inside `netns` (SIGTERM, then SIGKILL), then delete it."""
    pids = namespace_pids(netns)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = namespace_pids(netns)
            time.sleep(0.05)
        if not pids:
            break
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep() -> list[str]:
    """Remove the namespaces (and their processes) of runs whose process is gone."""
    names = list_namespaces()
    owners = {int(m.group(1)) for n in names if (m := re.match(rf"^{PREFIX}(\d+)-", n))}
    alive = {p for p in owners if _pid_alive(p)}
    stale = stale_namespaces(names, alive)
    # Pods first, then nodes, then the bridge: longest names first does that.
    for n in sorted(stale, key=len, reverse=True):
        delete_namespace(n)
    return stale


@dataclass
class Pod:
    """One consumer pod's network namespace, attached to its node by a veth."""

    cluster: str
    name: str
    netns: str
    node_netns: str
    node_ifname: str
    address: ipaddress.IPv4Address
    gateway: ipaddress.IPv4Address
    prefixlen: int

    def readdress(self, new: ipaddress.IPv4Address) -> None:
        """The pod comes back with a new IP: swap the address and the node's /32 route."""
        old = self.address
        ip("addr", "del", f"{old}/{self.prefixlen}", "dev", "eth0", netns=self.netns)
        ip("route", "del", f"{old}/32", "dev", self.node_ifname, netns=self.node_netns)
        self._address(new)

    def _address(self, addr: ipaddress.IPv4Address) -> None:
        ip("addr", "add", f"{addr}/{self.prefixlen}", "dev", "eth0", netns=self.netns)
        ip("link", "set", "eth0", "up", netns=self.netns)
        ip("route", "replace", "default", "via", str(self.gateway), "dev", "eth0", netns=self.netns)
        ip("route", "replace", f"{addr}/32", "dev", self.node_ifname, netns=self.node_netns)
        self.address = addr


@dataclass
class Network:
    """The built network; `close()` removes every namespace (and process in them)."""

    plan: NetworkPlan
    owner_pid: int = field(default_factory=os.getpid)
    pods: dict[tuple[str, str], Pod] = field(default_factory=dict)
    workdir: Path | None = None
    _namespaces: list[str] = field(default_factory=list)
    _pod_links: dict[str, int] = field(default_factory=dict)
    _processes: list[Process] = field(default_factory=list)
    _probers: list[netprobe.Prober] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return run_prefix(self.owner_pid)

    @property
    def bridge_netns(self) -> str:
        return f"{self.prefix}net"

    def node_netns(self, cluster: str) -> str:
        return f"{self.prefix}{cluster}"

    def namespaces(self) -> list[str]:
        return list(self._namespaces)

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self._namespaces.append(name)
        ip("link", "set", "lo", "up", netns=name)

    def build(self) -> Network:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        plan = self.plan
        br = self.bridge_netns
        self._add_namespace(br)
        ip("link", "add", "br0", "type", "bridge", netns=br)
        ip("addr", "add", f"{plan.gateway}/{plan.subnet.prefixlen}", "dev", "br0", netns=br)
        ip("link", "set", "br0", "up", netns=br)
        for node in plan.nodes:
            ns = self.node_netns(node.cluster)
            self._add_namespace(ns)
            port = f"p{node.index}"
            # Created in the bridge's namespace, its peer moved straight into the node's.
            ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns, netns=br)
            ip("link", "set", port, "master", "br0", "up", netns=br)
            ip("addr", "add", f"{node.address}/{plan.subnet.prefixlen}", "dev", "eth0", netns=ns)
            ip("link", "set", "eth0", "up", netns=ns)
            _run(netns_exec(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
            # Pods reach other clusters' LoadBalancers with their node's address (as
            # kindnet's masquerade does): a rule in the node's own namespace.
            rules = (
                "table ip icsdp-node {\n"
                " chain postrouting {\n"
                "  type nat hook postrouting priority srcnat; policy accept;\n"
                f'  ip saddr {node.pod_cidr} oifname "eth0" masquerade\n'
                " }\n"
                "}\n"
            )
            _run(netns_exec(ns, "nft", "-f", "-"), input_text=rules)
            self._pod_links[node.cluster] = 0

    def add_pod(self, cluster: str, name: str, ordinal: int) -> Pod:
        """A pod namespace with the cluster's `ordinal`-th pod address, routed via its node."""
        if not _LABEL.match(name) or len(name) > 30:
            raise NetlabError(f"pod name {name!r} is not a short DNS label")
        if (cluster, name) in self.pods:
            raise NetlabError(f"pod {cluster}/{name} exists")
        node = self.plan.node(cluster)
        node_ns = self.node_netns(cluster)
        ns = f"{node_ns}.{name}"
        self._add_namespace(ns)
        ifname = f"v{self._pod_links[cluster]}"
        self._pod_links[cluster] += 1
        ip(
            "link",
            "add",
            ifname,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
            netns=node_ns,
        )
        # The node answers for the pods' gateway on every pod link (a /32, ptp style).
        ip("addr", "add", f"{node.pod_gateway}/32", "dev", ifname, netns=node_ns)
        ip("link", "set", ifname, "up", netns=node_ns)
        pod = Pod(
            cluster,
            name,
            ns,
            node_ns,
            ifname,
            self.plan.pod_address(cluster, ordinal),
            node.pod_gateway,
            node.pod_cidr.prefixlen,
        )
        pod._address(pod.address)
        self.pods[(cluster, name)] = pod
        return pod

    def pod(self, cluster: str, name: str) -> Pod:
        return self.pods[(cluster, name)]

    def add_address(self, cluster: str, address: ipaddress.IPv4Address) -> None:
        """Put `address` on the node's bridge interface (an L2 announcement, as MetalLB's)."""
        ip("addr", "replace", f"{address}/32", "dev", "eth0", netns=self.node_netns(cluster))

    def remove_address(self, cluster: str, address: ipaddress.IPv4Address) -> None:
        ns = self.node_netns(cluster)
        with contextlib.suppress(NetlabError):
            ip("addr", "del", f"{address}/32", "dev", "eth0", netns=ns)

    # ---- processes inside the namespaces -----------------------------------

    def start(self, name: str, netns: str, argv: Sequence[str], **kw: Any) -> Process:
        """Start `argv` inside `netns` (logged under workdir); stopped by `close()`."""
        if netns not in self._namespaces:
            raise NetlabError(f"{netns} is not a namespace of this network")
        logs = (self.workdir or Path("/tmp") / f"{self.prefix}logs") / "logs"
        n = sum(1 for p in self._processes if p.name == name)
        log = logs / (f"{name}.log" if n == 0 else f"{name}.{n}.log")
        proc = Process(name, netns_exec(netns, *argv), log, **kw)
        self._processes.append(proc)
        proc.start()
        return proc

    def serve(self, netns: str, address: object, port: int, name: str) -> Process:
        """A TCP responder on address:port inside `netns` that answers with `name`."""
        proc = self.start(
            f"serve-{name}-{port}",
            netns,
            [sys.executable, str(netprobe.SCRIPT), "serve", str(address), str(port), name],
        )
        wait_until(
            f"responder {name} on {address}:{port}",
            lambda: "listening" in proc.log_tail(5),
            timeout=30,
            alive=proc.exit_reason,
            not_yet=any_error,
        )
        return proc

    def prober(self, netns: str) -> netprobe.Prober:
        """A TCP prober living inside `netns`."""
        if netns not in self._namespaces:
            raise NetlabError(f"{netns} is not a namespace of this network")
        p = netprobe.Prober(["ip", "netns", "exec", netns])
        self._probers.append(p)
        return p

    def pids(self) -> list[int]:
        """Every process started here (responders, probers, ...)."""
        return [p.pid for p in self._processes if p.popen is not None] + [
            p.pid for p in self._probers
        ]

    def inspect_json(self) -> str:
        return json.dumps(inspect_document(self.plan), indent=2)

    def close(self) -> None:
        """Remove every namespace built here (and any process still in one); idempotent."""
        for prober in self._probers:
            prober.close()
        self._probers.clear()
        for proc in reversed(self._processes):
            proc.stop(grace=5)
        self._processes.clear()
        for ns in sorted(self._namespaces, key=len, reverse=True):
            delete_namespace(ns)
        self._namespaces.clear()
        self.pods.clear()


def build_network(clusters: Sequence[str], *, workdir: Path | None = None, **kw: Any) -> Network:
    """Sweep a crashed run's leftovers, then build the network for `clusters`."""
    missing = [t for t in ("ip", "nft") if shutil.which(t) is None]
    if missing:
        raise TestBedError(f"{', '.join(missing)} not found: run `make tools` first")
    if os.geteuid() != 0:
        raise TestBedError(
            "building network namespaces needs root (or `unshare --user --map-root-user "
            "--net --mount` with a tmpfs on /run)"
        )
    sweep()
    return Network(plan_network(clusters, **kw), workdir=workdir).build()


def our_namespaces() -> list[str]:
    return [n for n in list_namespaces() if n.startswith(PREFIX)]


def root_network_state() -> dict[str, str]:
    """What the host's root network namespace holds (read only): compare before and after."""

    def out(*argv: str) -> str:
        r = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
        return r.stdout + (f"(exit {r.returncode}: {r.stderr.strip()})" if r.returncode else "")

    def without_state(text: str) -> str:
        # `ip -br` columns: name, state, addresses; a host link's state is not ours.
        rows = (line.split() for line in text.splitlines())
        return "\n".join(" ".join([r[0], *r[2:]]) for r in rows if r)

    return {
        "nft ruleset": out("nft", "list", "ruleset"),
        "addresses": without_state(out("ip", "-br", "addr")),
        "links": "\n".join(line.split()[0] for line in out("ip", "-o", "-br", "link").splitlines()),
        "routes v4": out("ip", "-4", "route", "show", "table", "all"),
        "routes v6": re.sub(r"expires \S+", "", out("ip", "-6", "route", "show", "table", "all")),
        "rules v4": out("ip", "-4", "rule"),
        "rules v6": out("ip", "-6", "rule"),
        # Host-wide knobs a kube-proxy or a node setup could touch by mistake.
        **{str(p): _read(p) for p in HOST_KNOBS},
    }


HOST_KNOBS: Final = (
    Path("/proc/sys/net/netfilter/nf_conntrack_max"),
    Path("/sys/module/nf_conntrack/parameters/hashsize"),
    Path("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established"),
    Path("/proc/sys/net/ipv4/ip_forward"),
    Path("/proc/sys/net/ipv4/conf/all/route_localnet"),
)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        return f"({type(e).__name__})"


__all__ = [
    "PREFIX",
    "NetlabError",
    "Network",
    "NetworkPlan",
    "NodePlan",
    "Pod",
    "build_network",
    "inspect_document",
    "netns_exec",
    "our_namespaces",
    "plan_network",
    "root_network_state",
    "stale_namespaces",
    "sweep",
]
