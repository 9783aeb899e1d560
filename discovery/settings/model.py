"""The settings model: every field, its type, default, group and help text, and derived views."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from chainmonitor.addresses import bech32_decode, parse_operator
from chainmonitor.errors import ChainMonitorError
from discovery.desired import ExposurePolicy
from discovery.endpoints import EndpointPolicy, EndpointProfile
from discovery.errors import DiscoveryError, InvalidChainId, InvalidEndpointPolicy
from discovery.interop import Compat
from discovery.peers import DEFAULT_MAX_PEERS, MAX_PEERS_LIMIT
from discovery.ports import PortScheme
from discovery.settings.values import (
    DENOM,
    ENV_NAME,
    ENV_PREFIX,
    LogFormat,
    LogLevel,
    parse_host_port,
    parse_workload_ref,
    split_list,
    split_map,
    url_setting,
)
from discovery.types import NotifyMode, parse_chain_id, parse_node_id
from lbmanager.k8snames import (
    is_dns1035_label,
    is_dns_label,
    is_dns_subdomain,
    is_label_key,
    is_label_value,
)

# --- the settings ------------------------------------------------------------

GROUPS: Final = (
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
    assert group in GROUPS
    return Field(default, description=description, json_schema_extra={"group": group}, **kwargs)


StrList = Annotated[list[str], NoDecode]
PortList = Annotated[list[Annotated[int, Field(ge=1, le=65535)]], NoDecode]
StrMap = Annotated[dict[str, str], NoDecode]
NotifyMap = Annotated[dict[str, NotifyMode], NoDecode]

# File data for the source below; set only for the duration of `load_settings`.
FILE_DATA: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "ics_discovery_settings_file", default=None
)


class _FileSource(PydanticBaseSettingsSource):
    """The settings file's values (already read and checked by `load_settings`)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        data = FILE_DATA.get() or {}
        return data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(FILE_DATA.get() or {})


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

    # --- restart hold-down and publishing limits ---
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
    # API limits: what many or hostile clients can take from the service.
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
    # Restart scope: the chart grants update on these workloads only.
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
        return split_list(value)

    @field_validator("consumer_pod_labels", "notify_modes", "notify_resources", mode="before")
    @classmethod
    def _maps(cls, value: Any) -> Any:
        return split_map(value)

    @field_validator("provider_rpc_urls", "provider_rest_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        return [url_setting(v, ("http", "https")) for v in value]

    @field_validator("provider_websocket_urls")
    @classmethod
    def _ws_urls(cls, value: list[str]) -> list[str]:
        return [url_setting(v, ("ws", "wss")) for v in value]

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
        if not DENOM.fullmatch(value):
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
        if value and not ENV_NAME.fullmatch(value):
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
