"""Reading setting values: lists, maps, URLs, host:port, workload references. Pure."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from lbmanager.k8snames import (
    is_dns_label,
    is_dns_subdomain,
)

ENV_PREFIX: Final = "ICS_DISCOVERY_"
CONFIG_FILE_ENV: Final = ENV_PREFIX + "CONFIG_FILE"

# Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_...` for every
# Service in the namespace; a Service named `ics-discovery` gives variables with
# our prefix that are not settings. They must never stop the service.
SERVICE_LINK = re.compile(r"SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DENOM = re.compile(r"[a-zA-Z][a-zA-Z0-9/:._-]{2,127}")


LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "text"]


# --- reading list and map values -------------------------------------------


def split_list(value: Any) -> Any:
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


def split_map(value: Any) -> Any:
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


def url_setting(text: str, schemes: tuple[str, ...]) -> str:
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
