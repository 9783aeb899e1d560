"""A real Interchain Security consumer chain, launched by the test provider chain.

After the provider launches a consumer (`ProviderChain.launch_consumer`), it
holds the consumer's genesis state (the `ccvconsumer` module's: parameters, the
provider's IBC client and consensus state, the initial validator set). This
module takes it with the provider's `consumer-genesis` query, puts it into a
genesis made by `interchain-security-cd init` (`consumer_genesis`, pure), and
prepares one node home per validator: that validator's consensus key (the
provider's `priv_validator_key.json`, or a key of the consumer's own that the
validator assigned with `assign-consensus-key` before launch: `new_consensus_key`),
a node key of its own. Each node runs inside a namespace of a `netlab.Network` (a consumer pod),
so every node can keep CometBFT's default ports; it listens on its pod address.

Where a node's peers come from is the caller's choice (`persistent_peers`); the
data plane tests hand it the other clusters' LoadBalancer addresses.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .chain import ProviderChain, ProviderValidator, node_id_from_key_file, update_toml
from .netlab import Network
from .procs import Process, TestBedError, tool

DAEMON: Final = "interchain-security-cd"
P2P_PORT: Final = 26656
RPC_PORT: Final = 26657
DENOM: Final = "stake"


def consumer_genesis(
    base: Mapping[str, Any],
    ccv_state: Mapping[str, Any],
    chain_id: str,
    genesis_time: dt.datetime,
) -> dict[str, Any]:
    """`base` (from `init`) with the provider's consumer genesis state as `ccvconsumer`."""
    if not ccv_state.get("new_chain"):
        raise TestBedError("the provider's consumer genesis is not for a new chain")
    if not (ccv_state.get("provider") or {}).get("initial_val_set"):
        raise TestBedError("the provider's consumer genesis has no initial validator set")
    doc = copy.deepcopy(dict(base))
    doc["chain_id"] = chain_id
    doc["genesis_time"] = genesis_time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc["initial_height"] = "1"
    doc["app_state"]["ccvconsumer"] = copy.deepcopy(dict(ccv_state))
    return doc


def query_consumer_genesis(provider: ProviderChain, consumer_id: str) -> dict[str, Any]:
    """The provider's `consumer-genesis` for a launched consumer."""
    node = provider.node()
    out = provider.cli(
        "query",
        "provider",
        "consumer-genesis",
        consumer_id,
        "--node",
        node.rpc_address,
        "--output",
        "json",
        home=node.home,
    )
    doc: dict[str, Any] = json.loads(out)
    return doc


class NodeRpcUnanswered(AssertionError):
    """A consumer node's RPC did not answer (yet) with a result."""


def node_rpc(prober: Any, ip: str, path: str, port: int = RPC_PORT) -> Any:
    """The `result` of a consumer node's RPC `path`, asked through a namespace's prober."""
    r = prober.get(ip, port, path, 5.0)
    if not r.get("ok") or r.get("status") != 200:
        raise NodeRpcUnanswered(f"RPC {ip}{path}: {r}")
    return json.loads(str(r["body"]))["result"]


@dataclass
class ConsumerNode:
    cluster: str
    validator: ProviderValidator
    home: Path
    netns: str
    address: str
    node_id: str = ""
    process: Process | None = None

    @property
    def moniker(self) -> str:
        return f"{self.cluster}-{self.validator.moniker}"


@dataclass
class ConsumerChain:
    """One consumer chain's node homes and processes (started inside pod namespaces)."""

    chain_id: str
    consumer_id: str
    workdir: Path
    nodes: dict[str, ConsumerNode] = field(default_factory=dict)
    timeout_commit: str = "200ms"
    started: list[int] = field(default_factory=list)
    # cluster -> the consumer consensus public key (JSON) assigned to its validator.
    assigned_keys: dict[str, str] = field(default_factory=dict)

    def _cli(self, *args: str, home: Path) -> str:
        done = subprocess.run(
            [str(tool(DAEMON)), *args, "--home", str(home)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise TestBedError(f"{DAEMON} {' '.join(args)}: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def new_consensus_key(self, cluster: str) -> str:
        """A consensus key of the consumer's own for `cluster`'s node (in its home, made now).

        Returns its public key as `tx provider assign-consensus-key` takes it
        (`tendermint show-validator`); `prepare` keeps it instead of copying the
        provider's key. Call it before the consumer launches and assign the key then.
        """
        home = self.workdir / cluster
        self._cli("init", cluster, "--chain-id", self.chain_id, home=home)
        pubkey = self._cli("tendermint", "show-validator", home=home).strip()
        self.assigned_keys[cluster] = pubkey
        return pubkey

    def prepare(
        self,
        provider: ProviderChain,
        placement: Mapping[str, tuple[ProviderValidator, str, str]],
    ) -> None:
        """Homes for `placement` (cluster -> validator, pod netns, pod address) and genesis."""
        ccv = query_consumer_genesis(provider, self.consumer_id)
        genesis: dict[str, Any] | None = None
        for cluster, (validator, netns, address) in placement.items():
            home = self.workdir / cluster
            assigned = cluster in self.assigned_keys
            self._cli("init", f"{cluster}-{validator.moniker}", "--chain-id", self.chain_id,
                      *(["--overwrite"] if assigned else []), home=home)  # fmt: skip
            if not assigned:
                # The validator signs with its provider consensus key (none assigned).
                shutil.copyfile(
                    validator.node.home / "config" / "priv_validator_key.json",
                    home / "config" / "priv_validator_key.json",
                )
            node = ConsumerNode(cluster, validator, home, netns, address)
            node.node_id = node_id_from_key_file(home / "config" / "node_key.json")
            self.nodes[cluster] = node
            if genesis is None:
                base = json.loads((home / "config" / "genesis.json").read_text())
                genesis = consumer_genesis(base, ccv, self.chain_id, dt.datetime.now(dt.UTC))
        assert genesis is not None
        for node in self.nodes.values():
            (node.home / "config" / "genesis.json").write_text(json.dumps(genesis, indent=1))

    def configure(
        self,
        cluster: str,
        *,
        peers: Sequence[str],
        external_address: str,
        unsafe_rpc: bool = False,
    ) -> None:
        """config.toml/app.toml: listen on the pod address, dial `peers` (id@host:port).

        `unsafe_rpc` opens CometBFT's unsafe RPC methods (`dial_peers`, for `dial` mode).
        """
        node = self.nodes[cluster]
        cfg = node.home / "config"
        update_toml(
            cfg / "config.toml",
            {
                "moniker": node.moniker,
                "rpc": {
                    "laddr": f"tcp://{node.address}:{RPC_PORT}",
                    "pprof_laddr": "",
                    "unsafe": unsafe_rpc,
                },
                "p2p": {
                    "laddr": f"tcp://{node.address}:{P2P_PORT}",
                    "external_address": external_address,
                    "persistent_peers": ",".join(peers),
                    "seeds": "",
                    "pex": False,
                    # Private addresses (the shared subnet) and, behind kube-proxy's
                    # masquerade, several peers arriving from one node address.
                    "addr_book_strict": False,
                    "allow_duplicate_ip": True,
                    "flush_throttle_timeout": "10ms",
                    "persistent_peers_max_dial_period": "2s",
                },
                "consensus": {
                    "timeout_commit": self.timeout_commit,
                    "timeout_propose": "1s",
                    "peer_gossip_sleep_duration": "10ms",
                },
                "instrumentation": {"prometheus": False},
            },
        )
        update_toml(
            cfg / "app.toml",
            {
                "minimum-gas-prices": f"0{DENOM}",
                "api": {"enable": False},
                "grpc": {"enable": False},
                "telemetry": {"enabled": False},
                "state-sync": {"snapshot-interval": 0},
            },
        )

    def use_node_key(self, cluster: str, node_key_json: bytes) -> None:
        """Replace a node's key (e.g. the one derived from the validator's secret)."""
        node = self.nodes[cluster]
        path = node.home / "config" / "node_key.json"
        path.write_bytes(node_key_json)
        path.chmod(0o600)
        node.node_id = node_id_from_key_file(path)

    def set_address(self, cluster: str, address: str) -> None:
        """The pod came back with a new address: listen there."""
        node = self.nodes[cluster]
        node.address = address
        update_toml(node.home / "config" / "config.toml", {
            "rpc": {"laddr": f"tcp://{address}:{RPC_PORT}"},
            "p2p": {"laddr": f"tcp://{address}:{P2P_PORT}"},
        })  # fmt: skip

    def set_peers(self, cluster: str, peers: str) -> None:
        """Only `persistent_peers` in config.toml (what an init container renders)."""
        update_toml(self.nodes[cluster].home / "config" / "config.toml",
                    {"p2p": {"persistent_peers": peers}})  # fmt: skip

    def start(self, net: Network, cluster: str) -> Process:
        node = self.nodes[cluster]
        node.process = net.start(
            f"consumer-{self.chain_id}-{cluster}",
            node.netns,
            [str(tool(DAEMON)), "start", "--home", str(node.home), "--log_no_color"],
        )
        self.started.append(node.process.pid)
        return node.process

    def stop_node(self, cluster: str) -> None:
        node = self.nodes[cluster]
        if node.process is not None:
            node.process.stop(grace=10)
            node.process = None

    def stop(self) -> None:
        for cluster in self.nodes:
            self.stop_node(cluster)

    def pids(self) -> list[int]:
        """Every node process ever started here (restarts included)."""
        return list(self.started)

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        return {n.moniker: n.process.log_tail(lines) for n in self.nodes.values() if n.process}


__all__ = [
    "DAEMON",
    "P2P_PORT",
    "RPC_PORT",
    "ConsumerChain",
    "ConsumerNode",
    "consumer_genesis",
    "query_consumer_genesis",
]
