"""TCP responder and prober run inside network namespaces (standalone: stdlib only).

    python netprobe.py serve IP PORT NAME   answer each connection with one line
                                            "NAME IP peer=ADDR" and close; prints
                                            "listening" once bound (no DNS lookups:
                                            a namespace has no resolver)
    python netprobe.py client               read "IP PORT TIMEOUT" lines on stdin,
                                            answer each with one JSON line:
                                            {"ok": true, "reply": "..."} or
                                            {"ok": false, "error": "ECONNREFUSED"};
                                            "GET IP PORT PATH TIMEOUT" does an HTTP GET:
                                            {"ok": true, "status": 200, "body": "..."}

`Prober` (below) keeps one client running in a namespace, so that probing costs a
connection, not a Python start.
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

SCRIPT = Path(__file__).resolve()


def serve(ip: str, port: int, name: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(128)
    print("listening", flush=True)
    while True:
        conn, peer = s.accept()
        try:
            conn.sendall(f"{name} {ip} peer={peer[0]}\n".encode())
        except OSError:
            pass
        finally:
            conn.close()


def probe(ip: str, port: int, timeout: float) -> dict[str, object]:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as c:
            c.settimeout(timeout)
            data = b""
            while not data.endswith(b"\n"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            return {"ok": True, "reply": data.decode(errors="replace").strip()}
    except TimeoutError:
        return {"ok": False, "error": "timeout"}
    except OSError as e:
        name = errno.errorcode.get(e.errno or 0, type(e).__name__)
        return {"ok": False, "error": name}


def http_get(ip: str, port: int, path: str, timeout: float) -> dict[str, object]:
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return {"ok": True, "status": resp.status, "body": resp.read().decode(errors="replace")}
    except TimeoutError:
        return {"ok": False, "error": "timeout"}
    except (OSError, http.client.HTTPException) as e:
        name = errno.errorcode.get(getattr(e, "errno", 0) or 0, type(e).__name__)
        return {"ok": False, "error": name}
    finally:
        conn.close()


def client() -> None:
    for line in sys.stdin:
        parts = line.split()
        if len(parts) == 5 and parts[0] == "GET":
            got = http_get(parts[1], int(parts[2]), parts[3], float(parts[4]))
            print(json.dumps(got), flush=True)
            continue
        if len(parts) != 3:
            print(json.dumps({"ok": False, "error": "bad request"}), flush=True)
            continue
        print(json.dumps(probe(parts[0], int(parts[1]), float(parts[2]))), flush=True)


class Prober:
    """A long-lived `client` inside a network namespace (argv prefix `enter`)."""

    def __init__(self, enter: Sequence[str], python: str = sys.executable) -> None:
        self._lock = threading.Lock()
        self._p = subprocess.Popen(
            [*enter, python, str(SCRIPT), "client"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    @property
    def pid(self) -> int:
        return self._p.pid

    def connect(self, ip: str, port: int, timeout: float = 2.0) -> dict[str, object]:
        return self._ask(f"{ip} {port} {timeout}")

    def get(self, ip: str, port: int, path: str, timeout: float = 5.0) -> dict[str, object]:
        """HTTP GET http://ip:port/path from inside the namespace (path without spaces)."""
        if any(c.isspace() for c in path):
            raise ValueError(f"path {path!r} has white space")
        return self._ask(f"GET {ip} {port} {path} {timeout}")

    def _ask(self, request: str) -> dict[str, object]:
        with self._lock:
            assert self._p.stdin is not None
            assert self._p.stdout is not None
            self._p.stdin.write(request + "\n")
            self._p.stdin.flush()
            line = self._p.stdout.readline()
        if not line:
            raise RuntimeError(f"prober exited ({self._p.poll()})")
        result: dict[str, object] = json.loads(line)
        return result

    def close(self) -> None:
        if self._p.poll() is None:
            assert self._p.stdin is not None
            self._p.stdin.close()
            try:
                self._p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._p.kill()
                self._p.wait(timeout=5)
        if self._p.stdout is not None:
            self._p.stdout.close()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 2 and sys.argv[1] == "client":
        client()
    else:
        sys.exit(__doc__)
