"""`scripts/localnet.py`'s verdict on a `status --json` document (pure): the wire works only
when every node has exactly the others as peers, dialled at their published LoadBalancer
addresses, and the latest block is signed by every validator."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]


def load_localnet() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "localnet_script", REPO / "scripts" / "localnet.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("localnet_script", module)
    spec.loader.exec_module(module)
    return module


localnet = load_localnet()
NAMES = ("alice", "bob", "charlie")


def working() -> dict[str, Any]:
    """Three nodes, each dialling the next at its LoadBalancer address, all signing."""
    lbs = {n: f"172.30.0.{20 + 4 * i}" for i, n in enumerate(NAMES)}
    ids = {n: f"{i:040x}" for i, n in enumerate(NAMES)}
    clusters = {}
    for i, n in enumerate(NAMES):
        nxt, prev = NAMES[(i + 1) % 3], NAMES[(i - 1) % 3]
        clusters[n] = {
            "lb_address": lbs[n],
            "node_id": ids[n],
            "height": 10,
            "published": f"Validator {n} node={ids[n]} p2p={lbs[n]}",
            "peers": [
                {"node_id": ids[nxt], "remote_ip": lbs[nxt], "outbound": True},
                {"node_id": ids[prev], "remote_ip": f"10.244.{i + 1}.1", "outbound": False},
            ],
        }
    signers = ["A", "B", "C"]
    return {"clusters": clusters, "last_commit": {"validators": signers, "signers": signers}}


def test_a_working_wire_has_no_problem() -> None:
    assert localnet.wire_problems(working()) == []


def break_it(doc: dict[str, Any], how: str, n: str) -> None:
    c = doc["clusters"][n]
    if how == "unpublished":
        c["published"] = f"Validator {n} node={c['node_id']} p2p=203.0.113.9"
    elif how == "no_node_id":
        c["published"] = f"Validator {n} p2p={c['lb_address']}"
    elif how == "low":
        c["height"] = 2
    elif how == "down":
        c["height"] = None
    elif how == "missing_peer":
        c["peers"] = c["peers"][:1]
    elif how == "stranger":
        c["peers"][0]["node_id"] = "f" * 40
    elif how == "dialled_elsewhere":
        c["peers"][0]["remote_ip"] = "172.31.0.20"
    elif how == "no_lb":
        c["lb_address"] = None
    elif how == "unsigned":
        doc["last_commit"]["signers"] = doc["last_commit"]["signers"][:2]
    elif how == "validator_missing":
        doc["last_commit"] = {"validators": ["A", "B"], "signers": ["A", "B"]}


HOWS = ["unpublished", "no_node_id", "low", "down", "missing_peer", "stranger",
        "dialled_elsewhere", "no_lb", "unsigned", "validator_missing"]  # fmt: skip


@given(st.lists(st.tuples(st.sampled_from(HOWS), st.sampled_from(NAMES)), min_size=1, max_size=4))
def test_any_breakage_is_reported(breakages: list[tuple[str, str]]) -> None:
    doc = copy.deepcopy(working())
    for how, n in breakages:
        break_it(doc, how, n)
    problems = localnet.wire_problems(doc)
    assert problems
    for how, n in breakages:
        if how not in ("unsigned", "validator_missing"):
            assert any(p.startswith(f"{n}:") for p in problems), (how, n, problems)
