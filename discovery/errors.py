"""The error tree of the `discovery` package.

Every error `discovery` raises derives from `DiscoveryError`, carries its data as
attributes, builds its message from them, and says through `transient` whether
retrying the same operation could succeed. Errors about input that a validator
wrote on chain quote that input only through `quote_untrusted`, so a hostile
string can never forge log lines or terminal output, and no error ever carries
key material.
"""

from __future__ import annotations

from typing import ClassVar

from lbmanager.errors import LbManagerError

# Longest excerpt of untrusted input an error message quotes.
_QUOTE_LIMIT = 64


def quote_untrusted(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """Quote untrusted text for a one-line message: ASCII only, escaped, bounded."""
    if len(text) > limit:
        return ascii(text[:limit]) + "..."
    return ascii(text)


class DiscoveryError(Exception):
    """Base of every error raised by `discovery`."""

    # Permanent by default: pure domain logic gives the same answer on retry.
    transient: ClassVar[bool] = False


class InvalidInput(DiscoveryError):
    """A value given to the domain core is malformed (permanent)."""


class InvalidChainId(InvalidInput):
    """A chain ID is empty, blank, not UTF-8 or longer than CometBFT allows."""

    def __init__(self, chain_id: str, problem: str) -> None:
        self.chain_id = chain_id
        self.problem = problem
        super().__init__(f"invalid chain ID {quote_untrusted(chain_id)}: {problem}")


class InvalidConsumerId(InvalidInput):
    """A consumer ID is not a canonical decimal uint64."""

    def __init__(self, consumer_id: str, problem: str) -> None:
        self.consumer_id = consumer_id
        self.problem = problem
        super().__init__(f"invalid consumer ID {quote_untrusted(consumer_id)}: {problem}")


class DuplicateConsumerId(InvalidInput):
    """Two consumer chains in one allocation share a consumer ID."""

    def __init__(self, consumer_id: str) -> None:
        self.consumer_id = consumer_id
        super().__init__(f"duplicate consumer ID {quote_untrusted(consumer_id)}")


class InvalidNodeId(InvalidInput):
    """A node ID is not 40 hexadecimal digits."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        super().__init__(
            f"invalid node ID {quote_untrusted(node_id)}: expected 40 hexadecimal digits"
        )


class InvalidPort(InvalidInput):
    """A port number is outside 1..65535."""

    def __init__(self, port: object) -> None:
        self.port = port
        super().__init__(f"invalid port {port!r}: expected an integer in 1..65535")


class InvalidEndpointPolicy(InvalidInput):
    """A deny or allow list entry is not a CIDR network, or a name suffix is malformed."""

    def __init__(self, entry: str, problem: str) -> None:
        self.entry = entry
        self.problem = problem
        super().__init__(f"invalid endpoint policy entry {quote_untrusted(entry)}: {problem}")


class PortSpaceExhausted(DiscoveryError):
    """No free port is left in a scheme's range for one kind of port (permanent).

    Retrying cannot help: the same consumer chains give the same answer. Fewer
    chains, fewer reserved ports or the other scheme can.
    """

    def __init__(self, consumer_id: str, chain_id: str, kind: str, scheme: str) -> None:
        self.consumer_id = consumer_id
        self.chain_id = chain_id
        self.kind = kind
        self.scheme = scheme
        super().__init__(
            f"no free {kind} port left in the {scheme} scheme for consumer "
            f"{quote_untrusted(consumer_id)} (chain {quote_untrusted(chain_id)})"
        )


class EndpointRejected(DiscoveryError):
    """Published endpoint text was rejected (permanent until the validator edits it)."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class DetailsTooLong(DiscoveryError):
    """New description details would exceed the chain's byte limit (permanent)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"details would be {size} bytes, over the limit of {limit}; shorten the operator's text"
        )


class GoUnreadableDetails(DiscoveryError):
    """New details would not give the Go implementation's reader our host (permanent)."""


class NodeKeyError(DiscoveryError):
    """A node key cannot be read, decoded or derived (permanent).

    Messages never include key material, only what is wrong with it.
    """


class InvalidNodeKey(NodeKeyError):
    """A `node_key.json` document is malformed or internally inconsistent."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"invalid node key: {problem}")


class WeakSecret(NodeKeyError):
    """A secret offered for node key derivation is too short to be unguessable."""

    def __init__(self, size: int, minimum: int) -> None:
        self.size = size
        self.minimum = minimum
        super().__init__(f"secret is {size} bytes; at least {minimum} random bytes are required")


class InvalidPeerEntry(DiscoveryError):
    """A `persistent_peers` entry would not pass CometBFT's own checks (permanent)."""

    def __init__(self, entry: str, problem: str) -> None:
        self.entry = entry
        self.problem = problem
        super().__init__(f"invalid peer entry {quote_untrusted(entry, 120)}: {problem}")


class KubernetesWriteError(DiscoveryError):
    """Writing a peers ConfigMap or rolling a workload failed; `transient`: a retry can help."""

    def __init__(self, what: str, problem: str, *, transient: bool) -> None:
        self.what = what
        self.problem = problem
        self.transient = transient  # type: ignore[misc]
        super().__init__(f"{what}: {problem}")

    @classmethod
    def of(cls, what: str, error: LbManagerError) -> KubernetesWriteError:
        """A Kubernetes error as the write error of `what`, keeping whether it is transient."""
        return cls(what, error.message, transient=error.transient)


class ServiceError(DiscoveryError):
    """A setting keeps the service from doing a job (permanent until the setting changes)."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"setting {setting}: {problem}")
