"""Every setting of `ics-discovery run`, validated once at start, from environment and file.

A validator configures the service through its Helm values, which become
environment variables (`ICS_DISCOVERY_<NAME>`) or one settings file (YAML,
TOML or JSON; `--config PATH` or `ICS_DISCOVERY_CONFIG_FILE`). Environment
wins over the file, the file over defaults. A service that starts with a bad
setting would fail later and far from the cause, so everything is checked
here, and each problem is reported with the setting's name and its variable.
`settings_help()` renders the reference from the fields themselves, so
`ics-discovery run --help` cannot drift from what is accepted.

The model itself is pure; `check_files` is the one step that looks at the
filesystem and the environment (key file mode 0600, certificate files, the key
variable), and it never reports a secret's value.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
import textwrap
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from chainmonitor.addresses import bech32_decode, parse_operator
from chainmonitor.errors import ChainMonitorError
from discovery.desired import ExposurePolicy
from discovery.endpoints import EndpointPolicy, EndpointProfile
from discovery.errors import DiscoveryError, InvalidChainId, InvalidEndpointPolicy
from discovery.interop import Compat
from discovery.nodekey import MIN_SECRET_BYTES, secret_from_environment
from discovery.peers import DEFAULT_MAX_PEERS, MAX_PEERS_LIMIT
from discovery.ports import PortScheme
from discovery.types import NotifyMode, parse_chain_id, parse_node_id
from lbmanager.k8snames import (
    is_dns1035_label,
    is_dns_label,
    is_dns_subdomain,
    is_label_key,
    is_label_value,
)

ENV_PREFIX: Final = "ICS_DISCOVERY_"
CONFIG_FILE_ENV: Final = ENV_PREFIX + "CONFIG_FILE"

# Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_...` for every
# Service in the namespace; a Service named `ics-discovery` gives variables with
# our prefix that are not settings. They must never stop the service.
_SERVICE_LINK = re.compile(r"SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DENOM = re.compile(r"[a-zA-Z][a-zA-Z0-9/:._-]{2,127}")


LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "text"]


# --- reading list and map values -------------------------------------------


def _split_list(value: Any) -> Any:
    """A list from JSON (`["a","b"]`) or comma-separated text; other values pass through."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not a JSON list: {e.msg}") from e
    return [item.strip() for item in text.split(",") if item.strip()]


def _split_map(value: Any) -> Any:
    """A map from a JSON object or `key=value,key=value` text; other values pass through."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not a JSON object: {e.msg}") from e
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value pairs separated by commas, got {item.strip()!r}")
        out[key.strip()] = val.strip()
    return out


def _url(text: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(text)
    if parts.scheme not in schemes:
        raise ValueError(f"{text!r} must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise ValueError(f"{text!r} has no host")
    try:
        _ = parts.port
    except ValueError as e:
        raise ValueError(f"{text!r} has an invalid port") from e
    if parts.username or parts.password:
        # Credentials in a URL end up in logs and error messages.
        raise ValueError("URLs must not carry credentials")
    return text.rstrip("/")


def parse_host_port(text: str, *, allow_empty_host: bool) -> tuple[str, int]:
    """`host:port` or `[v6]:port` (empty host = every interface when allowed)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{text!r} is not host:port")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as e:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from e
    elif ":" in host:
        raise ValueError(f"{text!r}: IPv6 addresses need brackets, as in [::1]:9400")
    if not host and not allow_empty_host:
        raise ValueError(f"{text!r} has no host")
    return host, port


_WORKLOAD_KINDS: Final = ("Deployment", "StatefulSet")


def parse_workload_ref(
    text: str, default_namespace: str | None, *, check_namespace: bool = True
) -> tuple[str, str, str]:
    """`Kind/namespace/name` or `Kind/name` (in `default_namespace`) as (kind, namespace, name)."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or parts[0] not in _WORKLOAD_KINDS:
        raise ValueError(
            f"{text!r} is not Kind/namespace/name or Kind/name with Kind Deployment or StatefulSet"
        )
    kind, name = parts[0], parts[-1]
    namespace = parts[1] if len(parts) == 3 else (default_namespace or "")
    if not is_dns_subdomain(name):
        raise ValueError(f"{text!r}: {name!r} is not a Kubernetes object name")
    if len(parts) == 3 and not is_dns_label(namespace):
        raise ValueError(f"{text!r}: {namespace!r} is not a namespace name")
    if check_namespace and not namespace:
        raise ValueError(f"{text!r} needs a namespace (consumer_namespace is empty)")
    return kind, namespace, name


# --- the settings ------------------------------------------------------------

_GROUPS: Final = (
    "provider chain",
    "Kubernetes",
    "ports",
    "consumer nodes",
    "loop",
    "endpoint publication",
    "leader election",
    "API",
    "operations",
    "endpoint policy",
)


def _setting(group: str, description: str, default: Any = ..., **kwargs: Any) -> Any:
    assert group in _GROUPS
    return Field(default, description=description, json_schema_extra={"group": group}, **kwargs)


StrList = Annotated[list[str], NoDecode]
PortList = Annotated[list[Annotated[int, Field(ge=1, le=65535)]], NoDecode]
StrMap = Annotated[dict[str, str], NoDecode]
NotifyMap = Annotated[dict[str, NotifyMode], NoDecode]

# File data for the source below; set only for the duration of `load_settings`.
_FILE_DATA: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "ics_discovery_settings_file", default=None
)


class _FileSource(PydanticBaseSettingsSource):
    """The settings file's values (already read and checked by `load_settings`)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        data = _FILE_DATA.get() or {}
        return data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get() or {})


class Settings(BaseSettings):
    """Settings of one `ics-discovery run`; see `settings_help()` for the reference."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        validate_default=True,
    )

    # provider chain
    provider_rpc_urls: StrList = _setting(
        "provider chain",
        "CometBFT RPC of provider nodes (http:// or https://); the first that answers is "
        "used, the others are failover.",
        min_length=1,
    )
    provider_websocket_urls: StrList = _setting(
        "provider chain",
        "CometBFT WebSocket endpoints (ws:// or wss://); empty: each RPC URL + /websocket.",
        default_factory=list,
    )
    provider_grpc_urls: StrList = _setting(
        "provider chain",
        "Cosmos gRPC endpoints (host:port), for registry and consumer queries and for "
        "publishing our endpoint; at least one of these or provider_rest_urls is needed.",
        default_factory=list,
    )
    provider_grpc_tls: bool = _setting(
        "provider chain", "Connect to the gRPC endpoints with TLS.", False
    )
    provider_rest_urls: StrList = _setting(
        "provider chain",
        "Cosmos REST (LCD) endpoints (http:// or https://), used when gRPC fails.",
        default_factory=list,
    )
    operator_address: str = _setting(
        "provider chain",
        "Our validator's operator address (cosmosvaloper1...): decides which consumer "
        "chains we opted in to and which endpoint is ours.",
    )

    # Kubernetes
    kubeconfig: Path | None = _setting(
        "Kubernetes",
        "kubeconfig file; empty: the in-cluster ServiceAccount.",
        None,
    )
    service_name: str = _setting(
        "Kubernetes", "The shared LoadBalancer Service for consumer ports.", "p2p-loadbalancer"
    )
    service_namespace: str = _setting(
        "Kubernetes", "Namespace of that Service and of its EndpointSlices.", "provider"
    )

    # ports
    port_scheme: PortScheme = _setting(
        "ports",
        "How ports follow from the chain ID: document (P2P 30100+offset, ...) or "
        "ics-operator (26756+10*offset, ..., as the Go implementation).",
        PortScheme.DOCUMENT,
    )
    reserved_ports: PortList = _setting(
        "ports",
        "Ports no consumer chain may get (comma-separated or a JSON list).",
        default_factory=list,
    )
    compat: Compat = _setting(
        "ports",
        "none, or ics-operator for networks that also run the Go implementation: its "
        "reserved ports and endpoint forms, and for validators that publish no node=, "
        "the node ID Go derives from their moniker (INSECURE: anyone can compute that "
        "key; each such validator is logged once and counted). Needs port_scheme "
        "ics-operator. See docs/interop.md.",
        Compat.NONE,
    )
    max_peers: int = _setting(
        "consumer nodes",
        "At most this many persistent peers per consumer chain: the validators with the "
        f"most power on that chain (1..{MAX_PEERS_LIMIT}).",
        DEFAULT_MAX_PEERS,
        ge=1,
        le=MAX_PEERS_LIMIT,
    )

    # consumer nodes
    consumer_namespace: str | None = _setting(
        "consumer nodes",
        "Namespace of the consumer pods; empty: every namespace. Pods are found by the "
        "label ics-discovery.io/chain-id-hash and the annotation ics-discovery.io/chain-id.",
        None,
    )
    peers_namespaces: StrList = _setting(
        "consumer nodes",
        "With consumer_namespace empty: the namespaces whose consumer pods are served "
        "(traffic routed, dialled, peers ConfigMaps written; stale ConfigMaps looked for "
        "there); a consumer pod elsewhere is reported, not served. Empty: every namespace "
        "(needs cluster-wide ConfigMap access).",
        default_factory=list,
    )
    consumer_pod_labels: StrMap = _setting(
        "consumer nodes",
        "Extra labels consumer pods must carry (key=value,... or a JSON object).",
        default_factory=dict,
    )
    consumer_rpc_port: int = _setting(
        "consumer nodes",
        "CometBFT RPC port inside consumer pods (for dial_peers and /status).",
        26657,
        ge=1,
        le=65535,
    )
    notify_default: NotifyMode = _setting(
        "consumer nodes",
        "How a consumer node learns its peers changed: restart (peers-hash annotation on "
        "its Deployment/StatefulSet pod template), dial (unsafe dial_peers), cosmos-operator "
        "(spec.chain.config.peers of its CosmosFullNode), cosmopilot (the peers of its "
        "ChainNodeSet or ChainNode), or none.",
        NotifyMode.NONE,
    )
    notify_modes: NotifyMap = _setting(
        "consumer nodes",
        "Per chain ID, overrides notify_default (chain-a=restart,chain-b=dial or JSON).",
        default_factory=dict,
    )
    notify_resources: StrMap = _setting(
        "consumer nodes",
        "Per chain ID, the node resource of a cosmos-operator or cosmopilot chain, as "
        "[Kind/]name in the served namespaces (chain-a=ChainNodeSet/chain-a-nodes); empty: "
        "every one whose chain ID is the chain's.",
        default_factory=dict,
    )

    # loop
    resync_interval: float = _setting(
        "loop",
        "Seconds between full resyncs (re-read the chain and Kubernetes, write only differences).",
        300.0,
        gt=0,
    )

    # endpoint publication
    publish_endpoint: bool = _setting(
        "endpoint publication",
        "Publish our LoadBalancer address on chain (edit-validator) when it differs from "
        "what the chain shows.",
        False,
    )
    publish_key_file: Path | None = _setting(
        "endpoint publication",
        "File holding the signing key's mnemonic (mode 0600). Set this or publish_key_env.",
        None,
    )
    publish_key_env: str | None = _setting(
        "endpoint publication",
        "Name of an environment variable holding the signing key's mnemonic.",
        None,
    )
    publish_authz_granter: str | None = _setting(
        "endpoint publication",
        "The operator's account address (cosmos1...) when the key is an authz grantee "
        "(MsgExec); checked against operator_address and the key before anything is sent. "
        "Empty: whichever the key is (the operator's own key signs directly, any other "
        "key through its grant).",
        None,
    )
    publish_fee_denom: str = _setting(
        "endpoint publication",
        "Denomination the edit-validator fee is paid in (for example uatom).",
        "stake",
    )
    publish_gas_price: float = _setting(
        "endpoint publication",
        "Fee per unit of gas, in publish_fee_denom; at least the provider nodes' "
        "minimum-gas-prices, or the chain refuses the transaction.",
        0.0,
        ge=0,
    )
    publish_gas_adjustment: float = _setting(
        "endpoint publication",
        "Gas limit = simulated gas times this.",
        1.5,
        ge=1,
    )
    publish_node_id: str | None = _setting(
        "endpoint publication",
        "Node ID (40 hexadecimal digits) of our consumer nodes, published as node= next "
        "to our address; other validators cannot peer with us without it. Empty: keep "
        "whatever node= the chain shows (or derive it with node_key_secret_env).",
        None,
    )
    node_key_secret_env: str | None = _setting(
        "endpoint publication",
        "Name of an environment variable holding the secret our consumer nodes' key is "
        "derived from (`ics-discovery nodekey derive --secret-file` without --chain-id); "
        "its node ID is published as node=. Only the ID leaves the process.",
        None,
    )

    # --- restart hold-down and publishing limits (issue 14 part B) ---
    restart_hold_down: float = _setting(
        "consumer nodes",
        "Restart mode: seconds after rolling a chain's consumer workloads before they are "
        "rolled again. Peers that change within it are written to the ConfigMap at once; "
        "the workloads are rolled once when it ends, with the latest peers. 0: no hold-down.",
        60.0,
        ge=0,
    )
    publish_max_fee: int = _setting(
        "endpoint publication",
        "Largest fee (in publish_fee_denom) one edit-validator may cost; a transaction "
        "whose computed fee is higher is not sent.",
        1_000_000,
        ge=0,
    )
    publish_hold_down: float = _setting(
        "endpoint publication",
        "Seconds a new LoadBalancer address must stay unchanged before it is published.",
        30.0,
        ge=0,
    )
    publish_min_interval: float = _setting(
        "endpoint publication",
        "Seconds between two publications (a later change waits, then the latest address "
        "is published).",
        300.0,
        ge=0,
    )
    # --- end of issue 14 part B settings ---

    # leader election
    leader_election: bool = _setting(
        "leader election",
        "Elect a leader with a coordination.k8s.io Lease; only the leader writes.",
        True,
    )
    lease_name: str = _setting("leader election", "Name of the Lease.", "ics-discovery-leader")
    lease_namespace: str | None = _setting(
        "leader election", "Namespace of the Lease; empty: service_namespace.", None
    )
    lease_duration: float = _setting(
        "leader election",
        "Seconds a leader holds the Lease without renewing; a new leader takes over after it.",
        15.0,
        gt=0,
    )
    renew_deadline: float = _setting(
        "leader election",
        "Seconds the leader keeps trying to renew before it stops writing.",
        10.0,
        gt=0,
    )
    retry_period: float = _setting(
        "leader election", "Seconds between attempts to acquire or renew.", 2.0, gt=0
    )
    leader_identity: str | None = _setting(
        "leader election",
        "This replica's identity in the Lease; empty: the host name and a random suffix.",
        None,
    )

    # API
    grpc_listen: str = _setting(
        "API", "gRPC API listen address (host:port, IPv6 in brackets).", "127.0.0.1:9400"
    )
    grpc_tls_cert_file: Path | None = _setting(
        "API", "PEM certificate chain: turns on TLS for the gRPC API.", None
    )
    grpc_tls_key_file: Path | None = _setting("API", "PEM private key of that certificate.", None)
    grpc_tls_client_ca_file: Path | None = _setting(
        "API", "PEM CA bundle: turns on mutual TLS; clients need a certificate it signed.", None
    )
    grpc_reflection: bool = _setting(
        "API",
        "Serve gRPC server reflection, so generic clients (grpcurl) list, describe and call "
        "the API without the .proto files.",
        True,
    )
    # API limits (issue 14): what many or hostile clients can take from the service.
    grpc_max_concurrent_rpcs: int = _setting(
        "API",
        "At most this many gRPC calls (WatchPeers streams included) at once; gRPC answers "
        "RESOURCE_EXHAUSTED beyond it.",
        256,
        ge=1,
        le=100_000,
    )
    grpc_max_streams: int = _setting(
        "API",
        "At most this many WatchPeers streams open at once; the next is refused with "
        "RESOURCE_EXHAUSTED (and counted). Below grpc_max_concurrent_rpcs, so unary calls "
        "always have room.",
        128,
        ge=1,
        le=100_000,
    )
    # Restart scope (issue 14): the chart grants update on these workloads only.
    restart_workloads: StrList = _setting(
        "consumer nodes",
        "Restart mode: the only consumer workloads that may be rolled, as Kind/namespace/name "
        "or Kind/name (namespace: consumer_namespace), Kind Deployment or StatefulSet; any "
        "other workload running a chain is reported as refused, never written. Empty: every "
        "workload running the chain.",
        default_factory=list,
    )

    # operations
    metrics_listen: str = _setting(
        "operations",
        "Listen address for /metrics, /healthz and /readyz (host:port; empty host: every "
        "interface).",
        ":9401",
    )
    log_level: LogLevel = _setting("operations", "debug, info, warning or error.", "info")
    log_format: LogFormat = _setting("operations", "json (one object per line) or text.", "json")

    # endpoint policy
    endpoint_profile: EndpointProfile = _setting(
        "endpoint policy",
        "mainnet: only public unicast addresses, no DNS names (for validators' endpoints and "
        "our own); testnet: private ranges and DNS names too (Kind, local testnets).",
        EndpointProfile.MAINNET,
    )
    endpoint_deny_cidrs: StrList = _setting(
        "endpoint policy",
        "Networks never accepted as a validator's endpoint (CIDRs), on top of loopback, "
        "link-local, multicast and reserved.",
        default_factory=list,
    )
    endpoint_allow_cidrs: StrList = _setting(
        "endpoint policy",
        "When set, IP endpoints must fall in one of these networks (CIDRs).",
        default_factory=list,
    )
    endpoint_allow_dns_names: bool | None = _setting(
        "endpoint policy",
        "Accept DNS names as endpoints (CIDR lists cannot judge them); unset: the profile's "
        "choice (mainnet no, testnet yes).",
        None,
    )
    endpoint_deny_name_suffixes: StrList = _setting(
        "endpoint policy",
        "DNS suffixes never accepted as endpoints.",
        default_factory=lambda: ["local"],
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments, then the environment, then the settings file.
        return (init_settings, env_settings, _FileSource(settings_cls))

    # --- field checks ------------------------------------------------------

    @field_validator(
        "provider_rpc_urls",
        "provider_websocket_urls",
        "provider_grpc_urls",
        "provider_rest_urls",
        "reserved_ports",
        "peers_namespaces",
        "endpoint_deny_cidrs",
        "endpoint_allow_cidrs",
        "endpoint_deny_name_suffixes",
        "restart_workloads",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("consumer_pod_labels", "notify_modes", "notify_resources", mode="before")
    @classmethod
    def _maps(cls, value: Any) -> Any:
        return _split_map(value)

    @field_validator("provider_rpc_urls", "provider_rest_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        return [_url(v, ("http", "https")) for v in value]

    @field_validator("provider_websocket_urls")
    @classmethod
    def _ws_urls(cls, value: list[str]) -> list[str]:
        return [_url(v, ("ws", "wss")) for v in value]

    @field_validator("provider_grpc_urls")
    @classmethod
    def _grpc_targets(cls, value: list[str]) -> list[str]:
        for v in value:
            _, port = parse_host_port(v, allow_empty_host=False)
            if port == 0:
                raise ValueError(f"{v!r} needs a port")
        return value

    @field_validator("operator_address")
    @classmethod
    def _operator(cls, value: str) -> str:
        try:
            return parse_operator(value.strip())
        except ChainMonitorError as e:
            raise ValueError(f"not an operator address (<prefix>valoper1...): {e}") from e

    @field_validator("publish_fee_denom")
    @classmethod
    def _denom(cls, value: str) -> str:
        # The SDK's coin denomination rule (sdk.Coin validation).
        if not _DENOM.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a coin denomination (3-128 characters: a letter, then "
                "letters, digits, /, :, ., _ or -)"
            )
        return value

    @field_validator("publish_node_id", mode="before")
    @classmethod
    def _node_id(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return parse_node_id(str(value).strip())
        except DiscoveryError as e:
            raise ValueError(str(e)) from e

    @field_validator("publish_authz_granter")
    @classmethod
    def _granter(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            hrp, _ = bech32_decode(value.strip())
        except ChainMonitorError as e:
            raise ValueError(f"not an account address (cosmos1...): {e}") from e
        if hrp.endswith(("valoper", "valcons")):
            raise ValueError("expected the operator's account address (cosmos1...), not valoper")
        return value.strip().lower()

    @field_validator("lease_namespace", "consumer_namespace", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("peers_namespaces")
    @classmethod
    def _dns_labels(cls, value: list[str]) -> list[str]:
        for v in value:
            cls._dns_label(v)
        return sorted(set(value))

    @field_validator("service_namespace", "lease_namespace", "consumer_namespace", "lease_name")
    @classmethod
    def _dns_label(cls, value: str | None) -> str | None:
        if value is not None and not is_dns_label(value):
            raise ValueError(
                f"{value!r} is not a DNS label (lower-case letters, digits, '-', at most 63)"
            )
        return value

    @field_validator("service_name")
    @classmethod
    def _service_name(cls, value: str) -> str:
        if not is_dns1035_label(value):
            raise ValueError(
                f"{value!r} is not a Service name (lower-case letters, digits, '-', "
                "starting with a letter, at most 63)"
            )
        return value

    @field_validator("consumer_pod_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not is_label_key(key):
                raise ValueError(f"{key!r} is not a label key")
            if not is_label_value(val):
                raise ValueError(f"{val!r} (label {key}) is not a label value")
        return dict(sorted(value.items()))

    @field_validator("notify_modes")
    @classmethod
    def _notify_chains(cls, value: dict[str, NotifyMode]) -> dict[str, NotifyMode]:
        for chain_id in value:
            try:
                parse_chain_id(chain_id)
            except InvalidChainId as e:
                raise ValueError(str(e)) from e
        return dict(sorted(value.items()))

    @field_validator("notify_resources")
    @classmethod
    def _notify_resources(cls, value: dict[str, str]) -> dict[str, str]:
        for chain_id, ref in value.items():
            try:
                parse_chain_id(chain_id)
            except InvalidChainId as e:
                raise ValueError(str(e)) from e
            kind, sep, name = ref.strip().rpartition("/")
            if (sep and not kind) or not is_dns_subdomain(name):
                raise ValueError(
                    f"{ref!r} (chain {chain_id}) is not [Kind/]name with a Kubernetes object name"
                )
        return {k: v.strip() for k, v in sorted(value.items())}

    @field_validator("restart_workloads")
    @classmethod
    def _restart_workloads(cls, value: list[str]) -> list[str]:
        for ref in value:
            parse_workload_ref(ref, None, check_namespace=False)
        return sorted(set(value))

    @field_validator("reserved_ports")
    @classmethod
    def _sorted_ports(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @field_validator("grpc_listen")
    @classmethod
    def _grpc_listen(cls, value: str) -> str:
        parse_host_port(value, allow_empty_host=False)
        return value

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, value: str) -> str:
        parse_host_port(value, allow_empty_host=True)
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("publish_key_env", "node_key_secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value and not _ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value or None

    @field_validator("endpoint_deny_cidrs", "endpoint_allow_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        try:
            EndpointPolicy.from_strings(deny=value)
        except InvalidEndpointPolicy as e:
            raise ValueError(str(e)) from e
        return value

    @field_validator("endpoint_deny_name_suffixes")
    @classmethod
    def _suffixes(cls, value: list[str]) -> list[str]:
        try:
            EndpointPolicy.from_strings(deny_name_suffixes=value)
        except InvalidEndpointPolicy as e:
            raise ValueError(str(e)) from e
        return value

    # --- derived values ----------------------------------------------------

    def grpc_targets(self) -> list[str]:
        """The provider gRPC endpoints as clients take them: `grpcs://host:port` with TLS."""
        if self.provider_grpc_tls:
            return [f"grpcs://{url}" for url in self.provider_grpc_urls]
        return list(self.provider_grpc_urls)

    def websocket_urls(self) -> list[str]:
        """The WebSocket endpoints: explicit ones, else each RPC URL + /websocket."""
        if self.provider_websocket_urls:
            return list(self.provider_websocket_urls)
        out = []
        for url in self.provider_rpc_urls:
            parts = urlsplit(url)
            scheme = "wss" if parts.scheme == "https" else "ws"
            out.append(parts._replace(scheme=scheme, path=parts.path + "/websocket").geturl())
        return out

    def endpoint_policy(self) -> EndpointPolicy:
        return EndpointPolicy.for_profile(
            self.endpoint_profile,
            deny=self.endpoint_deny_cidrs,
            allow=self.endpoint_allow_cidrs,
            allow_dns_names=self.endpoint_allow_dns_names,
            deny_name_suffixes=self.endpoint_deny_name_suffixes,
        )

    def exposure_policy(self) -> ExposurePolicy:
        """What `discovery.desired` needs of these settings, as a plain value."""
        return ExposurePolicy(
            scheme=self.port_scheme,
            reserved_ports=frozenset(self.reserved_ports),
            compat=self.compat,
            consumer_namespace=self.consumer_namespace,
            peers_namespaces=frozenset(self.peers_namespaces),
            consumer_pod_labels=dict(self.consumer_pod_labels),
            notify_default=self.notify_default,
            notify_modes=dict(self.notify_modes),
            max_peers=self.max_peers,
        )

    def notify_mode(self, chain_id: str) -> NotifyMode:
        return self.notify_modes.get(chain_id, self.notify_default)

    def restart_scope(self) -> frozenset[tuple[str, str, str]] | None:
        """The (kind, namespace, name) restart mode may roll; None: any workload of the chain."""
        if not self.restart_workloads:
            return None
        return frozenset(
            parse_workload_ref(r, self.consumer_namespace) for r in self.restart_workloads
        )

    def effective_lease_namespace(self) -> str:
        return self.lease_namespace or self.service_namespace

    def public_view(self) -> dict[str, Any]:
        """Every setting as JSON data (no setting holds a secret value: only paths and names)."""
        return json.loads(self.model_dump_json())  # type: ignore[no-any-return]


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


# --- loading -----------------------------------------------------------------


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings in a YAML (.yaml, .yml), TOML (.toml) or JSON (.json) file."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problem = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SettingsInvalid([SettingProblem("config_file", f"{path}: {problem}")]) from e
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise SettingsInvalid(
                [SettingProblem("config_file", f"{path}: use a .yaml, .yml, .toml or .json file")]
            )
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SettingsInvalid(
            [SettingProblem("config_file", f"{path} is not valid {suffix[1:]}: {first}")]
        ) from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsInvalid(
            [SettingProblem("config_file", f"{path}: expected a mapping of setting names")]
        )
    fields = Settings.model_fields
    unknown = sorted(str(k) for k in data if str(k) not in fields)
    if unknown:
        raise SettingsInvalid(
            [SettingProblem(k, f"unknown setting in {path}") for k in unknown], source=str(path)
        )
    return {str(k): v for k, v in data.items()}


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Variables with our prefix that are no setting (likely typos), for a warning at start."""
    env = os.environ if environ is None else environ
    out = []
    for name in env:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper == CONFIG_FILE_ENV:
            continue
        rest = upper[len(ENV_PREFIX) :]
        if rest.lower() in Settings.model_fields or _SERVICE_LINK.fullmatch(rest):
            continue
        out.append(name)
    return sorted(out)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from `overrides`, the environment, then the settings file, then defaults.

    `config_file` defaults to `$ICS_DISCOVERY_CONFIG_FILE`. Raises
    `SettingsInvalid` naming every bad setting.
    """
    if config_file is None and os.environ.get(CONFIG_FILE_ENV, "").strip():
        config_file = Path(os.environ[CONFIG_FILE_ENV].strip())
    data = read_settings_file(config_file) if config_file is not None else {}
    source = str(config_file) if config_file is not None else ""
    token = _FILE_DATA.set(data)
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        raise SettingsInvalid(_problems(e), source=source) from e
    except SettingsError as e:
        raise SettingsInvalid([SettingProblem(_field_in(str(e)), str(e))], source=source) from e
    finally:
        _FILE_DATA.reset(token)
    problems = consistency_problems(settings)
    if problems:
        raise SettingsInvalid(problems, source=source)
    return settings


def _field_in(message: str) -> str:
    m = re.search(r'field "(\w+)"', message)
    return m.group(1) if m else "settings"


def _problems(e: ValidationError) -> list[SettingProblem]:
    out: list[SettingProblem] = []
    for err in e.errors(include_input=False, include_url=False):
        msg = str(err.get("msg", "invalid"))
        loc = [str(x) for x in err.get("loc", ())]
        setting = loc[0] if loc else "settings"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err.get("type") == "missing":
            msg = "required, not set"
        elif len(loc) > 1:
            msg = f"item {'.'.join(loc[1:])}: {msg}"
        out.append(SettingProblem(setting, msg))
    return out


# --- help --------------------------------------------------------------------


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _type_text(args[0])
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _type_text(inner[0]) if len(inner) == 1 else "value"
    if origin is Literal:
        return "|".join(str(a) for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"map to {_type_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "|".join(str(m.value) for m in annotation)
    names = {bool: "true|false", int: "integer", float: "number", str: "text", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", "value"))


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None or value == [] or value == {}:
        return "empty"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def settings_help(width: int = 100) -> str:
    """The settings reference, rendered from the model's fields."""
    by_group: dict[str, list[tuple[str, FieldInfo]]] = {g: [] for g in _GROUPS}
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra
        group = extra.get("group") if isinstance(extra, dict) else None
        by_group[str(group)].append((name, info))
    lines = [
        f"Settings: environment variables {ENV_PREFIX}<NAME>, or NAME: value in a YAML, TOML or",
        f"JSON file given by --config or {CONFIG_FILE_ENV} (environment wins over the file).",
        "Lists: comma-separated or a JSON list. Maps: key=value,key=value or a JSON object.",
    ]
    for group in _GROUPS:
        lines += ["", f"{group}:"]
        for name, info in by_group[group]:
            head = (
                f"  {ENV_PREFIX}{name.upper()}  "
                f"({_type_text(info.annotation)}; default: {_default_text(info)})"
            )
            lines.append(head)
            lines += textwrap.wrap(
                info.description or "",
                width=width,
                initial_indent="      ",
                subsequent_indent="      ",
                break_on_hyphens=False,
            )
    return "\n".join(lines) + "\n"
