"""Checks across settings (consistency) and against the filesystem (`check_files`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chainmonitor.addresses import bech32_decode
from discovery.errors import DiscoveryError
from discovery.interop import Compat
from discovery.nodekey import MIN_SECRET_BYTES, secret_from_environment
from discovery.ports import PortScheme
from discovery.settings.model import Settings
from discovery.settings.values import ENV_PREFIX, parse_workload_ref
from discovery.types import NotifyMode


@dataclass(frozen=True)
class SettingProblem:
    """One bad setting: its field name and what is wrong (never its secret value)."""

    setting: str
    message: str

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.setting.upper()

    def __str__(self) -> str:
        return f"setting {self.setting} ({self.env_var}): {self.message}"


class SettingsInvalid(DiscoveryError):
    """Settings cannot work; each problem names its setting (permanent until fixed)."""

    def __init__(self, problems: Sequence[SettingProblem], source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        where = f" (settings file {source})" if source else ""
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(f"invalid settings{where}: {lines}")


def consistency_problems(s: Settings) -> list[SettingProblem]:
    """Problems between settings (pure: no file is opened)."""
    return [
        *_chain_problems(s),
        *_consumer_problems(s),
        *_api_and_restart_problems(s),
        *_leadership_problems(s),
    ]


def _chain_problems(s: Settings) -> list[SettingProblem]:
    """The provider chain: where to query and sign, what to publish, compatibility."""
    out: list[SettingProblem] = []
    if not s.provider_grpc_urls and not s.provider_rest_urls:
        out.append(
            SettingProblem(
                "provider_grpc_urls",
                "the registry and consumer queries need a gRPC endpoint (or provider_rest_urls)",
            )
        )
    elif s.publish_endpoint and not s.provider_grpc_urls:
        out.append(
            SettingProblem(
                "provider_grpc_urls", "publish_endpoint needs a gRPC endpoint to sign through"
            )
        )
    if s.publish_endpoint:
        if s.publish_key_file is None and not s.publish_key_env:
            out.append(
                SettingProblem(
                    "publish_key_file",
                    "publish_endpoint is on: set publish_key_file or publish_key_env",
                )
            )
        if s.publish_key_file is not None and s.publish_key_env:
            out.append(
                SettingProblem("publish_key_env", "set only one of publish_key_file and this")
            )
    if s.publish_node_id is not None and s.node_key_secret_env:
        out.append(
            SettingProblem("node_key_secret_env", "set only one of publish_node_id and this")
        )
    if s.publish_authz_granter is not None:
        _, granter = bech32_decode(s.publish_authz_granter)
        _, operator = bech32_decode(s.operator_address)
        if granter != operator:
            out.append(
                SettingProblem(
                    "publish_authz_granter",
                    f"{s.publish_authz_granter} is not the account of operator_address "
                    f"{s.operator_address}: the grant must come from the operator",
                )
            )
    if s.compat is Compat.ICS_OPERATOR and s.port_scheme is not PortScheme.ICS_OPERATOR:
        out.append(
            SettingProblem(
                "port_scheme",
                "compat ics-operator needs port_scheme ics-operator (the Go implementation's)",
            )
        )
    return out


def _consumer_problems(s: Settings) -> list[SettingProblem]:
    """Where peers go and how consumer nodes are told."""
    out: list[SettingProblem] = []
    if s.consumer_namespace is not None and s.peers_namespaces:
        out.append(
            SettingProblem(
                "peers_namespaces",
                "only for consumer_namespace empty; with consumer_namespace set, peers "
                "ConfigMaps go there",
            )
        )
    for chain_id, ref in s.notify_resources.items():
        mode = s.notify_mode(chain_id)
        if mode not in (NotifyMode.COSMOS_OPERATOR, NotifyMode.COSMOPILOT):
            out.append(
                SettingProblem(
                    "notify_resources",
                    f"chain {chain_id} is in notify mode {mode.value}; a node resource is "
                    "only for cosmos-operator or cosmopilot",
                )
            )
            continue
        kind = ref.rpartition("/")[0].lower()
        kinds: tuple[str, ...]
        if mode is NotifyMode.COSMOS_OPERATOR:
            kinds, names = ("cosmosfullnode", "cosmosfullnodes"), "CosmosFullNode"
        else:
            kinds = ("chainnodeset", "chainnodesets", "chainnode", "chainnodes")
            names = "ChainNodeSet or ChainNode"
        if kind and kind not in kinds:
            out.append(
                SettingProblem(
                    "notify_resources",
                    f"{ref!r} (chain {chain_id}): {mode.value} node resources are {names}",
                )
            )
    return out


def _api_and_restart_problems(s: Settings) -> list[SettingProblem]:
    """The gRPC API's TLS and limits, and the workloads restart mode may roll."""
    out: list[SettingProblem] = []
    if (s.grpc_tls_cert_file is None) != (s.grpc_tls_key_file is None):
        missing = "grpc_tls_key_file" if s.grpc_tls_key_file is None else "grpc_tls_cert_file"
        out.append(
            SettingProblem(missing, "TLS needs both grpc_tls_cert_file and grpc_tls_key_file")
        )
    if s.grpc_tls_client_ca_file is not None and s.grpc_tls_cert_file is None:
        out.append(
            SettingProblem(
                "grpc_tls_client_ca_file",
                "mutual TLS needs the server's own grpc_tls_cert_file and grpc_tls_key_file",
            )
        )
    for ref in s.restart_workloads:
        try:
            parse_workload_ref(ref, s.consumer_namespace)
        except ValueError as e:
            out.append(SettingProblem("restart_workloads", str(e)))
    if s.grpc_max_streams >= s.grpc_max_concurrent_rpcs:
        out.append(
            SettingProblem(
                "grpc_max_streams",
                f"must be below grpc_max_concurrent_rpcs ({s.grpc_max_concurrent_rpcs}): "
                "open streams would leave no room for other calls",
            )
        )
    return out


def _leadership_problems(s: Settings) -> list[SettingProblem]:
    """Lease timings that could let two replicas both believe they lead."""
    out: list[SettingProblem] = []
    if s.leader_election:
        if s.renew_deadline >= s.lease_duration:
            out.append(
                SettingProblem(
                    "renew_deadline",
                    f"must be shorter than lease_duration ({s.lease_duration:g} s), or two "
                    "replicas could both believe they lead",
                )
            )
        # client-go's rule: renewing needs room for at least one jittered retry.
        if s.retry_period * 1.2 >= s.renew_deadline:
            out.append(
                SettingProblem(
                    "retry_period",
                    f"must be under renew_deadline / 1.2 ({s.renew_deadline / 1.2:g} s)",
                )
            )
    return out


def check_files(s: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Check what the settings point to: files readable, key file 0600, key variable set.

    Raises `SettingsInvalid` naming each bad setting. Never reads a secret's
    content beyond checking that it is there.
    """
    env = os.environ if environ is None else environ
    problems: list[SettingProblem] = []

    def readable_file(setting: str, path: Path | None) -> os.stat_result | None:
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError as e:
            problems.append(SettingProblem(setting, f"{path}: {e.strerror or e}"))
            return None
        if not stat.S_ISREG(st.st_mode):
            problems.append(SettingProblem(setting, f"{path} is not a regular file"))
            return None
        if not os.access(path, os.R_OK):
            problems.append(SettingProblem(setting, f"{path} is not readable"))
            return None
        return st

    readable_file("kubeconfig", s.kubeconfig)
    readable_file("grpc_tls_cert_file", s.grpc_tls_cert_file)
    key_stat = readable_file("grpc_tls_key_file", s.grpc_tls_key_file)
    if key_stat is not None and key_stat.st_mode & 0o077:
        problems.append(
            SettingProblem(
                "grpc_tls_key_file",
                f"{s.grpc_tls_key_file} is accessible by group or others "
                f"(mode {stat.S_IMODE(key_stat.st_mode):04o}); chmod 600 it",
            )
        )
    readable_file("grpc_tls_client_ca_file", s.grpc_tls_client_ca_file)
    if s.publish_endpoint:
        st = readable_file("publish_key_file", s.publish_key_file)
        if st is not None and st.st_mode & 0o077:
            problems.append(
                SettingProblem(
                    "publish_key_file",
                    f"{s.publish_key_file} is accessible by group or others "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it",
                )
            )
        if s.publish_key_env and not env.get(s.publish_key_env, "").strip():
            problems.append(
                SettingProblem(
                    "publish_key_env", f"environment variable {s.publish_key_env} is not set"
                )
            )
        if s.node_key_secret_env:
            secret = env.get(s.node_key_secret_env, "")
            if not secret:
                problems.append(
                    SettingProblem(
                        "node_key_secret_env",
                        f"environment variable {s.node_key_secret_env} is not set",
                    )
                )
            elif len(secret_from_environment(secret)) < MIN_SECRET_BYTES:
                problems.append(
                    SettingProblem(
                        "node_key_secret_env",
                        f"the secret in {s.node_key_secret_env} is shorter than "
                        f"{MIN_SECRET_BYTES} bytes: too easy to guess",
                    )
                )
    if problems:
        raise SettingsInvalid(problems)
