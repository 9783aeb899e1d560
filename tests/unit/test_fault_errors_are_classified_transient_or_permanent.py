"""One classification for every transport and library error: retry what can heal, report the rest.

`chainmonitor.faults.classify` is pure; so are the service's fault memory
(`discovery.faults.FaultLedger`), what /readyz says, and the pace of
publishing retries. Unknown exceptions (programming errors) are not
classified: they must not be retried as if they were network trouble.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
from email.message import Message

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidMessage, InvalidStatus, InvalidURI
from websockets.http11 import Response

from chainmonitor.errors import ChainUnavailable, QueryFailed, UnsupportedSigner
from chainmonitor.faults import (
    TRANSIENT_GRPC_CODES,
    classify,
    grpc_code_transient,
    http_status_transient,
)
from discovery.errors import KubernetesWriteError
from discovery.faults import (
    PUBLISH_PERMANENT_MAX,
    PUBLISH_TRANSIENT_MAX,
    FaultLedger,
    Part,
    fault_of,
    publish_retry_delay,
    readiness,
)
from discovery.notify import NotifyError
from lbmanager.errors import KubernetesRejected, KubernetesUnavailable


class FakeRpcError(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def http_error(status: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://node/x", status, "status", Message(), None)


TRANSIENT = [
    http.client.IncompleteRead(b"partial", 100),
    http.client.BadStatusLine("garbage"),
    http.client.RemoteDisconnected("Remote end closed connection without response"),
    http.client.LineTooLong("header line"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError("timed out"),
    EOFError("stream ended"),
    ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
    urllib.error.URLError(ConnectionRefusedError(111, "refused")),
    http_error(503),
    http_error(429),
    json.JSONDecodeError("Expecting value", "garb", 0),
    ConnectionClosedError(None, None),
    InvalidMessage("did not receive a valid HTTP response"),
    InvalidStatus(Response(502, "Bad Gateway", Headers())),
    FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"),
    FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED),
    FakeRpcError(grpc.StatusCode.INTERNAL, "Failed to parse server response"),
    ChainUnavailable("grpc: UNAVAILABLE"),
]

PERMANENT = [
    http_error(403),
    http_error(404),
    http_error(422),
    ssl.SSLCertVerificationError(1, "certificate verify failed"),
    urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed")),
    InvalidStatus(Response(404, "Not Found", Headers())),
    InvalidURI("ws://", "no host"),
    FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "bad height"),
    FakeRpcError(grpc.StatusCode.UNIMPLEMENTED, "unknown service"),
    FakeRpcError(grpc.StatusCode.PERMISSION_DENIED),
    RuntimeError("Unexpected account type returned from query"),
    QueryFailed("staking Validators", "INVALID_ARGUMENT", transient=False),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transport_faults_are_transient(error: BaseException) -> None:
    fault = classify(error)
    assert fault is not None
    assert fault.transient, fault
    assert fault.kind == "transient"
    assert fault.reason
    assert "\n" not in fault.reason


@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_refusals_that_no_retry_cures_are_permanent(error: BaseException) -> None:
    fault = classify(error)
    assert fault is not None
    assert not fault.transient, fault
    assert fault.kind == "permanent"


def test_the_vesting_signer_reason_says_what_is_wrong() -> None:
    fault = classify(RuntimeError("Unexpected account type returned from query"))
    assert fault is not None
    assert "not a base account" in fault.reason


@pytest.mark.parametrize(
    "error", [KeyError("x"), TypeError("bug"), RuntimeError("other"), AssertionError()]
)
def test_programming_errors_are_not_classified(error: BaseException) -> None:
    assert classify(error) is None
    # The service still reports one, as permanent: never as network trouble.
    assert fault_of(error).kind == "permanent"


@given(st.integers(min_value=100, max_value=599))
def test_http_status_is_transient_only_for_5xx_408_425_429(status: int) -> None:
    assert http_status_transient(status) == (status >= 500 or status in (408, 425, 429))
    fault = classify(http_error(status))
    assert fault is not None
    assert fault.transient == http_status_transient(status)


@given(st.sampled_from(list(grpc.StatusCode)))
def test_grpc_codes_split_into_transient_and_permanent(code: grpc.StatusCode) -> None:
    fault = classify(FakeRpcError(code, "d"))
    assert fault is not None
    assert fault.transient == (code in TRANSIENT_GRPC_CODES) == grpc_code_transient(code)
    assert code.name in fault.reason


def test_errors_of_every_layer_keep_their_own_verdict() -> None:
    assert fault_of(KubernetesUnavailable("PUT x", "etcd timeout", status=503)).transient
    assert not fault_of(KubernetesRejected("PUT x", "forbidden", status=403)).transient
    assert fault_of(NotifyError("node", "reset", transient=True)).transient
    assert not fault_of(KubernetesWriteError("ConfigMap x", "invalid", transient=False)).transient
    assert not fault_of(UnsupportedSigner("vesting")).transient


def test_ledger_remembers_permanent_faults_until_that_thing_works() -> None:
    ledger = FaultLedger()
    transient = fault_of(ConnectionResetError(104, "reset"))
    permanent = fault_of(KubernetesRejected("PUT cm", "forbidden", status=403))
    assert not ledger.record(Part.KUBERNETES, transient, "cm a")
    assert ledger.standing() == {}
    assert ledger.record(Part.KUBERNETES, permanent, "cm a")
    # The same fault again is not news (logged once), a transient one does not clear it.
    assert not ledger.record(Part.KUBERNETES, permanent, "cm a")
    assert not ledger.record(Part.KUBERNETES, transient, "cm a")
    assert ledger.record(Part.KUBERNETES, permanent, "cm b")
    standing = ledger.standing()
    assert list(standing) == [Part.KUBERNETES]
    assert standing[Part.KUBERNETES].startswith("cm a: ")
    assert "and 1 more" in standing[Part.KUBERNETES]
    assert ledger.clear(Part.KUBERNETES, "cm a")
    assert not ledger.clear(Part.KUBERNETES, "cm a")
    assert standing != ledger.standing()
    ledger.keep_only(Part.KUBERNETES, set())
    assert ledger.standing() == {}
    assert ledger.record(Part.PUBLISHING, fault_of(UnsupportedSigner("vesting")))
    assert ledger.clear(Part.PUBLISHING)
    assert ledger.standing() == {}


def test_readyz_names_each_part_that_failed_permanently() -> None:
    assert readiness(computed=False, stopping=False, standing={}, height=0) == (
        False,
        "no state computed yet",
    )
    assert readiness(computed=True, stopping=False, standing={}, height=7) == (
        True,
        "state at height 7",
    )
    ok, detail = readiness(
        computed=True,
        stopping=False,
        standing={Part.PUBLISHING: "not a base account", Part.KUBERNETES: "forbidden\nx"},
        height=7,
    )
    assert not ok
    assert "publishing failed permanently: not a base account" in detail
    assert "kubernetes failed permanently: forbidden" in detail
    assert "\n" not in detail
    assert readiness(computed=True, stopping=True, standing={}, height=7)[0] is False


@given(st.integers(min_value=1, max_value=10_000), st.floats(min_value=1.0, max_value=3600.0))
def test_publishing_retries_back_off_and_stay_bounded(failures: int, resync: float) -> None:
    t = publish_retry_delay(failures, transient=True, resync_interval=resync)
    p = publish_retry_delay(failures, transient=False, resync_interval=resync)
    assert 0 < t <= PUBLISH_TRANSIENT_MAX
    assert 0 < p <= PUBLISH_PERMANENT_MAX
    # Never faster after more failures; a permanent fault never faster than a transient one.
    assert publish_retry_delay(failures + 1, transient=True, resync_interval=resync) >= t
    assert publish_retry_delay(failures + 1, transient=False, resync_interval=resync) >= p
    assert p >= t
    # Not on every wake-up: at least the resync interval (or a minute), and ten
    # minutes once the chain said no for good.
    assert t >= min(60.0, resync)
    assert p >= 600.0
