"""`ics-discovery endpoint publish` against the real chain: operator key, authz grantee, refusals.

The command runs as a user would run it (a subprocess), with the key in a 0600
file. What it sends is checked on chain: only `details` changes, the
operator's own text stays, the second publish of the same endpoint sends no
transaction (the signer's account sequence does not move), the edit reaches a
running chain monitor as an event. A grantee key publishes through authz
`MsgExec` only while the operator's grant (made with the README's command)
exists, and is refused with a clear reason, before anything is broadcast,
without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey

from discovery.endpoints import format_details
from tests.support.chain import (
    ProviderChain,
    ProviderValidator,
    bech32_encode,
    export_key_hex,
    write_key_file,
)
from tests.support.chain_fixtures import running_provider_chain
from tests.support.chainmonitor_support import details_of, running_monitor, snapshot_where
from tests.support.procs import REPO

pytestmark = pytest.mark.chain

EDIT = "/cosmos.staking.v1beta1.MsgEditValidator"


def publish(
    chain: ProviderChain, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    node = chain.nodes[0]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "discovery.cli",
            "endpoint",
            "publish",
            "--grpc",
            node.grpc_address,
            "--json",
            # The test's hosts are private addresses.
            "--endpoint-profile",
            "testnet",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )


def outcome(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def sequence(chain: ProviderChain, account: str) -> int:
    doc = chain.rest_get(f"/cosmos/auth/v1beta1/accounts/{account}")["account"]
    return int(doc.get("sequence", 0))


def description(chain: ProviderChain, validator: ProviderValidator) -> dict[str, str]:
    desc: dict[str, str] = chain.staking_validator(validator.operator)["description"]
    return desc


def host() -> str:
    return f"192.168.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"


def test_operator_key_publishes_once_and_keeps_everything_else(
    provider_chain3: ProviderChain, tmp_path: Path
) -> None:
    chain = provider_chain3
    v = chain.validators[1]
    own_text = f"Validator {v.moniker} run by ops {secrets.token_hex(3)}"
    chain.edit_validator(v, details=f"{own_text}\np2p=10.0.0.1", website="https://example.org")
    before = description(chain, v)
    key_hex = export_key_hex(chain, v)
    key_file = write_key_file(tmp_path, "operator.key", key_hex)
    address = host()
    node_id = secrets.token_hex(20)

    first = publish(chain, "--host", address, "--node-id", node_id, "--key-file", str(key_file))
    sent = outcome(first)
    assert sent["sent"] is True
    assert sent["mode"] == "operator"
    assert sent["signer"] == v.account
    assert sent["operator"] == v.operator
    assert sent["tx_hash"]
    assert chain.wait_for_tx(sent["tx_hash"]).height == sent["height"]
    after = description(chain, v)
    assert after["details"] == f"{own_text}\nnode={node_id} p2p={address}"
    assert after["details"] == format_details(before["details"], address, node_id)
    for field in ("moniker", "identity", "website", "security_contact"):
        assert after[field] == before[field]
    assert key_hex not in first.stdout + first.stderr

    seq = sequence(chain, v.account)
    again = outcome(
        publish(chain, "--host", address, "--node-id", node_id, "--key-file", str(key_file))
    )
    assert again["sent"] is False
    assert again["tx_hash"] is None
    chain.wait_for_height(chain.height() + 2)
    assert sequence(chain, v.account) == seq
    assert description(chain, v) == after


async def test_grantee_publishes_only_while_the_readme_grant_exists(
    provider_chain3: ProviderChain, tmp_path: Path
) -> None:
    # The test chain's provider daemon carries the SDK's x/authz as the Cosmos Hub
    # does (tools/ics/authz.go); the grant is made with the README's command.
    chain = provider_chain3
    v = chain.validators[2]
    grantee_key = PrivateKey()
    grantee = str(LocalWallet(grantee_key, prefix="cosmos").address())
    # A signer needs an account on chain (fees are zero here).
    chain.tx(0, "bank", "send", chain.validators[0].account, grantee, "1000000stake")
    key_file = write_key_file(tmp_path, "grantee.key", grantee_key.private_key_hex)
    address = host()
    args = ("--host", address, "--validator", v.operator, "--key-file", str(key_file))
    before = description(chain, v)

    def refused_without_grant() -> None:
        refused = publish(chain, *args)
        assert refused.returncode == 1, refused.stdout
        assert f"no authz grant for {EDIT}" in refused.stderr
        assert refused.stderr.count("\n") == 1, "one line"
        assert grantee_key.private_key_hex not in refused.stdout + refused.stderr
        assert description(chain, v) == before

    refused_without_grant()
    assert sequence(chain, grantee) == 0, "refused before broadcast: nothing was signed"

    expiration = str(int(time.time()) + 365 * 24 * 3600)
    chain.tx(
        v, "authz", "grant", grantee, "generic", f"--msg-type={EDIT}", f"--expiration={expiration}"
    )
    operator_sequence = sequence(chain, v.account)
    async with running_monitor(chain, node=1) as monitor:
        resyncs = monitor.counters.resyncs_done
        sent = outcome(await asyncio.to_thread(publish, chain, *args))
        assert sent["sent"] is True
        assert sent["mode"] == "grantee"
        assert sent["signer"] == grantee
        assert sent["operator"] == v.operator
        after = description(chain, v)
        assert after["details"] == format_details(before["details"], address, None)
        for field in ("moniker", "identity", "website", "security_contact"):
            assert after[field] == before[field]
        # The edit inside MsgExec reaches the monitor as an event of the operator's
        # validator (the tx's signer is the grantee), without a resync.
        snap = await snapshot_where(
            monitor, lambda s: details_of(s, v) == after["details"], within=30
        )
        assert snap.height >= sent["height"]
        assert monitor.counters.resyncs_done == resyncs
    assert sequence(chain, v.account) == operator_sequence, "the operator key signed nothing"
    grantee_sequence = sequence(chain, grantee)
    again = outcome(publish(chain, *args))
    assert again["sent"] is False
    assert sequence(chain, grantee) == grantee_sequence

    chain.tx(v, "authz", "revoke", grantee, EDIT)
    before = description(chain, v)
    args = ("--host", host(), "--validator", v.operator, "--key-file", str(key_file))
    refused_without_grant()


async def test_operator_edit_through_publish_reaches_a_running_monitor(
    provider_chain3: ProviderChain, tmp_path: Path
) -> None:
    chain = provider_chain3
    v = chain.validators[2]
    key_file = write_key_file(tmp_path, "operator.key", export_key_hex(chain, v))
    address = host()
    async with running_monitor(chain, node=0) as monitor:
        resyncs = monitor.counters.resyncs_done
        args = ("--host", address, "--key-file", str(key_file))
        done = await asyncio.to_thread(publish, chain, *args)
        sent = outcome(done)
        assert sent["sent"] is True
        snap = await snapshot_where(
            monitor, lambda s: f"p2p={address}" in (details_of(s, v) or ""), within=30
        )
        assert snap.height >= sent["height"]
        assert monitor.counters.resyncs_done == resyncs


def test_refusals_are_clear_and_leak_no_key(provider_chain3: ProviderChain, tmp_path: Path) -> None:
    chain = provider_chain3
    v = chain.validators[0]
    key_hex = export_key_hex(chain, v)
    key_file = write_key_file(tmp_path, "operator.key", key_hex)

    stranger = bech32_encode("cosmosvaloper", secrets.token_bytes(20))
    unknown = publish(chain, "--host", host(), "--validator", stranger, "--key-file", str(key_file))
    assert unknown.returncode == 1
    assert f"no validator {stranger}" in unknown.stderr

    os.chmod(key_file, 0o644)
    loose = publish(chain, "--host", host(), "--key-file", str(key_file))
    assert loose.returncode == 2
    assert "mode 0644" in loose.stderr
    os.chmod(key_file, 0o600)

    bad_host = publish(chain, "--host", "127.0.0.1", "--key-file", str(key_file))
    assert bad_host.returncode == 2

    # The environment works as a key source; the command line offers none.
    via_env = publish(
        chain, "--host", host(), "--key-env", "PUBLISH_KEY", env={"PUBLISH_KEY": key_hex}
    )
    assert outcome(via_env)["sent"] is True
    for done in (unknown, loose, bad_host, via_env):
        assert key_hex not in done.stdout + done.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "discovery.cli", "endpoint", "publish", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert "--key " not in usage
    assert "--key-file" in usage


def test_a_chain_that_demands_fees_refuses_too_little_and_takes_enough(
    testbed_dir: Path, tmp_path: Path
) -> None:
    """Nodes with minimum-gas-prices 0.01stake: no fee is refused as such, a high enough one
    goes through and is paid (the default of 0 only suits test chains)."""
    with running_provider_chain(
        "feechain", testbed_dir / f"feechain-{secrets.token_hex(3)}", min_gas_price="0.01"
    ) as chain:
        v = chain.validators[0]
        key_hex = export_key_hex(chain, v)
        key_file = write_key_file(tmp_path, "operator.key", key_hex)
        address = host()
        balance = chain.stake_balance(v.account)

        free = publish(chain, "--host", address, "--key-file", str(key_file))
        assert free.returncode == 1
        assert "insufficient fee" in free.stderr.lower()
        assert "p2p=" not in description(chain, v)["details"]
        assert chain.stake_balance(v.account) == balance

        low = publish(chain, "--host", address, "--key-file", str(key_file), "--gas-price", "0.001")
        assert low.returncode == 1
        assert "insufficient fee" in low.stderr.lower()

        paid = outcome(
            publish(
                chain,
                "--host",
                address,
                "--key-file",
                str(key_file),
                "--fee-denom",
                "stake",
                "--gas-price",
                "0.01",
            )
        )
        assert paid["sent"] is True
        assert description(chain, v)["details"].endswith(f"p2p={address}")
        fee = balance - chain.stake_balance(v.account)
        # At least the node's price for the gas the edit used (tens of thousands of units).
        assert fee >= 100, fee
        for done in (free, low):
            assert key_hex not in done.stdout + done.stderr
