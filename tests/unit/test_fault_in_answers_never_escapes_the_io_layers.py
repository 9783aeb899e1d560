"""A node that dies mid-answer, answers garbage or is not there never ends the service.

Each case is an answer the issue saw end the process: `http.client.IncompleteRead`
from a REST node restarting mid-response (it escaped `RestQueries`, so
`FallbackQueries` did not fail over), `http.client.BadStatusLine` from a
consumer node's RPC in dial mode (it escaped the dialer and ended the loop),
and cosmpy's `RuntimeError` for a signer that is not a base account (it
escaped publishing). Real sockets on 127.0.0.1: a small HTTP server plays the
node, the tests' fault proxy breaks its answers.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from cosmpy.crypto.keypairs import PrivateKey

from chainmonitor.errors import ChainUnavailable, SigningLibraryError, UnsupportedSigner
from chainmonitor.keys import SigningKey, operator_of
from chainmonitor.publish import ChainConnection, EndpointPublisher
from chainmonitor.queries import FallbackQueries, RestQueries
from chainmonitor.types import Description
from discovery.faults import Part, fault_of
from discovery.notify import NotifyError, PeerDialer
from tests.support.faultproxy import Fault, FaultProxy

CHAIN_ID = "consumer-1"
NODE_ID = "ab" * 20
PEER = f"{'cd' * 20}@198.51.100.7:26656"
# Padding makes every answer much longer than the bytes a `cut` lets through.
PAD = "x" * 4000


class _Node(http.server.BaseHTTPRequestHandler):
    """A provider REST endpoint and a consumer node's RPC, enough for the calls tested."""

    def _answer(self, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Grpc-Metadata-X-Cosmos-Block-Height", "42")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/interchain_security/ccv/provider/params"):
            self._answer({"params": {"blocks_per_epoch": "7"}, "pad": PAD})
        elif self.path == "/status":
            self._answer(
                {
                    "result": {
                        "node_info": {"id": NODE_ID, "network": CHAIN_ID},
                        "sync_info": {"latest_block_height": "9", "catching_up": False},
                        "pad": PAD,
                    }
                }
            )
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer({"jsonrpc": "2.0", "id": 1, "result": {"pad": PAD}})

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def node() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Node)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def proxy(node: http.server.ThreadingHTTPServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", node.server_address[1]) as p:
        yield p


def rest(port: int) -> RestQueries:
    return RestQueries(f"http://127.0.0.1:{port}", timeout=2.0)


async def test_a_rest_node_cut_mid_answer_fails_over_to_the_next(
    node: http.server.ThreadingHTTPServer, proxy: FaultProxy
) -> None:
    broken, good = rest(proxy.port), rest(node.server_address[1])
    proxy.set_fault(Fault.CUT, after_bytes=300)
    with pytest.raises(ChainUnavailable) as info:
        await broken.blocks_per_epoch()
    assert info.value.transient
    assert "IncompleteRead" in str(info.value)
    answer = await FallbackQueries(broken, good).blocks_per_epoch()
    assert (answer.height, answer.value) == (42, 7)
    assert proxy.stats.cut >= 2


@pytest.mark.parametrize("fault", [Fault.GARBAGE, Fault.REFUSE])
async def test_a_rest_node_answering_garbage_or_refusing_fails_over(
    node: http.server.ThreadingHTTPServer, proxy: FaultProxy, fault: Fault
) -> None:
    proxy.set_fault(fault)
    answer = await FallbackQueries(
        rest(proxy.port), rest(node.server_address[1])
    ).blocks_per_epoch()
    assert answer.value == 7
    proxy.heal()
    # Healed, the first source answers again.
    assert (await rest(proxy.port).blocks_per_epoch()).value == 7


@pytest.mark.parametrize(
    ("fault", "after_bytes", "shows"),
    [
        (Fault.GARBAGE, 0, "BadStatusLine"),
        (Fault.CUT, 300, "not JSON"),
        (Fault.CUT, 0, "RemoteDisconnected"),
        (Fault.REFUSE, 0, "refused"),
    ],
)
async def test_a_consumer_node_rpc_fault_is_a_transient_notify_error(
    proxy: FaultProxy, fault: Fault, after_bytes: int, shows: str
) -> None:
    dialer = PeerDialer(proxy.port, timeout=2.0)
    proxy.set_fault(fault, after_bytes=after_bytes)
    with pytest.raises(NotifyError) as info:
        await dialer.dial("127.0.0.1", CHAIN_ID, [PEER])
    assert info.value.transient
    assert shows in str(info.value)
    assert fault_of(info.value).kind == "transient"
    proxy.heal()
    result = await dialer.dial("127.0.0.1", CHAIN_ID, [PEER])
    assert result.outcome == "dialed"


async def test_a_stalled_consumer_node_times_out_as_a_transient_error(proxy: FaultProxy) -> None:
    dialer = PeerDialer(proxy.port, timeout=0.5)
    proxy.set_fault(Fault.STALL)
    with pytest.raises(NotifyError) as info:
        await dialer.dial("127.0.0.1", CHAIN_ID, [PEER])
    assert info.value.transient
    proxy.heal()


def _publisher_with(ledger: Any) -> tuple[EndpointPublisher, str]:
    key = SigningKey("test", PrivateKey(bytes(range(1, 33))))
    publisher = EndpointPublisher(ChainConnection("127.0.0.1:1"), key)
    publisher._client = ledger
    publisher.current_description = lambda _op: Description("m", "", "", "", "")  # type: ignore[method-assign,assignment]
    return publisher, operator_of(key)


def test_a_vesting_signer_is_a_permanent_clearly_worded_publish_error() -> None:
    """cosmpy's query_account raises a bare RuntimeError for any account but a BaseAccount."""

    def query_account(_address: object) -> object:
        raise RuntimeError("Unexpected account type returned from query")

    publisher, operator = _publisher_with(SimpleNamespace(query_account=query_account))
    with pytest.raises(UnsupportedSigner) as info:
        publisher.publish_details(operator, lambda _d: "p2p=198.51.100.1")
    assert not info.value.transient
    assert "not a base account" in str(info.value)
    assert "vesting" in str(info.value)
    assert fault_of(info.value).kind == "permanent"
    assert Part.PUBLISHING.value == "publishing"


def test_any_other_signing_library_failure_is_an_error_of_ours() -> None:
    def query_account(_address: object) -> object:
        raise ValueError("malformed account")

    publisher, operator = _publisher_with(SimpleNamespace(query_account=query_account))
    with pytest.raises(SigningLibraryError) as info:
        publisher.publish_details(operator, lambda _d: "p2p=198.51.100.1")
    assert not info.value.transient
    assert "malformed account" in str(info.value)
