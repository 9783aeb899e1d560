"""Measure what compatibility mode (`compat ics-operator`) costs the desired-state decision.

The decision (`discovery.desired.desired_cluster`) runs on every reconcile. In
compat mode it also reads Go's endpoint forms and, for each validator that
publishes no `node=`, derives the node ID Go gives it on each chain (an
ed25519 key, cached). This prints the time of one decision for the same
snapshot without compat, with compat and a cold cache, and with compat warm,
for N consumer chains that every one of V validators opted in to, a fraction
of them publishing the Go way (left out without compat mode, so compat also
builds longer peer lists: the total is printed). Pure computation.

    .venv/bin/python -m bench.compat_desired [--chains 100] [--validators 100] [--go 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from discovery.desired import ExposurePolicy, desired_cluster  # noqa: E402
from discovery.endpoints import DEFAULT_POLICY  # noqa: E402
from discovery.interop import Compat, _cached_go_node_id  # noqa: E402
from discovery.ports import PortScheme  # noqa: E402
from tests.support.snapshots import consumer, op, snapshot, validator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--validators", type=int, default=100)
    parser.add_argument("--go", type=float, default=0.5, help="share publishing the Go way")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    go_count = int(args.validators * args.go)
    validators = []
    for n in range(1, args.validators + 1):
        host = f"198.51.{n // 250}.{n % 250 + 1}"
        details = (
            f"Validator v{n} - p2p={host}"
            if n > args.validators - go_count
            else f"Validator v{n} node={n:040x} p2p={host}"
        )
        validators.append(validator(n, details, moniker=f"validator-{n}"))
    members = list(range(1, args.validators + 1))
    consumers = [consumer(i, f"chain-{i}", opted_in=members) for i in range(args.chains)]
    snap = snapshot(validators, consumers)
    plain = ExposurePolicy(scheme=PortScheme.ICS_OPERATOR, consumer_namespace="consumers")
    compat = ExposurePolicy(
        scheme=PortScheme.ICS_OPERATOR, compat=Compat.ICS_OPERATOR, consumer_namespace="consumers"
    )

    def timed(policy: ExposurePolicy, *, cold: bool) -> tuple[list[float], int]:
        out, peers = [], 0
        for _ in range(args.repeat):
            if cold:
                _cached_go_node_id.cache_clear()
            start = time.perf_counter()
            d = desired_cluster(snap, op(1), policy, DEFAULT_POLICY)
            out.append(time.perf_counter() - start)
            peers = sum(len(c.peer_list.peers) for c in d.chains)
        return out, peers

    print(
        f"{args.chains} chains x {args.validators} validators "
        f"({go_count} publishing the Go way), {args.repeat} runs each"
    )
    for label, policy, cold in (
        ("compat none", plain, False),
        ("compat ics-operator, cold cache", compat, True),
        ("compat ics-operator, warm cache", compat, False),
    ):
        runs, peers = timed(policy, cold=cold)
        median, worst = statistics.median(runs) * 1000, max(runs) * 1000
        print(f"  {label:34} median {median:8.1f} ms  worst {worst:8.1f} ms  peers {peers}")


if __name__ == "__main__":
    main()
