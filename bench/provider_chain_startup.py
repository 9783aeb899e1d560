"""Measure the provider-chain test bed: start-up time for 1 and 3 validators and block time.

Integration tests pay the chain's start-up once per session, and every wait in
them is a number of blocks, so these two numbers bound how fast the chain tests
can be. Run from the repository root after `make tools`:

    .venv/bin/python -m bench.provider_chain_startup [--runs 3] [--blocks 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.chain_fixtures import running_provider_chain  # noqa: E402


def measure(size: int, runs: int, blocks: int) -> tuple[list[float], list[float]]:
    startups: list[float] = []
    block_seconds: list[float] = []
    for run in range(runs):
        with (
            tempfile.TemporaryDirectory(prefix="ics-bench-") as tmp,
            running_provider_chain(f"bench{size}-{run}", Path(tmp) / "chain", size=size) as chain,
        ):
            startups.append(chain.startup_seconds)
            first = chain.height()
            chain.wait_for_height(first + blocks, timeout=blocks * 5)
            block_seconds.append(chain.average_block_seconds(first, first + blocks))
    return startups, block_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="provider chain start-up and block time")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=30)
    args = parser.parse_args(argv)
    for size in (1, 3):
        startups, block_seconds = measure(size, args.runs, args.blocks)
        print(
            f"validators={size} runs={args.runs} "
            f"startup_s median={statistics.median(startups):.2f} "
            f"min={min(startups):.2f} max={max(startups):.2f} "
            f"block_s mean={statistics.fmean(block_seconds):.3f} "
            f"(over {args.blocks} blocks per run)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
