"""A localnet whose supervisor died (killed, machine crash) leaves processes and namespaces:
`scripts/localnet.py down` (and `up`, through the same sweep) removes them: every process
of that localnet (found by its state directory on their command lines) and every
namespace under the owned prefix whose building process is gone."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import netlab
from tests.support.polling import any_error, wait_until
from tests.support.procs import REPO, Process, pids_alive, tool

pytestmark = [pytest.mark.netns]


@pytest.fixture
def state() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="icsln-"))
    try:
        yield folder / "ln"
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_down_after_a_crash_leaves_nothing(state: Path) -> None:
    before = netlab.root_network_state()
    (state / "run").mkdir(parents=True)
    supervisor = dead_pid()
    (state / "state.json").write_text(json.dumps({"supervisor": supervisor, "phase": "ready"}))
    prefix = netlab.run_prefix(supervisor)
    netns = [f"{prefix}net", f"{prefix}alice", f"{prefix}alice.consumer-0"]
    procs: list[Process] = []
    try:
        for n in netns:
            subprocess.run(["ip", "netns", "add", n], check=True)
        # What a crashed localnet leaves: a relay in the root namespace, one in a node's.
        sock = state / "run" / "alice-api.sock"
        procs.append(Process("relay-root", [str(tool("socat")),
                             f"UNIX-LISTEN:{sock},fork,mode=600", "TCP:127.0.0.1:9"],
                             state / "logs" / "relay-root.log"))  # fmt: skip
        procs.append(Process("relay-node", netlab.netns_exec(netns[1], str(tool("socat")),
                             "TCP-LISTEN:6443,bind=127.0.0.1,fork", f"UNIX-CONNECT:{sock}"),
                             state / "logs" / "relay-node.log"))  # fmt: skip
        for p in procs:
            p.start()
        wait_until("the relays", lambda: sock.is_socket() and not any(p.exit_reason()
                   for p in procs), timeout=30, not_yet=any_error)  # fmt: skip
        pids = [p.pid for p in procs]

        down = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "localnet.py"), "down", "--dir", str(state)],
            capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
        )  # fmt: skip
        assert down.returncode == 0, down
        assert "leftover" in down.stdout, down.stdout
        assert pids_alive(pids) == []
        assert [n for n in netlab.list_namespaces() if n.startswith(prefix)] == []
        assert not (state / "state.json").exists()
        assert netlab.root_network_state() == before
    finally:
        for p in procs:
            p.stop(grace=1)
        for n in netns:
            subprocess.run(["ip", "netns", "del", n], capture_output=True, check=False)
