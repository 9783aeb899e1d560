"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager.

The API server runs with RBAC authorization, a token file whose `admin` token is
in `system:masters`, TLS from a private CA, and ServiceAccount token signing, so
tests can act as any ServiceAccount with a real token. The controller manager
brings garbage collection, namespace finalization, the ServiceAccount and
EndpointSlice controllers. No kubelet or scheduler runs: pods stay Pending unless a
test writes their status.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from .pki import ControlPlanePKI, make_pki
from .polling import any_error, wait_until
from .procs import Process, TestBedError, free_ports, tool


@dataclass
class ControlPlane:
    """One independent cluster's control plane, rooted in `workdir`."""

    name: str
    workdir: Path
    with_controller_manager: bool = True
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    pki: ControlPlanePKI | None = field(default=None, init=False)
    etcd_port: int = field(default=0, init=False)
    api_port: int = field(default=0, init=False)
    kcm_port: int = field(default=0, init=False)
    processes: dict[str, Process] = field(default_factory=dict, init=False)
    startup_seconds: float = field(default=0.0, init=False)

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> ControlPlane:
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = make_pki(self.workdir / "pki")
        self.etcd_port, peer_port, self.api_port, self.kcm_port = free_ports(4)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f"{self.admin_token},admin,admin-uid,system:masters\n")
        tokens.chmod(0o600)
        self._write_kubeconfig()

        etcd = Process(
            "etcd",
            [
                str(tool("etcd")),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            self.workdir / "logs" / "etcd.log",
        )
        self.processes["etcd"] = etcd
        etcd.start()
        wait_until(
            f"{self.name}: etcd health",
            lambda: b"true" in _http_get(f"http://127.0.0.1:{self.etcd_port}/health"),
            timeout=30,
            alive=etcd.exit_reason,
            not_yet=any_error,
        )
        self.start_apiserver()
        if self.with_controller_manager:
            self.start_controller_manager()
        self.startup_seconds = time.monotonic() - t0
        return self

    def start_apiserver(self) -> None:
        assert self.pki is not None
        api = Process(
            "kube-apiserver",
            [
                str(tool("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={self.pki.serving_cert}",
                f"--tls-private-key-file={self.pki.serving_key}",
                f"--client-ca-file={self.pki.ca_cert}",
                "--service-cluster-ip-range=10.0.0.0/16",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.pki.sa_pub}",
                f"--service-account-signing-key-file={self.pki.sa_key}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
            ],
            self.workdir / "logs" / "kube-apiserver.log",
        )
        self.processes["kube-apiserver"] = api
        api.start()
        wait_until(
            f"{self.name}: kube-apiserver /readyz",
            lambda: (
                _http_get(f"{self.server}/readyz", token=self.admin_token, ca=self.pki_ca).strip()
                == b"ok"
            ),
            timeout=90,
            interval=0.2,
            alive=api.exit_reason,
            not_yet=any_error,
        )

    def start_controller_manager(self) -> None:
        assert self.pki is not None
        kcm = Process(
            "kube-controller-manager",
            [
                str(tool("kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.kcm_port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                f"--service-account-private-key-file={self.pki.sa_key}",
                f"--root-ca-file={self.pki.ca_cert}",
                "--use-service-account-credentials=false",
                "--concurrent-gc-syncs=5",
                "--profiling=false",
                "--v=1",
            ],
            self.workdir / "logs" / "kube-controller-manager.log",
        )
        self.processes["kube-controller-manager"] = kcm
        kcm.start()
        # The ServiceAccount controller creating `default` in `default` proves
        # the controllers run against this API server.
        core = client.CoreV1Api(self.admin_client())
        wait_until(
            f"{self.name}: kube-controller-manager (default ServiceAccount)",
            lambda: core.read_namespaced_service_account("default", "default") is not None,
            timeout=60,
            interval=0.2,
            alive=kcm.exit_reason,
            not_yet=any_error,
        )

    def stop_apiserver(self) -> None:
        self.processes["kube-apiserver"].stop()

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port and data (etcd keeps running)."""
        self.stop_apiserver()
        self.start_apiserver()

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            p = self.processes.get(name)
            if p is not None:
                p.stop()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values() if p.popen is not None]

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        return {name: p.log_tail(lines) for name, p in self.processes.items()}

    # ---- access ----------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pki_ca(self) -> Path:
        assert self.pki is not None
        return self.pki.ca_cert

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    def _write_kubeconfig(self) -> None:
        write_kubeconfig(self.kubeconfig, self.name, self.server, self.pki_ca, self.admin_token)

    def client_for_token(self, token: str) -> client.ApiClient:
        cfg = client.Configuration()
        cfg.host = self.server
        cfg.ssl_ca_cert = str(self.pki_ca)
        cfg.api_key = {"authorization": token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(cfg)

    def admin_client(self) -> client.ApiClient:
        return self.client_for_token(self.admin_token)

    def impersonating_client(self, user: str, groups: tuple[str, ...] = ()) -> client.ApiClient:
        """Admin credentials acting as `user` (Kubernetes impersonation headers)."""
        api = self.admin_client()
        api.set_default_header("Impersonate-User", user)  # type: ignore[no-untyped-call]
        for g in groups:
            # The python client can only send one value per header; one group suffices
            # for RBAC checks of ServiceAccounts and plain users in tests.
            api.set_default_header("Impersonate-Group", g)  # type: ignore[no-untyped-call]
        return api

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A real token for an existing ServiceAccount (TokenRequest API)."""
        core = client.CoreV1Api(self.admin_client())
        req = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
        )
        resp = core.create_namespaced_service_account_token(name, namespace, req)
        return str(resp.status.token)

    def service_account_client(self, namespace: str, name: str) -> client.ApiClient:
        return self.client_for_token(self.service_account_token(namespace, name))

    def write_service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        write_kubeconfig(
            path, self.name, self.server, self.pki_ca, self.service_account_token(namespace, name)
        )
        return path


def write_kubeconfig(path: Path, cluster: str, server: str, ca: Path, token: str) -> None:
    """A kubeconfig with a bearer token, written with mode 0600."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster, "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": f"{cluster}-user", "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-user"}}],
        "current-context": cluster,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(doc))


def _http_get(url: str, token: str | None = None, ca: Path | None = None) -> bytes:
    req = urllib.request.Request(url)  # noqa: S310 - loopback URLs built by the test bed
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:  # noqa: S310
        return bytes(resp.read())


def start_control_plane(
    name: str, workdir: Path, with_controller_manager: bool = True
) -> ControlPlane:
    plane = ControlPlane(
        name=name, workdir=workdir, with_controller_manager=with_controller_manager
    )
    try:
        return plane.start()
    except BaseException:
        plane.stop()
        raise


__all__ = ["ControlPlane", "TestBedError", "start_control_plane", "write_kubeconfig"]
