"""`make localnet`'s own code, run for real: `scripts/localnet.py up`, `status --json`, `down`.

CI runs as root, so the commands run as the unprivileged user `nobody` (setpriv) where
this kernel lets it create user namespaces: the whole localnet then lives in
`unshare --user --map-root-user --net --mount`, as it would for a developer without
root. Where the kernel forbids that, `up` must refuse with a clear message saying what
to change, and the localnet then runs as root instead (still checked end to end).

Checked against the real nodes (entered from outside, not through localnet): every
node's height and peers as `status --json` prints them; every node peered with both
others, dialled at their published LoadBalancer addresses; the latest block signed by
all three, charlie's with the key its validator assigned (`assign-consensus-key`), not
its provider key. After `down` no process, namespace or host network change is left.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from tests.support import netlab
from tests.support.consumer import RPC_PORT, node_rpc
from tests.support.netprobe import Prober
from tests.support.procs import REPO, pids_alive, processes_mentioning, tools_bin

pytestmark = [pytest.mark.kube, pytest.mark.chain, pytest.mark.netns]

NOBODY = 65534
SCRIPT = REPO / "scripts" / "localnet.py"
CLUSTERS = ("alice", "bob", "charlie")


def as_nobody(argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


def userns_allowed_for_nobody() -> bool:
    r = subprocess.run(as_nobody(["unshare", "--user", "--map-root-user", "--net", "true"]),
                       capture_output=True, timeout=30, check=False)  # fmt: skip
    return r.returncode == 0


def _link_or_copy(s: str, d: str) -> str:
    """A hard link where `nobody` may already read the file (it shares the mode), else a copy."""
    s = os.path.realpath(s)  # tools/bin holds symbolic links into the cache
    mode = os.stat(s).st_mode
    usable = mode & 0o004 and (mode & 0o001 or not mode & 0o100)
    try:
        if not usable:
            raise PermissionError(s)
        os.link(s, d)
    except OSError:
        shutil.copy2(s, d)
        os.chmod(d, mode | (0o555 if mode & 0o100 else 0o444))
    return d


def readable_copy(src: Path, dst: Path, ignore: Callable[..., Iterable[str]] | None = None) -> Path:
    """`src` where `nobody` can read it: linked or copied files in directories it may enter."""
    shutil.copytree(src, dst, copy_function=_link_or_copy, ignore=ignore)
    for p in [dst, *(d for d in dst.rglob("*") if d.is_dir())]:
        p.chmod(p.stat().st_mode | 0o555)
    return dst


def nobody_can(test: str, path: Path | str) -> bool:
    return subprocess.run(as_nobody(["test", test, str(path)]), check=False).returncode == 0


def readable_tools(folder: Path) -> Path:
    """The built tools where `nobody` can run them (hard links when the file system allows)."""
    src = tools_bin()
    if nobody_can("-x", src / "etcd"):
        return src
    return readable_copy(src, folder / "tools")


def readable_repo(folder: Path) -> Path:
    """This checkout where `nobody` can read it: itself, or a linked copy of its files.

    A checkout under a private directory (CI's clean clone in a 0700 temporary
    directory, a home directory) is out of `nobody`'s reach.
    """
    if nobody_can("-r", SCRIPT):
        return REPO
    skip = shutil.ignore_patterns(
        ".git", ".venv", "localnet", "__pycache__", "*_cache", ".hypothesis", "*.egg-info"
    )
    return readable_copy(REPO, folder / "repo", ignore=skip)


def python_for_nobody(folder: Path, repo: Path) -> str:
    """This Python with this project's packages (from `repo`), runnable by `nobody`.

    When the interpreter lives where `nobody` cannot reach it (a pyenv under /root),
    a venv of the system's interpreter of the same minor version reads this venv's
    packages instead (a .pth file; a linked copy of them when they are out of
    `nobody`'s reach too), with the `ics-discovery` entry point beside it.
    """
    if repo == REPO and nobody_can("-x", os.path.realpath(sys.executable)):
        return sys.executable
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = next(
        (p for p in (f"/usr/bin/{minor}", f"/usr/local/bin/{minor}") if os.access(p, os.X_OK)), None
    )
    if base is None:
        pytest.fail(f"{sys.executable} is not runnable by nobody and there is no /usr/bin/{minor}")
    venv = folder / "venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_dir = venv / "lib" / minor / "site-packages"
    here = Path(sysconfig.get_paths()["purelib"])
    if not nobody_can("-r", here / "kubernetes" / "__init__.py"):
        here = readable_copy(here, folder / "site-packages")
    # The project's own packages come from `repo` (first), its dependencies from `here`.
    (site_dir / "icsdp-dev.pth").write_text(
        f"import sys; sys.path.insert(0, {str(repo)!r})\n"
        f"import site; site.addsitedir({str(here)!r})\n"
    )
    entry = (Path(sys.executable).parent / "ics-discovery").read_text().split("\n", 1)[1]
    script = venv / "bin" / "ics-discovery"
    script.write_text(f"#!{venv / 'bin' / 'python'}\n{entry}")
    script.chmod(0o755)
    return str(venv / "bin" / "python")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short state directory (relay sockets live in it) that `nobody` owns."""
    folder = Path(tempfile.mkdtemp(prefix="icsln-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def consumer_address(pubkey_json: str) -> str:
    """CometBFT's address of an ed25519 key: the first 20 bytes of its SHA-256, hex."""
    key = base64.b64decode(json.loads(pubkey_json)["key"])
    return hashlib.sha256(key).digest()[:20].hex().upper()


def test_localnet_up_status_down(workdir: Path) -> None:  # noqa: PLR0915 (one scenario)
    before_net = netlab.root_network_state()
    state = workdir / "ln"
    rootless = userns_allowed_for_nobody()
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(workdir)}

    repo = readable_repo(workdir)
    python = python_for_nobody(workdir, repo)

    def localnet(*args: str, user: bool, timeout: float) -> subprocess.CompletedProcess[str]:
        script = repo / "scripts" / "localnet.py" if user else SCRIPT
        argv = [python if user else sys.executable, str(script), *args, "--dir", str(state)]
        return subprocess.run(as_nobody(argv) if user else argv, env=env, text=True,
                              cwd=repo if user else REPO,
                              capture_output=True, timeout=timeout, check=False)  # fmt: skip

    if rootless:
        env["ICS_TOOLS_BIN"] = str(readable_tools(workdir))
        os.chown(workdir, NOBODY, NOBODY)
    else:
        # The kernel forbids user namespaces: `up` without root says so and what to do.
        env["ICS_TOOLS_BIN"] = str(tools_bin())
        refused = localnet("up", user=True, timeout=120)
        assert refused.returncode == 2, refused
        for hint in ("root", "user.max_user_namespaces", "unprivileged_userns_clone",
                     "apparmor_restrict_unprivileged_userns"):  # fmt: skip
            assert hint in refused.stderr, refused.stderr
        assert not (state / "state.json").exists()

    up = localnet("up", user=rootless, timeout=1500)
    try:
        assert up.returncode == 0, f"{up.stdout[-6000:]}\n{up.stderr[-3000:]}"
        assert "signed by 3 of 3 validators" in up.stdout, up.stdout[-3000:]
        if rootless:
            assert "user namespace" in up.stdout
        supervisor = int(json.loads((state / "state.json").read_text())["supervisor"])
        ours = netlab.run_prefix(supervisor)
        # Without root the namespaces live in the user namespace's own /run, not the host's.
        hosted = [n for n in netlab.list_namespaces() if n.startswith(ours)]
        assert (hosted == []) is rootless, hosted

        shown = localnet("status", "--json", user=rootless, timeout=300)
        assert shown.returncode == 0, shown
        doc = json.loads(shown.stdout)
        assert doc["rootless"] is rootless
        assert doc["mode"] == "restart"
        clusters = doc["clusters"]
        assert set(clusters) == set(CLUSTERS)
        ids = {c: clusters[c]["node_id"] for c in CLUSTERS}
        for c in CLUSTERS:
            s = clusters[c]
            # The real node, entered from outside: the node process's own network namespace.
            homes = processes_mentioning(f"{state}/consumer/{c} ")
            node_pid = next(p for p in homes if "interchain-security-cd" in Path(
                f"/proc/{p}/cmdline").read_text(errors="replace"))  # fmt: skip
            prober = Prober(["nsenter", "-t", str(node_pid), "-n"])
            try:
                real = node_rpc(prober, s["pod_ip"], "/status", RPC_PORT)
                info = node_rpc(prober, s["pod_ip"], "/net_info", RPC_PORT)
            finally:
                prober.close()
            assert real["node_info"]["id"] == s["node_id"]
            assert real["validator_info"]["address"] == s["validator_address"]
            assert 3 <= s["height"] <= int(real["sync_info"]["latest_block_height"])
            real_peers = {p["node_info"]["id"]: p for p in info["peers"]}
            assert set(real_peers) == {p["node_id"] for p in s["peers"]}
            assert set(real_peers) == {ids[o] for o in CLUSTERS if o != c}
            for p in s["peers"]:
                assert real_peers[p["node_id"]]["remote_ip"] == p["remote_ip"]
                assert real_peers[p["node_id"]]["is_outbound"] == p["outbound"]
                if p["outbound"]:
                    other = next(o for o in CLUSTERS if ids[o] == p["node_id"])
                    lb = clusters[other]["lb_address"]
                    assert p["remote_address"] == f"{lb}:{doc['p2p_port']}"
                    # The address that validator published on chain.
                    assert f"p2p={lb}" in clusters[other]["published"]
                    assert f"node={ids[other]}" in clusters[other]["published"]
        commit = doc["last_commit"]
        assert len(commit["validators"]) == 3
        assert commit["signers"] == commit["validators"]
        # charlie's node signs with the key its validator assigned, not its provider key.
        assigned = consumer_address(doc["assigned_key"]["charlie"])
        assert clusters["charlie"]["validator_address"] == assigned
        assert assigned in commit["signers"]
        provider_keys = {
            json.loads(p.read_text())["address"]
            for p in (state / "chain").rglob("priv_validator_key.json")
        }
        assert len(provider_keys) == 3
        assert assigned not in provider_keys
        assert {clusters[c]["validator_address"] for c in ("alice", "bob")} <= provider_keys
    finally:
        down = localnet("down", user=rootless, timeout=900)
    assert down.returncode == 0, f"{down.stdout}\n{down.stderr}"
    assert pids_alive([supervisor]) == []
    assert processes_mentioning(f"{state}/") == []
    assert [n for n in netlab.list_namespaces() if n.startswith(ours)] == []
    assert netlab.root_network_state() == before_net
