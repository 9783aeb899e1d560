"""`make localnet`: three validator clusters and a consumer chain whose nodes really connect.

Starts, without Docker, inside network namespaces it creates (nothing is added to
the host's root network namespace):

- one shared L2 network like Kind's Docker network (a bridge in a namespace of its
  own, 172.30.0.0/24), one "node" namespace per cluster (alice, bob, charlie) and
  one namespace per consumer pod with a real pod IP routed through its node;
- per cluster a Kubernetes control plane (etcd, kube-apiserver,
  kube-controller-manager), the real kube-proxy (nftables mode) and the real
  MetalLB controller and speaker in the node namespace; each cluster's address
  pool is planned with `ics-discovery metallb-pools` from the network described
  as `docker network inspect` prints it;
- a three-validator provider chain and one `ics-discovery run` per cluster in its
  node namespace; each service publishes its cluster's real LoadBalancer address
  on chain (own-endpoint publishing, node ID derived from its secret);
- a consumer chain launched on the provider (charlie's validator assigns it a
  consensus key of its own with `assign-consensus-key`), its genesis from the
  provider's `consumer-genesis`, one `interchain-security-cd` node per cluster
  in its pod namespace, run by a stand-in kubelet from a real StatefulSet. A
  node's peers come only from the service: `restart` mode (default; the kubelet
  restarts the node with the peers ConfigMap's `persistent_peers`) or `dial`
  mode (`--mode dial`: the service calls the node's RPC on its pod IP).

It prints the consumer chain making blocks signed by all three validators and
each node's peers, then leaves everything running under a supervisor process
(state and logs under ./localnet/). Without root it runs the whole localnet in
`unshare --user --map-root-user --net --mount` (unprivileged user namespaces).

    python scripts/localnet.py up [--mode restart|dial]  # what `make localnet` runs
    python scripts/localnet.py status [--json]           # height and peers per cluster
    python scripts/localnet.py down                      # what `make localnet-down` runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kubernetes import client  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from discovery.nodekey import derive_node_key, encode_node_key, secret_from_environment  # noqa: E402
from discovery.ports import derive_ports  # noqa: E402
from tests.support import dataplane, netlab  # noqa: E402
from tests.support.chain import (  # noqa: E402
    ProviderChain,
    export_key_hex,
    start_provider_chain,
    write_key_file,
)
from tests.support.consumer import RPC_PORT, ConsumerChain, node_rpc  # noqa: E402
from tests.support.kube import ControlPlane, start_control_plane  # noqa: E402
from tests.support.kubelet import StandInKubelet, consumer_statefulset  # noqa: E402
from tests.support.netprobe import Prober  # noqa: E402
from tests.support.polling import Died, any_error, wait_until  # noqa: E402
from tests.support.procs import TestBedError, pids_alive, processes_mentioning  # noqa: E402

NAMES: Final = ("alice", "bob", "charlie")
SERVICE_NAMESPACE: Final = "provider"
CONSUMER_NAMESPACE: Final = "consumers"
CONSUMER_CHAIN_ID: Final = "localnet-consumer-1"
WORKLOAD: Final = "consumer"
# This cluster's validator signs the consumer with a key assigned for it (`assign-consensus-key`).
ASSIGNED: Final = "charlie"
SECRET_ENV: Final = "ICS_LOCALNET_NODE_SECRET"  # noqa: S105 - a variable name
# The service's API and metrics, on the node namespace's own loopback.
SERVICE_GRPC: Final = "127.0.0.1:50051"
SERVICE_METRICS: Final = "127.0.0.1:9464"
MODES: Final = ("restart", "dial")
DEFAULT_DIR: Final = REPO / "localnet"
USERNS: Final = ("unshare", "--user", "--map-root-user", "--net", "--mount", "--propagation",
                 "private")  # fmt: skip
NO_USERNS_HELP: Final = """\
make localnet builds network namespaces: it needs root, or unprivileged user
namespaces (it then runs inside `unshare --user --map-root-user --net --mount`).
This machine allows neither for you: `{probe}` failed: {why}
Either run it as root (sudo make localnet), or allow user namespaces:
  sudo sysctl -w user.max_user_namespaces=15000              # if it is 0
  sudo sysctl -w kernel.unprivileged_userns_clone=1          # Debian/older Ubuntu kernels
  sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0   # Ubuntu 23.10+
(containers may also forbid unshare(2) with seccomp: run it on the host or a VM)."""


def say(text: str) -> None:
    print(f"[localnet] {text}", flush=True)


# ---- state file and control socket -----------------------------------------------


def state_path(root: Path) -> Path:
    return root / "state.json"


def control_path(root: Path) -> Path:
    return root / "control.sock"


def read_state(root: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(state_path(root).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def write_state(root: Path, doc: dict[str, Any]) -> None:
    tmp = state_path(root).with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(state_path(root))


def supervisor_alive(doc: dict[str, Any] | None) -> int | None:
    pid = int((doc or {}).get("supervisor") or 0)
    return pid if pid and pids_alive([pid]) else None


def ask(root: Path, command: str, timeout: float = 30.0) -> dict[str, Any]:
    """One request to the running supervisor over its control socket (a JSON reply)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(control_path(root)))
        s.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


# ---- without root -----------------------------------------------------------------


def userns_problem() -> str | None:
    """None when this user may create the user namespace localnet runs in; else why not."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    r = subprocess.run([*USERNS, "true"], capture_output=True, text=True, timeout=30, check=False)
    return None if r.returncode == 0 else (r.stderr.strip() or f"exit status {r.returncode}")


def enter_private_run() -> None:
    """Inside the user namespace: our own /run (for `ip netns`) and loopback."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


# ---- leftovers --------------------------------------------------------------------

# What localnet runs (argv[0]); a viewer of its logs (less, tail) is not one of them.
PROGRAMS: Final = frozenset({
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy", "metallb-controller",
    "metallb-speaker", "socat", "interchain-security-pd", "interchain-security-cd", "ip",
    "ics-discovery", "unshare",
})  # fmt: skip


def localnet_processes(root: Path) -> list[int]:
    """Running processes of a localnet in `root` (not this one, nor its parent)."""
    out = []
    for pid in processes_mentioning(f"{root}/"):
        if pid in (os.getpid(), os.getppid()):
            continue
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        name = Path(argv0).name
        if name in PROGRAMS or name.startswith("python"):
            out.append(pid)
    return out


def sweep_leftovers(root: Path) -> list[int]:
    """Stop every process of a (crashed) localnet in `root`; remove dead runs' namespaces.

    Every process localnet starts names a path under `root` on its command line
    (homes, data directories, kubeconfigs, relay sockets).
    """
    found = localnet_processes(root)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_alive(found):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while pids_alive(found) and time.monotonic() < deadline:
            time.sleep(0.1)
    if os.geteuid() == 0:
        netlab.sweep()  # namespaces whose building process is gone (names under our prefix)
    return found


# ---- the supervisor: builds, runs and tears down the localnet ----------------------


def create_namespace(plane: ControlPlane, name: str) -> None:
    core = client.CoreV1Api(plane.admin_client())
    with contextlib.suppress(ApiException):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Pods are refused until the controller manager made the default ServiceAccount.
    wait_until(
        f"{plane.name}: default ServiceAccount in {name}",
        lambda: core.read_namespaced_service_account("default", name) is not None,
        timeout=120,
        not_yet=any_error,
    )


@dataclass
class Localnet:
    root: Path
    mode: str
    rootless: bool
    planes: dict[str, ControlPlane] = field(default_factory=dict)
    chain: ProviderChain | None = None
    dp: dataplane.DataPlane | None = None
    consumer: ConsumerChain | None = None
    kubelets: dict[str, StandInKubelet] = field(default_factory=dict)
    probers: dict[str, Prober] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)

    @property
    def net(self) -> netlab.Network:
        assert self.dp is not None
        return self.dp.net

    def build(self) -> None:
        root = self.root
        say("building the shared network (bridge, a node namespace per cluster)")
        net = netlab.build_network(NAMES, workdir=root)
        self.dp = dataplane.DataPlane(net, rundir=root / "run")
        (root / "run").mkdir(exist_ok=True)
        say("starting 3 control planes and the 3-validator provider chain")
        with ThreadPoolExecutor(4) as pool:
            planes = {n: pool.submit(start_control_plane, n, root / "clusters" / n) for n in NAMES}
            chain = pool.submit(start_provider_chain, "localnet", root / "chain", 3)
            self.chain = chain.result()
            for n, f in planes.items():
                self.planes[n] = f.result()
        say("per cluster: Node, kube-proxy (nftables), MetalLB controller and speaker")
        pools = dataplane.planned_pools(net, list(NAMES))
        for n in NAMES:
            create_namespace(self.planes[n], SERVICE_NAMESPACE)
            create_namespace(self.planes[n], CONSUMER_NAMESPACE)
            self.dp.add_cluster(n, self.planes[n])
            first, last = pools[n]
            dataplane.apply_pool(
                self.planes[n].admin_client(), f"localnet-{n}", [f"{first}-{last}"]
            )
            say(f"{n}: node {net.plan.node(n).address}, pool {first}-{last} (metallb-pools)")
        for cdp in self.dp.clusters.values():
            cdp.wait_kube_proxy_synced()
        self._consumer()

    def _consumer(self) -> None:
        chain, net, root = self.chain, self.net, self.root
        assert chain is not None
        assert self.dp is not None
        pods = {n: net.add_pod(n, "consumer-0", 0) for n in NAMES}
        for n in NAMES:
            client.AppsV1Api(self.planes[n].admin_client()).create_namespaced_stateful_set(
                CONSUMER_NAMESPACE, consumer_statefulset(WORKLOAD, CONSUMER_CHAIN_ID)
            )
        consumer = self.consumer = ConsumerChain(CONSUMER_CHAIN_ID, "", root / "consumer")
        index = {n: i for i, n in enumerate(NAMES)}
        key = consumer.new_consensus_key(ASSIGNED)
        say(f"{ASSIGNED}'s validator assigns the consumer a consensus key of its own: {key}")
        say(f"launching consumer chain {CONSUMER_CHAIN_ID}; all three validators opt in")
        consumer.consumer_id = chain.launch_consumer(
            CONSUMER_CHAIN_ID, [0, 1, 2], spawn_delay=None, assign_keys={index[ASSIGNED]: key}
        )
        consumer.prepare(chain, {n: (chain.validators[index[n]], pods[n].netns,
                                     str(pods[n].address)) for n in NAMES})  # fmt: skip
        say(f"consumer {consumer.consumer_id} launched; its genesis from `consumer-genesis`")
        keys = root / "keys"
        keys.mkdir(exist_ok=True)
        for n in NAMES:
            validator = chain.validators[index[n]]
            key_file = write_key_file(keys, f"{n}.key", export_key_hex(chain, validator))
            secret = secrets.token_hex(32)
            consumer.use_node_key(n, encode_node_key(derive_node_key(
                secret_from_environment(secret))))  # fmt: skip
            consumer.configure(n, peers=[], external_address="", unsafe_rpc=self.mode == "dial")
            dataplane.start_service_in_node(
                self.dp, n, chain.nodes[index[n]], root / "run",
                {
                    "operator_address": validator.operator,
                    "service_namespace": SERVICE_NAMESPACE,
                    "consumer_namespace": CONSUMER_NAMESPACE,
                    "grpc_listen": SERVICE_GRPC,
                    "metrics_listen": SERVICE_METRICS,
                    "notify_default": self.mode,
                    "consumer_rpc_port": RPC_PORT,
                    "publish_endpoint": True,
                    "publish_key_file": str(key_file),
                    "node_key_secret_env": SECRET_ENV,
                    "resync_interval": 60,
                    # Only the consumer StatefulSet may be rolled; hold-downs short enough
                    # for a demo that converges in a minute, long enough to be seen working.
                    "restart_workloads": [f"StatefulSet/{CONSUMER_NAMESPACE}/{WORKLOAD}"],
                    "restart_hold_down": 10,
                    "publish_hold_down": 5,
                },
                env={SECRET_ENV: secret},
            )  # fmt: skip
            self.kubelets[n] = StandInKubelet(
                self.planes[n].admin_client(), CONSUMER_NAMESPACE, WORKLOAD, CONSUMER_CHAIN_ID,
                n, consumer, net, pods[n], mode=self.mode,
            ).start()  # fmt: skip
            self.probers[n] = net.prober(net.node_netns(n))
            say(f"{n}: ics-discovery run ({self.mode} mode) and the stand-in kubelet started")

    # ---- what is running --------------------------------------------------------

    def node_status(self, n: str) -> dict[str, Any]:
        assert self.consumer is not None
        assert self.chain is not None
        pod = self.net.pod(n, "consumer-0")
        out: dict[str, Any] = {
            "pod_ip": str(pod.address),
            "lb_address": dataplane.lb_address(self.planes[n].admin_client(), SERVICE_NAMESPACE),
            "node_id": self.consumer.nodes[n].node_id,
        }
        operator = self.chain.validators[NAMES.index(n)].operator
        with contextlib.suppress(Exception):
            out["published"] = self.chain.staking_validator(operator)["description"]["details"]
        try:
            status = node_rpc(self.probers[n], str(pod.address), "/status")
            info = node_rpc(self.probers[n], str(pod.address), "/net_info")
        except (AssertionError, RuntimeError, ValueError) as e:
            return {**out, "height": None, "peers": [], "error": str(e)}
        p2p = derive_ports(CONSUMER_CHAIN_ID).p2p
        peers = [
            {
                "node_id": p["node_info"]["id"],
                "moniker": p["node_info"]["moniker"],
                "remote_ip": p["remote_ip"],
                "outbound": bool(p["is_outbound"]),
                # An outbound peer was dialled at its LoadBalancer address and the P2P port.
                "remote_address": f"{p['remote_ip']}:{p2p}" if p["is_outbound"] else p["remote_ip"],
            }
            for p in info["peers"]
        ]
        return {
            **out,
            "height": int(status["sync_info"]["latest_block_height"]),
            "validator_address": status["validator_info"]["address"],
            "peers": sorted(peers, key=lambda p: str(p["moniker"])),
        }

    def last_commit(self) -> dict[str, Any]:
        """Who signed the latest committed block, as alice's node shows it."""
        pod = self.net.pod(NAMES[0], "consumer-0")
        prober, ip = self.probers[NAMES[0]], str(pod.address)
        height = int(node_rpc(prober, ip, "/status")["sync_info"]["latest_block_height"]) - 1
        commit = node_rpc(prober, ip, f"/commit?height={height}")
        sigs = commit["signed_header"]["commit"]["signatures"]
        validators = node_rpc(prober, ip, f"/validators?height={height}")["validators"]
        return {
            "height": height,
            "validators": sorted(v["address"] for v in validators),
            "signers": sorted(s["validator_address"] for s in sigs if s["block_id_flag"] == 2),
        }

    def status(self) -> dict[str, Any]:
        assert self.consumer is not None
        doc: dict[str, Any] = {
            "chain_id": CONSUMER_CHAIN_ID,
            "consumer_id": self.consumer.consumer_id,
            "mode": self.mode,
            "rootless": self.rootless,
            "p2p_port": derive_ports(CONSUMER_CHAIN_ID).p2p,
            "assigned_key": {ASSIGNED: self.consumer.assigned_keys.get(ASSIGNED)},
            "clusters": {n: self.node_status(n) for n in NAMES},
        }
        try:
            doc["last_commit"] = self.last_commit()
        except (AssertionError, RuntimeError, ValueError, KeyError) as e:
            doc["last_commit"] = {"error": str(e)}
        return doc

    def service_status(self) -> str:
        """`ics-discovery status` of every cluster's service (run in its node namespace)."""
        exe = str(Path(sys.executable).parent / "ics-discovery")
        out = []
        for n in NAMES:
            r = subprocess.run(
                netlab.netns_exec(self.net.node_netns(n), exe, "status", "--address",
                                  SERVICE_GRPC, "--metrics-address", SERVICE_METRICS),
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            out.append(f"===== {n}: ics-discovery status =====\n{r.stdout}{r.stderr}")
        return "\n".join(out)

    def converged(self, doc: dict[str, Any]) -> bool:
        """Print each cluster's line when it changed; True once nothing is missing."""
        for n in NAMES:
            line = describe(n, doc["clusters"][n])
            if self.lines.get(n) != line:
                self.lines[n] = line
                say(line)
        return not wire_problems(doc)

    def wait_converged(self, wait: float) -> dict[str, Any]:
        deadline = time.monotonic() + wait
        while True:
            assert self.dp is not None
            for cdp in self.dp.clusters.values():
                for p in cdp.processes:
                    if p.exit_reason() is not None:
                        raise TestBedError(str(p.exit_reason()))
            doc = self.status()
            if self.converged(doc):
                return doc
            if time.monotonic() > deadline:
                errors = {n: k.errors[-3:] for n, k in self.kubelets.items() if k.errors}
                raise TestBedError(
                    f"not converged within {wait:.0f}s: {wire_problems(doc)}; stand-in kubelet "
                    f"errors {errors}; logs in {self.root}/logs"
                )
            time.sleep(1.0)

    def close(self) -> None:
        for k in self.kubelets.values():
            k.stop()
        if self.consumer is not None:
            self.consumer.stop()
        if self.dp is not None:
            self.dp.close()  # every process in the namespaces, then the namespaces
        if self.chain is not None:
            self.chain.stop()
        for plane in self.planes.values():
            plane.stop()


def wire_problems(doc: dict[str, Any]) -> list[str]:
    """What keeps a `status` document from showing the wire working (empty: it works).

    Every node at height >= 3 with exactly the other clusters' nodes as peers, its
    outbound peers dialled at their LoadBalancer addresses, every validator's
    published endpoint naming its LoadBalancer address and node ID, one validator per
    cluster, and the latest block signed by all of them.
    """
    out: list[str] = []
    clusters = doc["clusters"]
    for n, s in sorted(clusters.items()):
        others = {o: c for o, c in clusters.items() if o != n}
        published = str(s.get("published", ""))
        if not s.get("lb_address") or f"p2p={s['lb_address']}" not in published:
            out.append(f"{n}: LoadBalancer address {s.get('lb_address')} not published")
        elif f"node={s['node_id']}" not in published:
            out.append(f"{n}: node ID not published")
        if (s.get("height") or 0) < 3:
            out.append(f"{n}: height {s.get('height')}")
        peers = s.get("peers", [])
        if {p["node_id"] for p in peers} != {c["node_id"] for c in others.values()}:
            out.append(f"{n}: peers {sorted(p['node_id'] for p in peers)}")
        lbs = {c["lb_address"] for c in others.values()}
        dialled = {p["remote_ip"] for p in peers if p["outbound"]}
        if not dialled <= lbs:
            out.append(f"{n}: dialled {sorted(dialled)}, not LoadBalancers {sorted(map(str, lbs))}")
    commit = doc.get("last_commit", {})
    if not commit.get("signers") or commit["signers"] != commit.get("validators"):
        out.append(f"last block not signed by every validator: {commit}")
    elif len(commit["validators"]) != len(clusters):
        out.append(f"{len(commit['validators'])} validators, not one per cluster: {commit}")
    return out


def describe(n: str, s: dict[str, Any]) -> str:
    peers = ", ".join(
        f"{p['moniker']} {'->' if p['outbound'] else '<-'} {p['remote_address']}"
        for p in s.get("peers", [])
    )
    if s.get("height") is None:
        return f"{n}: LB {s['lb_address'] or '-'}, node not answering yet"
    return f"{n}: LB {s['lb_address'] or '-'}, height {s['height']}, peers [{peers or 'none'}]"


def summary(doc: dict[str, Any]) -> str:
    commit = doc.get("last_commit", {})
    lines = [
        f"consumer chain {doc['chain_id']} (consumer {doc['consumer_id']}, {doc['mode']} mode"
        f"{', rootless' if doc['rootless'] else ''}), P2P port {doc['p2p_port']}"
    ]
    if "signers" in commit:
        lines.append(
            f"block {commit['height']}: signed by {len(commit['signers'])} of "
            f"{len(commit['validators'])} validators"
        )
    for n in NAMES:
        s = doc["clusters"][n]
        lines.append(describe(n, s) + f"  (pod {s['pod_ip']}, node {s['node_id'][:12]}...)")
    return "\n".join(lines)


class _Control(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(root: Path, mode: str, rootless: bool, wait: float) -> int:
    """The supervisor: build, report, then keep everything running until told to stop."""
    if rootless:
        enter_private_run()
    stop = threading.Event()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    state: dict[str, Any] = {"supervisor": os.getpid(), "phase": "starting", "mode": mode,
                             "rootless": rootless, "started": time.time()}  # fmt: skip
    write_state(root, state)
    ln = Localnet(root, mode, rootless)

    def handle(command: str) -> dict[str, Any]:
        if command == "status":
            return ln.status() if state["phase"] == "ready" else {"phase": state["phase"]}
        if command == "service-status":
            return {"text": ln.service_status()}
        if command == "down":
            stop.set()
            done.wait(600)
            return {"ok": True}
        return {"error": f"unknown command {command!r}"}

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            command = self.rfile.readline().decode().strip()
            try:
                reply = handle(command)
            except Exception as e:  # one bad request must not stop the localnet
                reply = {"error": repr(e)}
            self.wfile.write(json.dumps(reply).encode() + b"\n")

    control_path(root).unlink(missing_ok=True)
    server = _Control(str(control_path(root)), Handler)
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
    rc = 0
    try:
        t0 = time.monotonic()
        ln.build()
        doc = ln.wait_converged(wait)
        print(summary(doc), flush=True)
        say(f"ready in {time.monotonic() - t0:.0f}s")
        state["phase"] = "ready"
        write_state(root, state)
        stop.wait()
    except BaseException as e:
        state["phase"] = "failed"
        state["error"] = str(e)
        write_state(root, state)
        traceback.print_exc()
        say(f"failed: {e}")
        rc = 1
    finally:
        say("stopping")
        with contextlib.suppress(Exception):
            ln.close()
        state["phase"] = "stopped"
        write_state(root, state)
        done.set()
        time.sleep(0.5)  # let a waiting `down` read its reply
        server.shutdown()
        server.server_close()
        control_path(root).unlink(missing_ok=True)
    return rc


# ---- the commands -----------------------------------------------------------------


def up(root: Path, mode: str, wait: float, userns: bool) -> int:
    doc = read_state(root)
    if supervisor_alive(doc):
        say(f"already running (state in {state_path(root)}); run `make localnet-down` first")
        return 1
    swept = sweep_leftovers(root)
    if swept:
        say(f"stopped {len(swept)} leftover processes of a crashed localnet")
    rootless = userns or os.geteuid() != 0
    if rootless:
        problem = userns_problem()
        if problem is not None:
            print(NO_USERNS_HELP.format(probe=" ".join([*USERNS, "true"]), why=problem),
                  file=sys.stderr)  # fmt: skip
            return 2
        say("not root: running the whole localnet in a user namespace of its own")
    if root.exists():
        shutil.rmtree(root)
    (root / "logs").mkdir(parents=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "_serve", "--dir", str(root),
            "--mode", mode, "--wait", str(wait), *(["--userns"] if rootless else [])]  # fmt: skip
    if rootless:
        argv = [*USERNS, *argv]
    log = root / "logs" / "localnet.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            start_new_session=True,
        )
    try:
        return follow(root, log, proc)
    except KeyboardInterrupt:
        say("interrupted: stopping the localnet")
        down(root)
        return 130


def follow(root: Path, log: Path, proc: subprocess.Popen[bytes]) -> int:
    """Print the supervisor's log until it is ready (0) or has failed (1)."""
    offset = 0
    while True:
        exited = proc.poll()
        phase = (read_state(root) or {}).get("phase")
        data = log.read_bytes()  # after the phase: all that was said before it is here
        if len(data) > offset:
            sys.stdout.write(data[offset:].decode(errors="replace"))
            sys.stdout.flush()
            offset = len(data)
        if phase == "ready":
            say(f"running; logs in {root / 'logs'}")
            say("status: python scripts/localnet.py status [--json]   stop: make localnet-down")
            return 0
        if exited is not None or phase in ("failed", "stopped"):
            if exited is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=600)
                sys.stdout.write(log.read_bytes()[offset:].decode(errors="replace"))
            say(f"start-up failed; logs in {root / 'logs'}")
            return 1
        time.sleep(0.3)


def down(root: Path) -> int:
    doc = read_state(root)
    pid = supervisor_alive(doc)
    if pid is not None:
        say("stopping (consumer nodes, services, MetalLB, kube-proxy, chain, control planes)")
        with contextlib.suppress(OSError, ValueError):
            ask(root, "down", timeout=600)
        deadline = time.monotonic() + 60
        while pids_alive([pid]) and time.monotonic() < deadline:
            time.sleep(0.2)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if pids_alive([pid]):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
                time.sleep(2)
    swept = sweep_leftovers(root)
    if swept:
        say(f"stopped {len(swept)} leftover processes")
    left = localnet_processes(root)
    for sub in ("clusters", "chain", "consumer", "keys", "run"):
        shutil.rmtree(root / sub, ignore_errors=True)
    state_path(root).unlink(missing_ok=True)
    control_path(root).unlink(missing_ok=True)
    if left:
        say(f"processes still alive: {left}")
        return 1
    say("stopped" + (f"; logs kept in {root / 'logs'}" if (root / "logs").exists() else ""))
    return 0


def status(root: Path, as_json: bool) -> int:
    if supervisor_alive(read_state(root)) is None:
        say("not running")
        return 1
    doc = ask(root, "status", timeout=120)
    if as_json:
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0 if "clusters" in doc else 1
    if "clusters" not in doc:
        say(f"not ready: {doc}")
        return 1
    print(summary(doc))
    print(ask(root, "service-status", timeout=180).get("text", ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("action", choices=("up", "down", "status", "_serve"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory")
    parser.add_argument("--mode", choices=MODES, default="restart",
                        help="how nodes learn their peers (default: restart)")  # fmt: skip
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait to converge")
    parser.add_argument("--json", action="store_true", help="status: print JSON")
    parser.add_argument(
        "--userns", action="store_true", help="run in a user namespace even as root"
    )
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    actions: dict[str, Callable[[], int]] = {
        "up": lambda: up(root, args.mode, args.wait, args.userns),
        "down": lambda: down(root),
        "status": lambda: status(root, args.json),
        "_serve": lambda: serve(root, args.mode, args.userns, args.wait),
    }
    try:
        return actions[args.action]()
    except (TestBedError, Died, OSError) as e:
        say(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
