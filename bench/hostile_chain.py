"""A large, hostile provider chain: decision time, memory and the largest peers ConfigMap.

Two parts, both printed:

- `core` (always): the service's decision function (`desired_cluster`, what
  `plan` runs) on a synthetic snapshot of `--validators` validators, all with
  an endpoint and power on each of `--consumers` launched chains, plus
  `--jailed` extra validators opted in to every chain without power and
  `--spam` registered chains that never launch. Prints the decision time
  (median of 5), the largest peers ConfigMap and this process's peak RSS.
- `chain` (with `--chain`, needs `make tools`): a real provider chain whose
  genesis holds `--validators` validators (the running node's, plus ones that
  run no node and are unbonded: a registry of that size), and `--consumers`
  consumer chains created by transactions, `--launched` of them launched. It
  runs `ics-discovery snapshot` and `ics-discovery plan` as processes
  (registry load over gRPC and over REST, their peak RSS), a full resync of
  the chain monitor in this process, and the largest ConfigMap `plan`'s
  decision writes.

    python -m bench.hostile_chain [--validators 1000] [--consumers 50] [--jailed 2500]
        [--spam 2000] [--chain] [--launched 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chainmonitor.addresses import bech32_encode
from chainmonitor.monitor import ChainMonitor, MonitorSettings
from chainmonitor.queries import GrpcQueries, RestQueries
from chainmonitor.types import (
    BondStatus,
    ChainId,
    ChainSnapshot,
    ConsumerChain,
    ConsumerId,
    ConsumerPhase,
    ConsumerValidator,
    Description,
    Validator,
)
from discovery.desired import DesiredCluster, ExposurePolicy, desired_cluster
from discovery.endpoints import TESTNET_POLICY
from discovery.peers import MAX_PEERS_LIMIT


def _addr(prefix: str, n: int, salt: bytes) -> str:
    return bech32_encode(prefix, hashlib.sha256(salt + n.to_bytes(4, "big")).digest()[:20])


def _validator(n: int, *, jailed: bool = False) -> Validator:
    # Private (testnet profile) addresses: this data is never dialled.
    host = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
    node = hashlib.sha256(b"node" + n.to_bytes(4, "big")).hexdigest()[:40]
    moniker = "\U0001f600" * 70  # the longest moniker, escaped to 12 bytes a character
    return Validator(
        operator=_addr("cosmosvaloper", n, b"op"),  # type: ignore[arg-type]
        description=Description(moniker=moniker, details=f"p2p={host} node={node}"),
        status=BondStatus.UNBONDED if jailed else BondStatus.BONDED,
        jailed=jailed,
        consensus_address=_addr("cosmosvalcons", n, b"cons"),  # type: ignore[arg-type]
        tokens=1_000_000 * (n + 1),
    )


def synthetic_snapshot(validators: int, consumers: int, jailed: int, spam: int) -> ChainSnapshot:
    vals = [_validator(n) for n in range(validators)]
    bad = [_validator(validators + n, jailed=True) for n in range(jailed)]
    powered = tuple(
        sorted(
            (ConsumerValidator(v.consensus_address, n + 1) for n, v in enumerate(vals)),  # type: ignore[arg-type]
            key=lambda c: c.provider_address,
        )
    )
    everyone = tuple(sorted(v.consensus_address for v in [*vals, *bad]))  # type: ignore[type-var]
    chains = [
        ConsumerChain(
            ConsumerId(str(i)),
            ChainId(f"consumer-{i}"),
            ConsumerPhase.LAUNCHED,
            opted_in=everyone,  # type: ignore[arg-type]
            spawn_time=f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
            validators=powered,
        )
        for i in range(consumers)
    ]
    chains += [
        ConsumerChain(
            ConsumerId(str(consumers + i)), ChainId(f"spam-{i}"), ConsumerPhase.REGISTERED
        )
        for i in range(spam)
    ]
    return ChainSnapshot(
        height=1000,
        validators=tuple(sorted([*vals, *bad], key=lambda v: v.operator)),
        consumers=tuple(chains),
    )


def largest_configmap(desired: DesiredCluster) -> tuple[int, int, str]:
    """(rendered bytes, data bytes, chain ID) of the largest desired peers ConfigMap."""
    best = (0, 0, "-")
    for cm in desired.configmaps():
        data = sum(len(k.encode()) + len(v.encode()) for k, v in cm.data.items())
        best = max(best, (len(cm.render()), data, cm.chain_id))
    return best


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def run_core(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    snap = synthetic_snapshot(args.validators, args.consumers, args.jailed, args.spam)
    built = time.perf_counter() - t0
    us = snap.validators[0].operator
    policy = ExposurePolicy(consumer_namespace="consumers", max_peers=args.max_peers)
    times = []
    desired = None
    for _ in range(5):
        t0 = time.perf_counter()
        desired = desired_cluster(snap, us, policy, TESTNET_POLICY)
        times.append(time.perf_counter() - t0)
    assert desired is not None
    rendered, data, chain_id = largest_configmap(desired)
    peers = max(len(c.peers.peers) for c in desired.chains)
    print(
        f"core: {args.validators} validators with power + {args.jailed} powerless opted in, "
        f"{args.consumers} launched chains + {args.spam} registered spam chains"
    )
    print(f"  snapshot built in {built:.2f} s")
    print(
        f"  decision (desired_cluster) median {statistics.median(times):.2f} s, "
        f"worst {max(times):.2f} s"
    )
    print(
        f"  exposed chains {len(desired.chains)}, peers per chain at most {peers} "
        f"(max_peers {args.max_peers})"
    )
    print(
        f"  largest peers ConfigMap: {rendered} bytes rendered, {data} bytes of data "
        f"({chain_id}); Kubernetes' limit {1024 * 1024}"
    )
    held = sum(1 for c in desired.state.chains if c.ports is not None)
    print(f"  chains holding ports: {held} of {len(desired.state.chains)}")
    print(f"  peak RSS of this process: {peak_rss_mib():.0f} MiB")


# ---- the real chain -------------------------------------------------------------


def _extra_validators(count: int) -> Any:
    """Genesis edit: `count` unbonded validators without stake that run no node.

    No tokens and no delegations, so the staking pools and the delegator-shares
    invariant are untouched; distribution gets the records creating a validator
    makes (its reference-count invariant counts one per validator).
    """

    def edit(genesis: dict[str, Any]) -> None:
        state = genesis["app_state"]
        tokens = 0
        template = state["staking"]["validators"][0] if state["staking"]["validators"] else None
        for n in range(count):
            key = hashlib.sha256(b"bench-cons" + n.to_bytes(4, "big")).digest()
            validator = {
                "operator_address": _addr("cosmosvaloper", n, b"bench-op"),
                "consensus_pubkey": {
                    "@type": "/cosmos.crypto.ed25519.PubKey",
                    "key": base64.b64encode(key).decode(),
                },
                "jailed": False,
                "status": "BOND_STATUS_UNBONDED",
                "tokens": str(tokens),
                "delegator_shares": "0.000000000000000000",
                "description": {
                    "moniker": f"bench-{n}",
                    "identity": "",
                    "website": "",
                    "security_contact": "",
                    "details": f"p2p=10.{n // 256 % 256}.{n % 256}.1 node={key.hex()[:40]}",
                },
                "unbonding_height": "0",
                "unbonding_time": "1970-01-01T00:00:00Z",
                "commission": {
                    "commission_rates": {
                        "rate": "0.100000000000000000",
                        "max_rate": "0.200000000000000000",
                        "max_change_rate": "0.010000000000000000",
                    },
                    "update_time": "2026-01-01T00:00:00Z",
                },
                "min_self_delegation": "1",
                "unbonding_on_hold_ref_count": "0",
                "unbonding_ids": [],
            }
            if template is not None:
                validator = {k: validator.get(k, template[k]) for k in template} | validator
            state["staking"]["validators"].append(validator)
            operator = validator["operator_address"]
            dist = state["distribution"]
            dist.setdefault("validator_historical_rewards", []).append(
                {
                    "validator_address": operator,
                    "period": "0",
                    "rewards": {"cumulative_reward_ratio": [], "reference_count": 1},
                }
            )
            dist.setdefault("validator_current_rewards", []).append(
                {"validator_address": operator, "rewards": {"rewards": [], "period": "1"}}
            )
            dist.setdefault("validator_accumulated_commissions", []).append(
                {"validator_address": operator, "accumulated": {"commission": []}}
            )
            dist.setdefault("outstanding_rewards", []).append(
                {"validator_address": operator, "outstanding_rewards": []}
            )

    return edit


def _cli(*argv: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "discovery.cli", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ics-discovery {argv[0]} failed: {done.stderr.strip()}")
    return time.perf_counter() - t0, done.stdout


async def _load_seconds(grpc: str) -> float:
    """A full load by a fresh in-process chain monitor (what every resync repeats), in seconds."""
    monitor = ChainMonitor(GrpcQueries(grpc), settings=MonitorSettings(resync_interval=3600.0))
    task = asyncio.create_task(monitor.run())
    try:
        t0 = time.perf_counter()
        await monitor.wait_for(lambda s: True)
        return time.perf_counter() - t0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await monitor.queries.close()


async def _rest_load(url: str) -> float:
    t0 = time.perf_counter()
    rest = RestQueries(url)
    answer = await rest.validators()
    for c in (await rest.consumer_chains(answer.height)).value:
        if c.phase is ConsumerPhase.LAUNCHED:
            await rest.consumer_validators(c.consumer_id, answer.height)
    return time.perf_counter() - t0


def run_chain(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.chain import start_provider_chain
    from tests.support.chain_fixtures import stop_and_verify

    extra = args.validators - 1
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        t0 = time.perf_counter()
        chain = start_provider_chain(
            "hostile", Path(tmp) / "chain", size=1, genesis_edit=_extra_validators(extra)
        )
        try:
            started = time.perf_counter() - t0
            print(f"chain: started with {args.validators} validators in {started:.1f} s")
            t0 = time.perf_counter()
            launched = 0
            for i in range(args.consumers):
                chain_id = f"bench-{i}-1"
                if launched < args.launched:
                    chain.launch_consumer(chain_id, [0])
                    launched += 1
                else:
                    chain.create_consumer(0, chain_id, None)
            print(
                f"  {args.consumers} consumer chains ({launched} launched) created by "
                f"transactions in {time.perf_counter() - t0:.1f} s"
            )
            node = chain.nodes[0]
            before = peak_rss_mib(resource.RUSAGE_CHILDREN)
            loads = []
            snapshot_text = ""
            for _ in range(3):
                seconds, snapshot_text = _cli("snapshot", "--grpc", node.grpc_address)
                loads.append(seconds)
            doc = json.loads(snapshot_text)
            print(
                f"  `ics-discovery snapshot` (gRPC, process start included): median "
                f"{statistics.median(loads):.2f} s; {len(doc['validators'])} validators, "
                f"{len(doc['consumers'])} consumers, {len(snapshot_text)} bytes"
            )
            path = Path(tmp) / "chain.json"
            path.write_text(snapshot_text)
            operator = chain.validators[0].operator
            seconds, _ = _cli(
                "plan",
                "--snapshot",
                str(path),
                "--operator",
                operator,
                "--endpoint-profile",
                "testnet",
                "--json",
            )
            print(f"  `ics-discovery plan --snapshot`: {seconds:.2f} s")
            children = peak_rss_mib(resource.RUSAGE_CHILDREN)
            print(f"  peak RSS of those processes: {max(before, children):.0f} MiB")
            runs = [asyncio.run(_load_seconds(node.grpc_address)) for _ in range(3)]
            print(
                f"  chain monitor full load (= a full resync) in process: median "
                f"{statistics.median(runs):.2f} s, worst {max(runs):.2f} s"
            )
            rest = asyncio.run(_rest_load(node.rest_url))
            print(f"  registry load over REST (validators + consumer sets): {rest:.2f} s")
            from discovery.snapshot_file import read_snapshot

            snap = read_snapshot(doc)
            desired = desired_cluster(
                snap, operator, ExposurePolicy(consumer_namespace="consumers"), TESTNET_POLICY
            )
            rendered, _, chain_id = largest_configmap(desired)
            print(
                f"  largest peers ConfigMap: {rendered} bytes ({chain_id}); "
                f"exposed chains {len(desired.chains)}"
            )
        finally:
            stop_and_verify(chain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--validators", type=int, default=1000)
    parser.add_argument("--consumers", type=int, default=50)
    parser.add_argument("--jailed", type=int, default=2500)
    parser.add_argument("--spam", type=int, default=2000)
    parser.add_argument("--max-peers", type=int, default=MAX_PEERS_LIMIT)
    parser.add_argument("--chain", action="store_true", help="also run the real-chain part")
    parser.add_argument("--launched", type=int, default=10)
    args = parser.parse_args()
    if args.chain:
        os.environ.setdefault("ICS_DISCOVERY_LOG_FORMAT", "text")
        run_chain(args)
    run_core(args)


if __name__ == "__main__":
    main()
