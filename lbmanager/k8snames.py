"""Kubernetes' name rules, written once: every module that checks a name asks here.

The rules are those of `k8s.io/apimachinery/pkg/util/validation`: RFC 1123
labels (namespaces, Service port names), RFC 1035 labels (Service names),
RFC 1123 subdomains (most object names, label-key prefixes), qualified names
(label keys) and label values. Every check matches the whole text (a trailing
newline is not a name).
"""

from __future__ import annotations

import re
from typing import Final

DNS_LABEL_MAX: Final = 63
DNS_SUBDOMAIN_MAX: Final = 253
LABEL_VALUE_MAX: Final = 63
QUALIFIED_NAME_MAX: Final = 63

_DNS1123_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN: Final = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_DNS1035_LABEL: Final = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def is_dns_label(text: str) -> bool:
    """RFC 1123 label (IsDNS1123Label): namespaces, Service port names, most short names."""
    return len(text) <= DNS_LABEL_MAX and _DNS1123_LABEL.fullmatch(text) is not None


def is_dns1035_label(text: str) -> bool:
    """RFC 1035 label (IsDNS1035Label): Service names, which must start with a letter."""
    return len(text) <= DNS_LABEL_MAX and _DNS1035_LABEL.fullmatch(text) is not None


def is_dns_subdomain(text: str) -> bool:
    """RFC 1123 subdomain (IsDNS1123Subdomain): object names, label-key prefixes."""
    return len(text) <= DNS_SUBDOMAIN_MAX and _DNS1123_SUBDOMAIN.fullmatch(text) is not None


def is_label_key(text: str) -> bool:
    """A label or annotation key (IsQualifiedName): `[prefix/]name`."""
    prefix, sep, name = text.rpartition("/")
    if sep and not is_dns_subdomain(prefix):
        return False
    return len(name) <= QUALIFIED_NAME_MAX and _QUALIFIED_NAME.fullmatch(name) is not None


def is_label_value(text: str) -> bool:
    """A label value (IsValidLabelValue); the empty string is one."""
    return text == "" or (
        len(text) <= LABEL_VALUE_MAX and _QUALIFIED_NAME.fullmatch(text) is not None
    )
