"""A real Interchain Security provider chain on 127.0.0.1, for integration tests.

The chain monitor, the registry and endpoint publication must be proven against
real blocks, real transactions and real WebSocket events, so this module builds a
genesis with the provider daemon's own CLI (init, keys add with the test keyring,
bulk-add-genesis-account, gentx, collect-gentxs), renders each node's
config.toml, app.toml and client.toml as data, starts one node per validator
peered with all the others, and submits real transactions through the daemon's
CLI, waiting for their inclusion and checking their result code.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import tomli_w

from .polling import any_error, wait_until
from .procs import Process, TestBedError, free_ports, tool

DAEMON: Final = "interchain-security-pd"
DENOM: Final = "stake"
ACCOUNT_BALANCE: Final = 1_000_000_000_000
SELF_DELEGATION: Final = 100_000_000
# Opted-in set changes reach a launched consumer's validator set only at epoch
# boundaries; the upstream default (600 blocks) would make tests wait minutes.
BLOCKS_PER_EPOCH: Final = 5
# A fixed gas limit saves the simulation round trip of `--gas auto`; the
# nodes accept zero fees (`minimum-gas-prices = "0stake"`).
TX_GAS: Final = 2_000_000
KEYRING: Final = ("--keyring-backend", "test")

ConsumerPhase = Literal[
    "CONSUMER_PHASE_UNSPECIFIED",
    "CONSUMER_PHASE_REGISTERED",
    "CONSUMER_PHASE_INITIALIZED",
    "CONSUMER_PHASE_LAUNCHED",
    "CONSUMER_PHASE_STOPPED",
    "CONSUMER_PHASE_DELETED",
]


class ChainTxError(TestBedError):
    """A transaction was refused by CheckTx or failed when executed in its block."""

    def __init__(self, what: str, code: int, log: str, txhash: str | None = None) -> None:
        self.what = what
        self.code = code
        self.log = log
        self.txhash = txhash
        super().__init__(f"{what}: code {code} (tx {txhash or '-'}): {log}")


class ChainQueryError(TestBedError):
    """A REST or RPC query to a node answered with an error."""

    def __init__(self, url: str, status: int | None, body: str) -> None:
        self.url = url
        self.status = status
        self.body = body
        super().__init__(
            f"GET {url}: {status if status is not None else 'no answer'}: {body[:500]}"
        )


# ---- pure helpers ---------------------------------------------------------------

_BECH32_ALPHABET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values: Iterable[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= generator[i] if (top >> i) & 1 else 0
    return chk


def bech32_encode(prefix: str, data: bytes) -> str:
    """BIP-173 bech32 of `data` (the Cosmos SDK's address encoding)."""
    acc, bits, five = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in prefix] + [0] + [ord(c) & 31 for c in prefix]
    polymod = _bech32_polymod([*expanded, *five, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return prefix + "1" + "".join(_BECH32_ALPHABET[d] for d in five + checksum)


def bech32_decode(address: str) -> tuple[str, bytes]:
    """Prefix and payload of a bech32 address; ValueError when the checksum is wrong."""
    prefix, _, rest = address.lower().rpartition("1")
    if not prefix or len(rest) < 6:
        raise ValueError(f"not a bech32 address: {address!r}")
    five = [_BECH32_ALPHABET.index(c) for c in rest]
    expanded = [ord(c) >> 5 for c in prefix] + [0] + [ord(c) & 31 for c in prefix]
    if _bech32_polymod(expanded + five) != 1:
        raise ValueError(f"bad bech32 checksum: {address!r}")
    acc, bits, out = 0, 0, bytearray()
    for v in five[:-6]:
        acc = (acc << 5) | v
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    return prefix, bytes(out)


def consensus_address(ed25519_pubkey: bytes) -> str:
    """`cosmosvalcons1...` of a CometBFT ed25519 consensus key (first 20 bytes of SHA-256)."""
    return bech32_encode("cosmosvalcons", hashlib.sha256(ed25519_pubkey).digest()[:20])


def operator_address(account: str) -> str:
    """The `cosmosvaloper1...` address with the same bytes as account `cosmos1...`."""
    _, payload = bech32_decode(account)
    return bech32_encode("cosmosvaloper", payload)


def node_id_from_key_file(path: Path) -> str:
    """CometBFT node ID: hex of the first 20 bytes of SHA-256 of the node's ed25519 public key."""
    doc = json.loads(path.read_text())
    raw = base64.b64decode(doc["priv_key"]["value"])
    return hashlib.sha256(raw[32:]).hexdigest()[:40]


_REVISION_FORMAT: Final = re.compile(r"^.*[^\n-]-{1}[1-9][0-9]*$")


def revision_number(chain_id: str) -> int:
    """IBC revision number of a chain ID (`name-N` gives N, else 0), as ibc-go parses it."""
    if not _REVISION_FORMAT.match(chain_id):
        return 0
    return int(chain_id.rsplit("-", 1)[1])


def rfc3339(t: dt.datetime) -> str:
    """UTC RFC 3339 with microseconds, the form Go's time.Time JSON decoding accepts."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> dt.datetime:
    """Parse CometBFT's RFC 3339 timestamps (nanoseconds are cut to microseconds)."""
    m = re.fullmatch(r"(.+?T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")


def consumer_initialization_parameters(
    consumer_chain_id: str, spawn_time: dt.datetime | None
) -> dict[str, Any]:
    """`ConsumerInitializationParameters` as the CLI's JSON decoding expects them.

    Durations are nanoseconds; the initial height's revision must match the chain
    ID's, or the provider cannot create the consumer's IBC client at launch.
    """
    return {
        "initial_height": {
            "revision_number": revision_number(consumer_chain_id),
            "revision_height": 1,
        },
        "genesis_hash": "",
        "binary_hash": "",
        # The zero time leaves the chain REGISTERED: it cannot launch until a spawn time is set.
        "spawn_time": rfc3339(spawn_time) if spawn_time else "0001-01-01T00:00:00Z",
        "unbonding_period": 1_728_000_000_000_000,
        "ccv_timeout_period": 2_419_200_000_000_000,
        "transfer_timeout_period": 1_800_000_000_000,
        "consumer_redistribution_fraction": "0.75",
        "blocks_per_distribution_transmission": 1000,
        "historical_entries": 10000,
        "distribution_transmission_channel": "",
        "connection_id": "",
    }


def merge(doc: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `changes` into `doc` (in place) and return it."""
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(doc.get(key), dict):
            merge(doc[key], value)
        else:
            doc[key] = value
    return doc


def update_toml(path: Path, changes: Mapping[str, Any]) -> None:
    """Merge `changes` into a TOML file, parsed and written as data (comments are lost)."""
    doc = tomllib.loads(path.read_text())
    path.write_text(tomli_w.dumps(merge(doc, changes)))


def update_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc: dict[str, Any] = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=1))


# ---- data handed to tests ------------------------------------------------------


@dataclass(frozen=True)
class NodePorts:
    rpc: int
    p2p: int
    grpc: int
    api: int
    abci: int


@dataclass
class ProviderNode:
    """One CometBFT + provider app process, with its home and addresses."""

    index: int
    moniker: str
    home: Path
    ports: NodePorts
    log_path: Path
    node_id: str = ""
    process: Process | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.rpc}"

    @property
    def rpc_address(self) -> str:
        """The `--node` form the daemon's CLI takes."""
        return f"tcp://127.0.0.1:{self.ports.rpc}"

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.ports.rpc}/websocket"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def p2p_peer(self) -> str:
        return f"{self.node_id}@127.0.0.1:{self.ports.p2p}"


@dataclass(frozen=True)
class ProviderValidator:
    """A genesis validator: its key in the node's test keyring and its addresses."""

    index: int
    moniker: str
    key_name: str
    account: str  # cosmos1...
    operator: str  # cosmosvaloper1...
    consensus: str  # cosmosvalcons1...
    consensus_pubkey: str  # base64 ed25519, as the staking query shows it
    node: ProviderNode


@dataclass(frozen=True)
class TxResult:
    """A transaction included in a block, with its events as the RPC shows them."""

    txhash: str
    height: int
    code: int
    log: str
    events: tuple[dict[str, Any], ...]

    def attributes(self, event_type: str) -> list[dict[str, str]]:
        """Attributes of every event of `event_type`, as key -> value maps."""
        return [
            {str(a["key"]): str(a.get("value", "")) for a in e.get("attributes", [])}
            for e in self.events
            if e.get("type") == event_type
        ]

    def attribute(self, event_type: str, key: str) -> str:
        for attrs in self.attributes(event_type):
            if key in attrs:
                return attrs[key]
        raise KeyError(f"tx {self.txhash} has no {event_type}.{key}")


# ---- the chain -------------------------------------------------------------------


@dataclass
class ProviderChain:
    """A provider chain of `size` validators, one node each, rooted in `workdir`."""

    name: str
    workdir: Path
    size: int = 1
    chain_id: str = "provider"
    timeout_commit: str = "200ms"
    # Each node's minimum-gas-prices (in stake): above 0, transactions must pay fees.
    min_gas_price: str = "0"
    # Applied to the final genesis (after collect-gentxs), e.g. to add validators
    # that run no node (benchmarks); None: the genesis as built.
    genesis_edit: Callable[[dict[str, Any]], None] | None = None
    nodes: list[ProviderNode] = field(default_factory=list, init=False)
    validators: list[ProviderValidator] = field(default_factory=list, init=False)
    startup_seconds: float = field(default=0.0, init=False)
    _binary: Path | None = field(default=None, init=False)
    _key_locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _stopped_nodes: dict[int, Process] = field(default_factory=dict, init=False)

    # ---- lifecycle ----------------------------------------------------------

    def start(self) -> ProviderChain:
        if self.size < 1:
            raise TestBedError(f"{self.name}: a chain needs at least one validator")
        t0 = time.monotonic()
        self._binary = tool(DAEMON)
        if self.workdir.exists() and any(self.workdir.iterdir()):
            raise TestBedError(f"{self.name}: {self.workdir} is not empty")
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(5 * self.size)
        for i in range(self.size):
            p = ports[5 * i : 5 * i + 5]
            self.nodes.append(
                ProviderNode(
                    index=i,
                    moniker=f"val{i}",
                    home=self.workdir / f"val{i}",
                    ports=NodePorts(rpc=p[0], p2p=p[1], grpc=p[2], api=p[3], abci=p[4]),
                    log_path=self.workdir / "logs" / f"val{i}.log",
                )
            )
        self._build_genesis()
        for node in self.nodes:
            self._render_config(node)
        for node in self.nodes:
            node.process = Process(
                f"{self.name}/{node.moniker}",
                [str(self._binary), "start", "--home", str(node.home), "--log_no_color"],
                node.log_path,
            )
            node.process.start()
        self._wait_until_producing()
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop every node (SIGTERM to all first, so they shut down in parallel)."""
        running = [n.process for n in self.nodes if n.process is not None]
        if not running:
            return
        with ThreadPoolExecutor(len(running)) as pool:
            list(pool.map(lambda p: p.stop(), running))

    def stop_node(self, node: ProviderNode | int) -> None:
        """Stop one node (SIGTERM, wait); its home, ports and log stay for `start_node`.

        A stopped node is set aside (`process` None) so that the liveness checks of
        the other helpers do not take it for a crash.
        """
        n = self.node(node)
        if n.process is None:
            raise TestBedError(f"{self.name}: {n.moniker} is not running")
        n.process.stop()
        self._stopped_nodes[n.index] = n.process
        n.process = None

    def start_node(self, node: ProviderNode | int, timeout: float = 60) -> None:
        """Start a node stopped by `stop_node` again (same argv); wait until its RPC answers."""
        n = self.node(node)
        process = self._stopped_nodes.pop(n.index, None)
        if process is None:
            raise TestBedError(f"{self.name}: {n.moniker} was not stopped with stop_node")
        process.start()
        n.process = process
        wait_until(
            f"{self.name}: {n.moniker} RPC after restart",
            lambda: self.height(n) >= 1,
            timeout=timeout,
            alive=self._alive,
            not_yet=any_error,
        )

    @property
    def pids(self) -> list[int]:
        return [n.process.pid for n in self.nodes if n.process and n.process.popen]

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        return {
            f"{self.name}/{n.moniker}": n.process.log_tail(lines) for n in self.nodes if n.process
        }

    def _alive(self) -> str | None:
        for node in self.nodes:
            if node.process is not None:
                reason = node.process.exit_reason()
                if reason:
                    return reason
        return None

    # ---- genesis and configuration -----------------------------------------

    def cli(self, *args: str, home: Path, timeout: float = 60) -> str:
        """Run the daemon's CLI with `--home`; its stdout, or an error with its stderr."""
        assert self._binary is not None
        argv = [str(self._binary), *args, "--home", str(home)]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise TestBedError(f"{DAEMON} {' '.join(args[:3])} timed out after {timeout}s") from e
        if done.returncode != 0:
            raise TestBedError(
                f"{DAEMON} {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
            )
        return done.stdout

    def _build_genesis(self) -> None:
        def init_node(node: ProviderNode) -> dict[str, Any]:
            self.cli("init", node.moniker, "--chain-id", self.chain_id, home=node.home)
            # --no-backup: the mnemonic is never printed, so it cannot reach a log.
            out = self.cli(
                "keys",
                "add",
                node.moniker,
                *KEYRING,
                "--no-backup",
                "--output",
                "json",
                home=node.home,
            )
            key: dict[str, Any] = json.loads(out)
            return key

        with ThreadPoolExecutor(self.size) as pool:
            keys = list(pool.map(init_node, self.nodes))

        first = self.nodes[0]
        genesis_path = first.home / "config" / "genesis.json"
        accounts = self.workdir / "accounts.json"
        accounts.write_text(
            json.dumps(
                [
                    {
                        "address": k["address"],
                        "coins": [{"denom": DENOM, "amount": str(ACCOUNT_BALANCE)}],
                    }
                    for k in keys
                ]
            )
        )
        self.cli("genesis", "bulk-add-genesis-account", str(accounts), home=first.home)
        update_json(genesis_path, _fast_test_genesis)
        for node in self.nodes[1:]:
            shutil.copyfile(genesis_path, node.home / "config" / "genesis.json")

        gentx_dir = self.workdir / "gentx"
        gentx_dir.mkdir()

        def gentx(node: ProviderNode) -> dict[str, Any]:
            path = gentx_dir / f"gentx-{node.moniker}.json"
            self.cli(
                "genesis",
                "gentx",
                node.moniker,
                f"{SELF_DELEGATION}{DENOM}",
                "--chain-id",
                self.chain_id,
                *KEYRING,
                "--ip",
                "127.0.0.1",
                "--output-document",
                str(path),
                home=node.home,
            )
            doc: dict[str, Any] = json.loads(path.read_text())
            return doc

        with ThreadPoolExecutor(self.size) as pool:
            gentxs = list(pool.map(gentx, self.nodes))
        self.cli("genesis", "collect-gentxs", "--gentx-dir", str(gentx_dir), home=first.home)
        if self.genesis_edit is not None:
            update_json(genesis_path, self.genesis_edit)
        for node in self.nodes[1:]:
            shutil.copyfile(genesis_path, node.home / "config" / "genesis.json")

        for node, key, tx in zip(self.nodes, keys, gentxs, strict=True):
            node.node_id = node_id_from_key_file(node.home / "config" / "node_key.json")
            msg = tx["body"]["messages"][0]
            pubkey_b64 = str(msg["pubkey"]["key"])
            pv = json.loads((node.home / "config" / "priv_validator_key.json").read_text())
            if pv["pub_key"]["value"] != pubkey_b64:
                raise TestBedError(
                    f"{node.moniker}: gentx pubkey differs from priv_validator_key.json"
                )
            self.validators.append(
                ProviderValidator(
                    index=node.index,
                    moniker=node.moniker,
                    key_name=node.moniker,
                    account=str(key["address"]),
                    operator=str(msg["validator_address"]),
                    consensus=consensus_address(base64.b64decode(pubkey_b64)),
                    consensus_pubkey=pubkey_b64,
                    node=node,
                )
            )
            self._key_locks[node.moniker] = threading.Lock()

    def _render_config(self, node: ProviderNode) -> None:
        cfg = node.home / "config"
        peers = ",".join(n.p2p_peer for n in self.nodes if n is not node)
        update_toml(
            cfg / "config.toml",
            {
                "moniker": node.moniker,
                "proxy_app": f"tcp://127.0.0.1:{node.ports.abci}",
                "rpc": {
                    "laddr": f"tcp://127.0.0.1:{node.ports.rpc}",
                    "grpc_laddr": "",
                    "pprof_laddr": "",
                },
                "p2p": {
                    "laddr": f"tcp://127.0.0.1:{node.ports.p2p}",
                    "external_address": "",
                    "persistent_peers": peers,
                    "seeds": "",
                    "pex": False,
                    # Several nodes share one host and loopback address.
                    "addr_book_strict": False,
                    "allow_duplicate_ip": True,
                    # The 100 ms default batches every consensus message on each
                    # hop; on loopback that alone makes a 3-node block take ~0.6 s.
                    "flush_throttle_timeout": "10ms",
                },
                "consensus": {
                    "timeout_commit": self.timeout_commit,
                    "timeout_propose": "500ms",
                    "create_empty_blocks": True,
                    "peer_gossip_sleep_duration": "10ms",
                },
                "instrumentation": {"prometheus": False},
                "tx_index": {"indexer": "kv"},
            },
        )
        update_toml(
            cfg / "app.toml",
            {
                "minimum-gas-prices": f"{self.min_gas_price}{DENOM}",
                "api": {
                    "enable": True,
                    "swagger": False,
                    "address": f"tcp://127.0.0.1:{node.ports.api}",
                },
                "grpc": {"enable": True, "address": f"127.0.0.1:{node.ports.grpc}"},
                "telemetry": {"enabled": False},
                "state-sync": {"snapshot-interval": 0},
            },
        )
        update_toml(
            cfg / "client.toml",
            {
                "chain-id": self.chain_id,
                "keyring-backend": "test",
                "output": "json",
                "node": node.rpc_address,
                "broadcast-mode": "sync",
            },
        )

    def _wait_until_producing(self) -> None:
        self.wait_for_height(1, timeout=60)
        for node in self.nodes:
            wait_until(
                f"{self.name}: {node.moniker} REST API",
                functools.partial(self._rest_answers, node),
                timeout=60,
                alive=self._alive,
                not_yet=any_error,
            )
        # The chain itself must agree with the addresses handed to tests.
        chain_set = {
            v["address"]: v["pub_key"]["key"]
            for v in self.rest_get("/cosmos/base/tendermint/v1beta1/validatorsets/latest")[
                "validators"
            ]
        }
        ours = {v.consensus: v.consensus_pubkey for v in self.validators}
        if chain_set != ours:
            raise TestBedError(
                f"{self.name}: validator set {chain_set} differs from genesis {ours}"
            )
        start = self.height()
        self.wait_for_height(start + 1)

    # ---- queries -----------------------------------------------------------------

    def node(self, node: ProviderNode | int | None = None) -> ProviderNode:
        if node is None:
            return self.nodes[0]
        if isinstance(node, int):
            return self.nodes[node]
        return node

    def rest_get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        node: ProviderNode | int | None = None,
    ) -> Any:
        url = self.node(node).rest_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        return _get_json(url)

    def stake_balance(self, account: str) -> int:
        """The account's balance in the chain's staking denomination."""
        doc = self.rest_get(f"/cosmos/bank/v1beta1/balances/{account}/by_denom", {"denom": DENOM})
        return int(doc["balance"]["amount"])

    def rpc_get(self, method: str, node: ProviderNode | int | None = None, **params: str) -> Any:
        url = f"{self.node(node).rpc_url}/{method}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        doc = _get_json(url)
        if "error" in doc:
            raise ChainQueryError(url, 200, json.dumps(doc["error"]))
        return doc["result"]

    def height(self, node: ProviderNode | int | None = None) -> int:
        return int(self.rpc_get("status", node=node)["sync_info"]["latest_block_height"])

    def wait_for_height(self, height: int, timeout: float = 60) -> int:
        """Wait until every node has committed `height`; the first node's height then."""
        for node in self.nodes:
            wait_until(
                f"{self.name}: {node.moniker} at height {height}",
                functools.partial(self._reached, node, height),
                timeout=timeout,
                alive=self._alive,
                not_yet=any_error,
            )
        return self.height()

    def _reached(self, node: ProviderNode, height: int) -> bool:
        return self.height(node) >= height

    def _rest_answers(self, node: ProviderNode) -> bool:
        return "syncing" in self.rest_get("/cosmos/base/tendermint/v1beta1/syncing", node=node)

    def block_time(self, height: int) -> dt.datetime:
        header = self.rpc_get("header", height=str(height))["header"]
        return parse_rfc3339(header["time"])

    def average_block_seconds(self, first: int, last: int) -> float:
        if last <= first:
            raise ValueError("need at least two heights")
        span = self.block_time(last) - self.block_time(first)
        return span.total_seconds() / (last - first)

    def staking_validators(self, status: str = "") -> list[dict[str, Any]]:
        """Every validator from the staking `Validators` query (all pages)."""
        out: list[dict[str, Any]] = []
        key = ""
        while True:
            params = {"pagination.limit": "100"}
            if status:
                params["status"] = status
            if key:
                params["pagination.key"] = key
            page = self.rest_get("/cosmos/staking/v1beta1/validators", params)
            out.extend(page["validators"])
            key = (page.get("pagination") or {}).get("next_key") or ""
            if not key:
                return out

    def staking_validator(self, operator: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.rest_get(f"/cosmos/staking/v1beta1/validators/{operator}")[
            "validator"
        ]
        return doc

    def consumer_chain(self, consumer_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.rest_get(
            f"/interchain_security/ccv/provider/consumer_chain/{consumer_id}"
        )
        return doc

    def consumer_chains(self, phase: ConsumerPhase | None = None) -> list[dict[str, Any]]:
        chains: list[dict[str, Any]] = self.rest_get(
            "/interchain_security/ccv/provider/consumer_chains/"
            + (phase or "CONSUMER_PHASE_UNSPECIFIED"),
            {"pagination.limit": "1000"},
        )["chains"]
        return chains

    def consumer_phase(self, consumer_id: str) -> str:
        return str(self.consumer_chain(consumer_id)["phase"])

    def opted_in_validators_raw(self, consumer_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.rest_get(
            f"/interchain_security/ccv/provider/opted_in_validators/{consumer_id}"
        )
        return doc

    def opted_in_validators(self, consumer_id: str) -> list[str]:
        """Consensus addresses (`cosmosvalcons1...`) opted in to the consumer, sorted."""
        return sorted(self.opted_in_validators_raw(consumer_id)["validators_provider_addresses"])

    def wait_for_consumer_phase(
        self, consumer_id: str, phases: Sequence[ConsumerPhase], timeout: float = 60
    ) -> str:
        seen: list[str] = []

        def reached() -> bool:
            seen.append(self.consumer_phase(consumer_id))
            return seen[-1] in phases

        wait_until(
            f"{self.name}: consumer {consumer_id} in {'/'.join(phases)}",
            reached,
            timeout=timeout,
            interval=0.1,
            alive=self._alive,
            not_yet=any_error,
        )
        return seen[-1]

    # ---- transactions ----------------------------------------------------------

    def validator(self, which: ProviderValidator | int) -> ProviderValidator:
        return self.validators[which] if isinstance(which, int) else which

    def tx(
        self, signer: ProviderValidator | int, *args: str, gas: int = TX_GAS, timeout: float = 60
    ) -> TxResult:
        """Sign `tx <args>` with the signer's key, broadcast, wait for its block, check its code."""
        v = self.validator(signer)
        what = f"tx {' '.join(args[:2])} by {v.key_name}"
        # One account's transactions must not overlap: the CLI reads the account
        # sequence from committed state, so a second tx before the first is in a
        # block would reuse its sequence number.
        with self._key_locks[v.key_name]:
            out = self.cli(
                "tx",
                *args,
                "--from",
                v.key_name,
                *KEYRING,
                "--chain-id",
                self.chain_id,
                "--node",
                v.node.rpc_address,
                "--broadcast-mode",
                "sync",
                "--gas",
                str(gas),
                "--yes",
                "--output",
                "json",
                home=v.node.home,
            )
            try:
                sent = json.loads(out)
            except json.JSONDecodeError as e:
                raise TestBedError(f"{what}: unexpected CLI output {out[:500]!r}") from e
            if int(sent.get("code", 0)) != 0:
                raise ChainTxError(
                    what, int(sent["code"]), str(sent.get("raw_log", "")), sent.get("txhash")
                )
            return self.wait_for_tx(str(sent["txhash"]), what, timeout)

    def wait_for_tx(self, txhash: str, what: str = "tx", timeout: float = 60) -> TxResult:
        found: list[dict[str, Any]] = []

        def included() -> bool:
            try:
                found.append(self.rpc_get("tx", hash=f"0x{txhash}"))
            except ChainQueryError as e:
                if "not found" in e.body:
                    return False
                raise
            return True

        wait_until(
            f"{self.name}: {what} {txhash} in a block",
            included,
            timeout=timeout,
            alive=self._alive,
            not_yet=any_error,
        )
        doc = found[-1]
        result = doc["tx_result"]
        tx = TxResult(
            txhash=txhash,
            height=int(doc["height"]),
            code=int(result.get("code", 0)),
            log=str(result.get("log", "")),
            events=tuple(result.get("events", [])),
        )
        if tx.code != 0:
            raise ChainTxError(what, tx.code, tx.log, txhash)
        return tx

    def edit_validator(
        self,
        validator: ProviderValidator | int,
        *,
        details: str | None = None,
        moniker: str | None = None,
        website: str | None = None,
        identity: str | None = None,
        security_contact: str | None = None,
    ) -> TxResult:
        """`MsgEditValidator` changing only the given description fields."""
        flags: list[str] = []
        for flag, value in (
            ("--details", details),
            ("--new-moniker", moniker),
            ("--website", website),
            ("--identity", identity),
            ("--security-contact", security_contact),
        ):
            if value is not None:
                flags += [flag, value]
        return self.tx(validator, "staking", "edit-validator", *flags)

    def create_consumer(
        self,
        owner: ProviderValidator | int,
        consumer_chain_id: str,
        spawn_time: dt.datetime | None,
        name: str | None = None,
    ) -> tuple[str, TxResult]:
        """Permissionless `MsgCreateConsumer` (an opt-in chain); its consumer ID and tx."""
        doc = {
            "chain_id": consumer_chain_id,
            "metadata": {
                "name": name or consumer_chain_id,
                "description": f"test consumer {consumer_chain_id}",
                "metadata": json.dumps({"stage": "test"}),
            },
            "initialization_parameters": consumer_initialization_parameters(
                consumer_chain_id, spawn_time
            ),
        }
        path = self._write_msg(f"create-{consumer_chain_id}", doc)
        tx = self.tx(owner, "provider", "create-consumer", str(path))
        return tx.attribute("create_consumer", "consumer_id"), tx

    def set_consumer_spawn_time(
        self,
        owner: ProviderValidator | int,
        consumer_id: str,
        consumer_chain_id: str,
        spawn_time: dt.datetime,
    ) -> TxResult:
        """`MsgUpdateConsumer` replacing the initialization parameters with a new spawn time."""
        doc = {
            "consumer_id": consumer_id,
            "initialization_parameters": consumer_initialization_parameters(
                consumer_chain_id, spawn_time
            ),
        }
        path = self._write_msg(f"update-{consumer_id}", doc)
        return self.tx(owner, "provider", "update-consumer", str(path))

    def opt_in(self, validator: ProviderValidator | int, consumer_id: str) -> TxResult:
        return self.tx(validator, "provider", "opt-in", consumer_id)

    def assign_consensus_key(
        self, validator: ProviderValidator | int, consumer_id: str, pubkey_json: str
    ) -> TxResult:
        """`tx provider assign-consensus-key`: the validator signs the consumer with this key."""
        return self.tx(validator, "provider", "assign-consensus-key", consumer_id, pubkey_json)

    def opt_out(self, validator: ProviderValidator | int, consumer_id: str) -> TxResult:
        return self.tx(validator, "provider", "opt-out", consumer_id)

    def remove_consumer(self, owner: ProviderValidator | int, consumer_id: str) -> TxResult:
        return self.tx(owner, "provider", "remove-consumer", consumer_id)

    def launch_consumer(
        self,
        consumer_chain_id: str,
        validators: Sequence[ProviderValidator | int] | None = None,
        owner: ProviderValidator | int = 0,
        spawn_delay: float | None = 2.0,
        timeout: float = 60,
        assign_keys: Mapping[int, str] | None = None,
    ) -> str:
        """Create a consumer spawning in `spawn_delay` s, opt `validators` in, wait for LAUNCHED.

        `assign_keys` (validator index -> consumer consensus public key, as JSON)
        assigns those validators a key of their own on the consumer, before they opt in.
        With `spawn_delay=None` the spawn time is set only once every opt-in (and key
        assignment) is in a block: all of them are in the initial validator set.

        The provider launches at the first block past the spawn time if a
        validator has opted in by then; otherwise it moves the chain back to
        REGISTERED and clears the spawn time. On a slow machine the opt-ins can
        land after the spawn time, so that case is detected from the phase and
        the spawn time set again to now (it is in the past when the next block
        comes, so the chain launches there).
        """
        chosen = [
            self.validator(v) for v in (validators if validators is not None else self.validators)
        ]
        if not chosen:
            raise TestBedError("a consumer chain cannot launch without an opted-in validator")
        spawn = (
            None
            if spawn_delay is None
            else dt.datetime.now(dt.UTC) + dt.timedelta(seconds=spawn_delay)
        )
        consumer_id, _ = self.create_consumer(owner, consumer_chain_id, spawn)
        keys = dict(assign_keys or {})

        def join(v: ProviderValidator) -> None:
            if v.index in keys:
                self.assign_consensus_key(v, consumer_id, keys[v.index])
            self.opt_in(v, consumer_id)

        with ThreadPoolExecutor(len(chosen)) as pool:
            list(pool.map(join, chosen))
        phase = self.wait_for_consumer_phase(
            consumer_id,
            ("CONSUMER_PHASE_LAUNCHED", "CONSUMER_PHASE_REGISTERED"),
            timeout=(spawn_delay or 0) + timeout,
        )
        if phase == "CONSUMER_PHASE_REGISTERED":
            self.set_consumer_spawn_time(
                owner, consumer_id, consumer_chain_id, dt.datetime.now(dt.UTC)
            )
            self.wait_for_consumer_phase(consumer_id, ("CONSUMER_PHASE_LAUNCHED",), timeout=timeout)
        return consumer_id

    def _write_msg(self, stem: str, doc: Mapping[str, Any]) -> Path:
        folder = self.workdir / "msgs"
        folder.mkdir(exist_ok=True)
        path = folder / f"{stem}-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(doc, indent=1))
        return path


def export_key_hex(chain: ProviderChain, validator: ProviderValidator) -> str:
    """The validator account's secp256k1 private key, hex, from its node's test keyring."""
    done = subprocess.run(
        [
            str(tool(DAEMON)),
            "keys",
            "export",
            validator.key_name,
            "--unarmored-hex",
            "--unsafe",
            *KEYRING,
            "--home",
            str(validator.node.home),
        ],
        input="y\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise TestBedError(f"keys export {validator.key_name}: {done.stderr.strip()[-500:]}")
    # The confirmation prompt goes to stderr; stdout is the key alone.
    key = done.stdout.strip().splitlines()[-1].strip()
    if len(key) != 64:
        raise TestBedError(f"keys export {validator.key_name}: unexpected output shape")
    return key


def write_key_file(folder: Path, name: str, key_hex: str) -> Path:
    """A key file only its owner can read, as `endpoint publish` requires."""
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key_hex + "\n")
    return path


def _fast_test_genesis(genesis: dict[str, Any]) -> None:
    """Genesis changes for a fast, stable test chain."""
    state = genesis["app_state"]
    state["provider"]["params"]["blocks_per_epoch"] = str(BLOCKS_PER_EPOCH)
    # With 200 ms blocks the default downtime window (100 blocks) is 20 s: a node
    # slowed by a busy CI machine would be jailed, and with 3 validators of equal
    # power one jailed validator halts the chain.
    state["slashing"]["params"]["signed_blocks_window"] = "10000"
    state["slashing"]["params"]["min_signed_per_window"] = "0.010000000000000000"


def _get_json(url: str) -> Any:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback URLs built here
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise ChainQueryError(url, e.code, e.read().decode(errors="replace")) from e
    except (urllib.error.URLError, OSError) as e:
        raise ChainQueryError(url, None, str(e)) from e


def start_provider_chain(
    name: str,
    workdir: Path,
    size: int = 1,
    chain_id: str = "provider",
    timeout_commit: str = "200ms",
    min_gas_price: str = "0",
    genesis_edit: Callable[[dict[str, Any]], None] | None = None,
) -> ProviderChain:
    """Start a chain and return it once every node has produced blocks; stop it on any failure."""
    chain = ProviderChain(
        name=name,
        workdir=workdir,
        size=size,
        chain_id=chain_id,
        timeout_commit=timeout_commit,
        min_gas_price=min_gas_price,
        genesis_edit=genesis_edit,
    )
    try:
        return chain.start()
    except BaseException:
        chain.stop()
        raise


__all__ = [
    "ChainQueryError",
    "ChainTxError",
    "ConsumerPhase",
    "ProviderChain",
    "ProviderNode",
    "ProviderValidator",
    "TxResult",
    "bech32_decode",
    "bech32_encode",
    "consensus_address",
    "operator_address",
    "start_provider_chain",
]
