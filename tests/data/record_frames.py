"""Re-record the WebSocket frames and query responses under tests/data from a real provider chain.

The chain monitor's parsers are tested on pure data; that data must come from
the real software, not be written by hand. This script starts a 3-validator
provider chain with the test bed (`tests/support/chain.py`), subscribes to the
events the monitor cares about, drives real transactions (edit-validator,
create/opt-in/opt-out/remove consumer), provokes the subscription errors
CometBFT can send, saves every frame exactly as received, saves REST/RPC query
responses, and stops the chain while still subscribed to catch the cancellation
frame. Run from the repository root after `make tools`:

    .venv/bin/python -m tests.data.record_frames [--out tests/data]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # also runnable as `python tests/data/record_frames.py`
    sys.path.insert(0, str(REPO))

from tests.support.chain import ChainQueryError, ProviderChain  # noqa: E402
from tests.support.chain_fixtures import running_provider_chain  # noqa: E402

EDIT_VALIDATOR = "tm.event='Tx' AND message.action='/cosmos.staking.v1beta1.MsgEditValidator'"
TX_QUERIES = {
    "edit_validator": EDIT_VALIDATOR,
    "create_consumer": "tm.event='Tx' AND create_consumer.consumer_id EXISTS",
    "opt_in": "tm.event='Tx' AND opt_in.consumer_id EXISTS",
    "opt_out": "tm.event='Tx' AND opt_out.consumer_id EXISTS",
    "remove_consumer": "tm.event='Tx' AND remove_consumer.consumer_id EXISTS",
}
BLOCK_QUERIES = {
    "new_block": "tm.event='NewBlock'",
    "consumer_client_created": "tm.event='NewBlock' AND consumer_client_created.consumer_id EXISTS",
    "update_consumer": "tm.event='Tx' AND update_consumer.consumer_id EXISTS",
}
DETAILS = {
    0: "Validator val0 - p2p=192.168.97.110",
    1: "Validator val1\np2p=192.168.97.111",  # the older, two-line form
    2: "Validator val2 - p2p=[2001:db8::1]:26656",
}


class Client:
    """One WebSocket connection; every frame it receives is kept, in order, as text."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[str] = []
        self._arrived = asyncio.Condition()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0

    async def __aenter__(self) -> Client:
        self._ws = await connect(self.url, max_size=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for message in self._ws:
                text = message if isinstance(message, str) else message.decode()
                async with self._arrived:
                    self.frames.append(text)
                    self._arrived.notify_all()

    async def request(self, method: str, params: dict[str, Any]) -> int:
        assert self._ws is not None
        self._next_id += 1
        await self._ws.send(
            json.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        )
        return self._next_id

    async def wait(
        self, what: str, match: Callable[[dict[str, Any]], bool], seconds: float = 60
    ) -> str:
        """The first frame (already received or to come) for which `match` is true."""
        async with asyncio.timeout(seconds), self._arrived:
            seen = 0
            while True:
                for text in self.frames[seen:]:
                    if match(json.loads(text)):
                        return text
                seen = len(self.frames)
                await self._arrived.wait()

    async def subscribe(self, query: str) -> tuple[int, str]:
        """Subscribe; the request id and the server's acknowledgement frame."""
        rid = await self.request("subscribe", {"query": query})
        # Events carry the subscription's id too, but none comes before the answer.
        ack = await self.response(rid, f"answer to subscribe {query}")
        if "error" in json.loads(ack):
            raise AssertionError(f"subscribe {query}: {ack}")
        return rid, ack

    async def response(self, rid: int, what: str) -> str:
        return await self.wait(what, lambda f: f.get("id") == rid)


def event_for_tx(rid: int, txhash: str) -> Callable[[dict[str, Any]], bool]:
    def match(frame: dict[str, Any]) -> bool:
        events = (frame.get("result") or {}).get("events") or {}
        return bool(frame.get("id") == rid and txhash in events.get("tx.hash", []))

    return match


def event_on(rid: int) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("id") == rid and "query" in (f.get("result") or {})


class Output:
    def __init__(self, root: Path) -> None:
        self.root = root

    def frame(self, name: str, text: str) -> None:
        self._write(f"ws/{name}.json", text if text.endswith("\n") else text + "\n")

    def doc(self, name: str, doc: Any) -> None:
        self._write(f"{name}.json", json.dumps(doc, indent=2) + "\n")

    def _write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"  wrote {path.relative_to(self.root)}")


async def record(chain: ProviderChain, out: Output) -> None:
    node = chain.nodes[0]
    run = asyncio.to_thread
    async with Client(node.websocket_url) as txs, Client(node.websocket_url) as blocks:
        tx_ids: dict[str, int] = {}
        for name, query in TX_QUERIES.items():
            tx_ids[name], ack = await txs.subscribe(query)
            if name == "edit_validator":
                out.frame("subscribe_ack", ack)
        block_ids = {name: (await blocks.subscribe(q))[0] for name, q in BLOCK_QUERIES.items()}
        out.frame("new_block", await blocks.wait("NewBlock", event_on(block_ids["new_block"])))

        # Endpoints published in descriptions, in the forms seen in the wild.
        names = {
            0: "tx_edit_validator",
            1: "tx_edit_validator_two_line_details",
            2: "tx_edit_validator_ipv6_details",
        }
        for index, details in DETAILS.items():
            edit = await run(chain.edit_validator, index, details=details)
            out.frame(
                names[index],
                await txs.wait("edit", event_for_tx(tx_ids["edit_validator"], edit.txhash)),
            )

        # A consumer launched by all three validators; val2 opts out; it is removed.
        lifecycle = await run(chain.launch_consumer, "consumer-lifecycle-1")
        created = await txs.wait("create_consumer", event_on(tx_ids["create_consumer"]))
        out.frame("tx_create_consumer", created)
        out.frame("tx_opt_in", await txs.wait("opt_in", event_on(tx_ids["opt_in"])))
        launched = await blocks.wait(
            "consumer_client_created", event_on(block_ids["consumer_client_created"])
        )
        out.frame("new_block_consumer_client_created", launched)
        opt_out = await run(chain.opt_out, 2, lifecycle)
        out.frame(
            "tx_opt_out", await txs.wait("opt_out", event_for_tx(tx_ids["opt_out"], opt_out.txhash))
        )
        out.doc(
            "rest/provider_opted_in_validators_after_opt_out",
            chain.opted_in_validators_raw(lifecycle),
        )
        removed = await run(chain.remove_consumer, 0, lifecycle)
        out.frame(
            "tx_remove_consumer",
            await txs.wait(
                "remove_consumer", event_for_tx(tx_ids["remove_consumer"], removed.txhash)
            ),
        )

        # One consumer created without a spawn time, opted into, then given one
        # (MsgUpdateConsumer) and left running; one left registered.
        running, _ = await run(chain.create_consumer, 0, "consumer-running-1", None)
        await run(chain.opt_in, 0, running)
        await run(chain.opt_in, 1, running)
        now = dt.datetime.now(dt.UTC)
        update = await run(chain.set_consumer_spawn_time, 0, running, "consumer-running-1", now)
        out.frame(
            "tx_update_consumer",
            await blocks.wait(
                "update_consumer", event_for_tx(block_ids["update_consumer"], update.txhash)
            ),
        )
        await run(chain.wait_for_consumer_phase, running, ("CONSUMER_PHASE_LAUNCHED",))
        registered, _ = await run(chain.create_consumer, 0, "consumer-registered-1", None)
        await run(chain.opt_in, 1, registered)
        # Let an epoch pass so the running consumer's validator set is settled.
        await run(chain.wait_for_height, chain.height() + 6)

        out.doc("rest/staking_validators", chain.rest_get("/cosmos/staking/v1beta1/validators"))
        page1 = chain.rest_get("/cosmos/staking/v1beta1/validators", {"pagination.limit": "2"})
        out.doc("rest/staking_validators_page1_limit2", page1)
        out.doc(
            "rest/staking_validators_page2_limit2",
            chain.rest_get(
                "/cosmos/staking/v1beta1/validators",
                {"pagination.limit": "2", "pagination.key": page1["pagination"]["next_key"]},
            ),
        )
        out.doc(
            "rest/staking_validator",
            chain.rest_get(f"/cosmos/staking/v1beta1/validators/{chain.validators[0].operator}"),
        )
        prov = "/interchain_security/ccv/provider"
        out.doc("rest/provider_consumer_chains", chain.rest_get(f"{prov}/consumer_chains/0"))
        out.doc(
            "rest/provider_consumer_chains_launched",
            chain.rest_get(f"{prov}/consumer_chains/CONSUMER_PHASE_LAUNCHED"),
        )
        out.doc(
            "rest/provider_consumer_chain_launched",
            chain.rest_get(f"{prov}/consumer_chain/{running}"),
        )
        out.doc(
            "rest/provider_consumer_chain_stopped",
            chain.rest_get(f"{prov}/consumer_chain/{lifecycle}"),
        )
        out.doc(
            "rest/provider_consumer_chain_registered",
            chain.rest_get(f"{prov}/consumer_chain/{registered}"),
        )
        out.doc("rest/provider_opted_in_validators", chain.opted_in_validators_raw(running))
        out.doc(
            "rest/provider_opted_in_validators_registered",
            chain.opted_in_validators_raw(registered),
        )
        try:
            chain.opted_in_validators_raw(lifecycle)
            raise AssertionError("the provider answered opted-in validators of a stopped chain")
        except ChainQueryError as e:
            out.doc(
                "rest/provider_opted_in_validators_stopped_error",
                {"status": e.status, "body": json.loads(e.body)},
            )
        out.doc(
            "rest/provider_consumer_validators",
            chain.rest_get(f"{prov}/consumer_validators/{running}"),
        )
        out.doc("rest/provider_params", chain.rest_get(f"{prov}/params"))
        out.doc(
            "rest/tendermint_validatorsets_latest",
            chain.rest_get("/cosmos/base/tendermint/v1beta1/validatorsets/latest"),
        )
        out.doc(
            "rest/tendermint_node_info", chain.rest_get("/cosmos/base/tendermint/v1beta1/node_info")
        )
        out.doc("rpc/status", chain.rpc_get("status"))
        out.doc("rpc/validators", chain.rpc_get("validators"))

        await record_errors(node.websocket_url, out)

        # Stopping the chain cancels live subscriptions; CometBFT says so on each.
        chain.stop()
        out.frame(
            "error_subscription_canceled_cometbft_exited",
            await blocks.wait(
                "cancellation", lambda f: f.get("id") == block_ids["new_block"] and "error" in f
            ),
        )


async def record_errors(url: str, out: Output) -> None:
    async with Client(url) as c:
        query = "tm.event='NewBlockHeader'"
        await c.subscribe(query)
        out.frame(
            "error_already_subscribed",
            await c.response(await c.request("subscribe", {"query": query}), "dup"),
        )
        long_query = "tm.event='Tx' AND " + " AND ".join(f"a{i}.b EXISTS" for i in range(60))
        out.frame(
            "error_maximum_query_length",
            await c.response(await c.request("subscribe", {"query": long_query}), "long"),
        )
        out.frame(
            "error_query_parse",
            await c.response(await c.request("subscribe", {"query": "tm.event = = 'Tx'"}), "parse"),
        )
        out.frame(
            "error_unsubscribe_not_subscribed",
            await c.response(await c.request("unsubscribe", {"query": "tm.event='Vote'"}), "unsub"),
        )
        for i in range(4):
            await c.subscribe(f"tm.event='Tx' AND x{i}.y EXISTS")
        out.frame(
            "error_max_subscriptions_per_client",
            await c.response(
                await c.request("subscribe", {"query": "tm.event='Tx' AND z.y EXISTS"}), "max"
            ),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="ics-record-") as tmp,
        running_provider_chain("record", Path(tmp) / "chain", size=3) as chain,
    ):
        print(f"chain up in {chain.startup_seconds:.1f}s; recording into {args.out}")
        asyncio.run(record(chain, Output(args.out)))
    print(f"done in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
