"""Which transport and library failures a retry can cure: one pure classification.

Every I/O layer that talks to a provider node (gRPC, REST, the CometBFT
WebSocket), to a consumer node's RPC, or signs through cosmpy meets the same
third-party exceptions: `http.client` ones that are not `OSError`
(`IncompleteRead` from a node restarting mid-answer, `BadStatusLine` from
garbage), grpc status codes, websockets handshake and close errors, TLS errors,
a body that is not JSON, cosmpy's bare `RuntimeError`s. `classify` turns any
of them into a `Fault` (transient or permanent, with a short reason) so each
layer raises its own error with the right `transient` flag instead of letting a
library exception end the service. Pure: no I/O, no clock.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
from dataclasses import dataclass
from typing import Final

import grpc
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

from chainmonitor.errors import ChainMonitorError

_REASON_LIMIT: Final = 200

# grpc status codes after which the same call may succeed later (or on another node).
TRANSIENT_GRPC_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        # A response that does not parse (garbage on the wire) and a stream reset.
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)
# grpc codes that say the request itself cannot succeed here: INVALID_ARGUMENT,
# NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, FAILED_PRECONDITION, OUT_OF_RANGE,
# UNIMPLEMENTED, DATA_LOSS, UNAUTHENTICATED: every code not listed above.

# cosmpy raises a bare RuntimeError when the signer's account is not a plain
# BaseAccount (a vesting, module or other account type): it cannot sign for it.
_COSMPY_ACCOUNT_TYPE: Final = "unexpected account type"
# Certificate problems do not go away by asking again.
_CERTIFICATE_ERRORS: Final = (ssl.SSLCertVerificationError,)


@dataclass(frozen=True)
class Fault:
    """A classified failure: whether retrying (later, or elsewhere) can help, and why it failed."""

    transient: bool
    reason: str

    @property
    def kind(self) -> str:
        """The metric label: "transient" or "permanent"."""
        return "transient" if self.transient else "permanent"


def _text(error: BaseException) -> str:
    text = str(error).replace("\n", " ").strip()
    name = type(error).__name__
    reason = f"{name}: {text}" if text and text != name else name
    return reason[:_REASON_LIMIT]


def http_status_transient(status: int) -> bool:
    """Whether an HTTP status may change on retry: 408, 425, 429 and every 5xx."""
    return status >= 500 or status in (408, 425, 429)


def grpc_code_transient(code: grpc.StatusCode | None) -> bool:
    """Whether a grpc status code may change on retry (see `TRANSIENT_GRPC_CODES`)."""
    return code in TRANSIENT_GRPC_CODES


def is_unsupported_account(error: BaseException) -> bool:
    """cosmpy's RuntimeError for a signer whose account is not a base account (e.g. vesting)."""
    return isinstance(error, RuntimeError) and _COSMPY_ACCOUNT_TYPE in str(error).lower()


def classify(error: BaseException) -> Fault | None:
    """The fault `error` stands for, or None when it is no transport or library failure we know.

    None means a programming error: let it propagate rather than retry it.
    """
    if isinstance(error, ChainMonitorError):
        return Fault(error.transient, str(error)[:_REASON_LIMIT])
    if isinstance(error, grpc.RpcError):
        code = error.code() if callable(getattr(error, "code", None)) else None
        details = error.details() if callable(getattr(error, "details", None)) else ""
        name = code.name if isinstance(code, grpc.StatusCode) else "grpc error"
        return Fault(grpc_code_transient(code), f"{name}: {details or ''}"[:_REASON_LIMIT])
    if isinstance(error, urllib.error.HTTPError):
        return Fault(http_status_transient(error.code), f"HTTP {error.code}")
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        if isinstance(reason, BaseException):
            inner = classify(reason)
            if inner is not None:
                return inner
        return Fault(True, f"not reachable: {reason}"[:_REASON_LIMIT])
    if isinstance(error, InvalidURI):
        return Fault(False, _text(error))
    if isinstance(error, InvalidStatus):
        status = int(error.response.status_code)
        return Fault(http_status_transient(status), f"WebSocket handshake refused: HTTP {status}")
    if isinstance(error, ConnectionClosed | InvalidHandshake | WebSocketException):
        return Fault(True, _text(error))
    if isinstance(error, _CERTIFICATE_ERRORS):
        return Fault(False, f"TLS certificate not accepted: {error}"[:_REASON_LIMIT])
    if isinstance(error, http.client.HTTPException | OSError | EOFError):
        # Includes IncompleteRead, BadStatusLine, RemoteDisconnected, LineTooLong,
        # TimeoutError, ConnectionError and ssl.SSLError (garbage instead of TLS).
        return Fault(True, _text(error))
    if isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
        # A cut or garbled body: the next answer (or another node's) may be whole.
        return Fault(True, f"answer is not JSON ({_text(error)})"[:_REASON_LIMIT])
    if is_unsupported_account(error):
        return Fault(
            False,
            "the signing account is not a base account (a vesting or module account): "
            "cosmpy cannot sign for it",
        )
    return None


# The exceptions `classify` knows, for `except` clauses of I/O layers.
TRANSPORT_ERRORS: Final = (
    OSError,
    EOFError,
    http.client.HTTPException,
    WebSocketException,
    json.JSONDecodeError,
    UnicodeDecodeError,
)
