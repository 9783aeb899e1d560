"""The one error tree of `chainmonitor`: every failure that leaves the package is one of these.

Third-party exceptions (grpc, websockets, cosmpy, urllib) are translated at the
boundary, chained with `from`, and each error says whether retrying can help
(`transient`), so callers decide between "retry later" and "report and stop"
without parsing messages.
"""

from __future__ import annotations


class ChainMonitorError(Exception):
    """Base of every error raised by `chainmonitor`."""

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class FrameRejected(ChainMonitorError):
    """A WebSocket frame that is not valid JSON-RPC of the expected shape, or too large.

    Permanent for that frame: it is counted and dropped, the stream goes on.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"frame rejected ({reason}){': ' + detail if detail else ''}")


class InvalidQuery(ChainMonitorError):
    """A subscription query CometBFT would refuse (syntax, length, per-client limit). Permanent."""


class StreamError(ChainMonitorError):
    """The event stream broke (connect failed, closed, silent, subscription refused). Transient."""

    transient = True


class ChainUnavailable(ChainMonitorError):
    """No node answered (connection refused, timeout, unavailable). Transient."""

    transient = True


class QueryFailed(ChainMonitorError):
    """A node answered a query with an error.

    Transient unless the node said the request itself is wrong (`transient=False`).
    """

    transient = True

    def __init__(
        self, query: str, detail: str, *, transient: bool = True, not_found: bool = False
    ) -> None:
        self.query = query
        self.detail = detail
        self.not_found = not_found
        super().__init__(f"{query}: {detail}", transient=transient)


class InvalidChainData(ChainMonitorError):
    """One record from the chain (a validator, a consumer chain) cannot be understood. Permanent."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class SigningKeyError(ChainMonitorError):
    """A signing key cannot be loaded: missing, unsafe file mode, malformed. Permanent.

    Messages name the file or variable, never any part of the key.
    """


class PublishError(ChainMonitorError):
    """Publishing our endpoint with `MsgEditValidator` failed."""


class InsufficientFees(PublishError):
    """The node refused the fee offered. Permanent until the gas price is raised."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"insufficient fees: {detail} (raise --gas-price)")


class FeeTooHigh(PublishError):
    """The computed fee exceeds the configured maximum: nothing was sent. Permanent."""

    def __init__(self, fee: int, max_fee: int, denom: str) -> None:
        self.fee = fee
        self.max_fee = max_fee
        super().__init__(
            f"the fee would be {fee}{denom}, over the maximum of {max_fee}{denom} "
            "(publish_max_fee): not sent"
        )


class UnauthorizedSigner(PublishError):
    """The key may not edit this validator (no authz grant for MsgEditValidator, not the operator).

    Permanent until the operator creates the grant.
    """


class UnsupportedSigner(PublishError):
    """The signing account is not a base account (a vesting or module account). Permanent.

    cosmpy signs only for a plain `BaseAccount`; use another key (a grantee key
    of a base account, with an authz grant) to publish.
    """


class SigningLibraryError(PublishError):
    """The signing library (cosmpy) failed in a way it does not classify itself. Permanent."""


class AuthzUnsupported(PublishError):
    """The chain has no authz module, so a grantee key cannot publish there. Permanent.

    The reference provider app of Interchain Security (`interchain-security-pd`)
    has none; the Cosmos Hub has one.
    """


class UnknownValidator(PublishError):
    """The chain has no validator with that operator address. Permanent."""


class TxRejected(PublishError):
    """The chain refused or failed the transaction for another reason. Permanent."""

    def __init__(self, detail: str, tx_hash: str | None = None) -> None:
        self.tx_hash = tx_hash
        where = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"transaction rejected{where}: {detail}")


class TxNotCommitted(PublishError):
    """The transaction was accepted but not seen in a block in time. Transient."""

    transient = True

    def __init__(self, tx_hash: str, waited: float, why: str = "") -> None:
        self.tx_hash = tx_hash
        reason = f": {why}" if why else ""
        super().__init__(f"tx {tx_hash} not committed after {waited:.0f}s{reason}")
