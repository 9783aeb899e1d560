"""Operator node resources: peers written into CosmosFullNodes on a real kube-apiserver.

With cosmos-operator v0.25.1's CRD installed, N CosmosFullNodes (one per chain,
each with a hand-added sentry) get P peers each through
`discovery.operator_notify`: the cold write, a steady-state pass (target: no
writes), one peer moving (target: one patch per resource), and the pure
`plan_peers` cost for one resource. Requests are counted at the HTTP client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kubernetes import client  # noqa: E402

from discovery.operator_notify import OperatorNotifier  # noqa: E402
from discovery.operators import COSMOS_FULL_NODE, plan_peers  # noqa: E402
from lbmanager.kube import KubeRest  # noqa: E402
from tests.support.kube import start_control_plane  # noqa: E402
from tests.support.lb import counting_client, model  # noqa: E402
from tests.support.operators import cosmos_full_node, install_cosmos_operator_crd  # noqa: E402

NAMESPACE = "consumers"
SENTRY = "ee" * 20 + "@sentry.validator.example:26656"


def entries(peers: int, moved: int = -1) -> list[str]:
    out = []
    for i in range(peers):
        host = f"198.51.100.{i % 250 + 1}" if i == moved else f"203.0.113.{i % 250 + 1}"
        out.append(f"{i:040x}@{host}:{30100 + i % 100}")
    return out


def measure(api: Any, chains: int, peers: int) -> dict[str, Any]:
    notifier = OperatorNotifier(KubeRest(api))

    async def one_pass(peer_list: list[str]) -> tuple[float, int, int]:
        before = len(api.writes)
        calls = len(api.calls)
        start = time.perf_counter()
        for i in range(chains):
            await notifier.notify("cosmos-operator", f"chain-{i:04d}", peer_list, [NAMESPACE])
        return time.perf_counter() - start, len(api.writes) - before, len(api.calls) - calls

    out: dict[str, Any] = {"chains": chains, "peers": peers}
    for name, peer_list in (
        ("cold", entries(peers)),
        ("steady", entries(peers)),
        ("one_peer_moved", entries(peers, moved=0)),
    ):
        seconds, writes, requests = asyncio.run(one_pass(peer_list))
        out[name] = {"seconds": seconds, "writes": writes, "requests": requests}
    obj = cosmos_full_node("node", "chain", peers=SENTRY)
    obj["metadata"].update(namespace=NAMESPACE, resourceVersion="1")
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        plan_peers(COSMOS_FULL_NODE, obj, entries(peers))
    out["plan_peers_ms"] = (time.perf_counter() - start) / rounds * 1000
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=50)
    parser.add_argument("--peers", type=int, default=150)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ics-bench-operators-") as tmp:
        plane = start_control_plane("bench", Path(tmp) / "cp", with_controller_manager=False)
        try:
            admin = plane.admin_client()
            install_cosmos_operator_crd(admin)
            core = client.CoreV1Api(admin)
            core.create_namespace(model(client.V1Namespace, {"metadata": {"name": NAMESPACE}}))
            custom = client.CustomObjectsApi(admin)
            for i in range(args.chains):
                custom.create_namespaced_custom_object(
                    "cosmos.strange.love",
                    "v1",
                    NAMESPACE,
                    "cosmosfullnodes",
                    cosmos_full_node(f"node-{i:04d}", f"chain-{i:04d}", peers=SENTRY),
                )
            results = measure(counting_client(admin), args.chains, args.peers)
        finally:
            plane.stop()
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0
    print(
        f"operator node resources, real kube-apiserver, {results['chains']} CosmosFullNodes, "
        f"{results['peers']} peers each"
    )
    for name, target in (("cold", "1/resource"), ("steady", "0"), ("one_peer_moved", "1/resource")):
        r = results[name]
        print(
            f"  {name:<16} {r['seconds']:6.2f} s  {r['writes']:4d} writes  "
            f"{r['requests']:4d} requests   target writes {target}"
        )
    print(f"  plan_peers       {results['plan_peers_ms']:.2f} ms per resource")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
