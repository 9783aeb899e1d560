"""Child processes for the test bed: started in their own session, logged to files, always reaped.

Every component (etcd, kube-apiserver, a chain node, ...) runs as a plain process
whose output goes to a log file, so a failing test can show what the component
said. Stopping sends SIGTERM to the whole process group, then SIGKILL, and waits,
so no process outlives its fixture.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class TestBedError(RuntimeError):
    """A component of the test bed could not be built, started or reached."""


def tools_bin() -> Path:
    """Directory holding the binaries `make tools` built (`make tools-path`)."""
    env = os.environ.get("ICS_TOOLS_BIN")
    if env:
        return Path(env)
    out = subprocess.run(
        [str(REPO / "scripts" / "tools.sh"), "--path"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def tool(name: str) -> Path:
    """Path of one built tool; a clear error when `make tools` has not built it."""
    path = tools_bin() / name
    if not path.exists():
        raise TestBedError(f"{name} not found in {path.parent}: run `make tools` first")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """n distinct free ports (all held open together while choosing)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Process:
    """One child process with its log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with self.log_path.open("ab") as log:
            log.write(f"--- start {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise TestBedError(f"{self.name} was never started")
        return self.popen.pid

    def exit_reason(self) -> str | None:
        """None while running; otherwise why it is not running, with its log tail."""
        if self.popen is None:
            return f"{self.name} was never started"
        code = self.popen.poll()
        if code is None:
            return None
        return f"{self.name} exited with status {code}; log tail:\n{self.log_tail(30)}"

    def log_lines(self) -> list[str]:
        """The whole log, line by line (none yet: empty)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return []
        return data.decode(errors="replace").splitlines()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL after `grace` seconds, and reap."""
        p = self.popen
        if p is None:
            return
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        # Anything left in the group (a child that ignored SIGTERM) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)


def pids_alive(pids: Sequence[int]) -> list[int]:
    """Those of `pids` that still name a running (non-zombie) process."""
    alive = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def processes_mentioning(text: str) -> list[int]:
    """PIDs of running processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if text in cmd and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return pids_alive(found)
