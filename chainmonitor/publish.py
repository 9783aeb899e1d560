"""Publishing our endpoint on chain: sign and broadcast `MsgEditValidator`, wait for its block.

Only `description.details` changes; every other description field is sent as
`[do-not-modify]`, so the operator's moniker, website and so on are never
touched. The operator key signs the message itself; any other key signs it
inside authz `MsgExec`, which the chain accepts only if the operator granted
that key `MsgEditValidator`. What the new details should be, and whether the
chain already shows our endpoint, is decided by the caller (`discovery`): this
module reads the current description, asks, and sends only when told to.

cosmpy is synchronous: call these functions from a worker thread in async code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import grpc
from cosmpy.aerial.client import LedgerClient
from cosmpy.aerial.config import NetworkConfig
from cosmpy.aerial.exceptions import BroadcastError, NotFoundError
from cosmpy.aerial.tx import SigningCfg, Transaction, TxFee
from cosmpy.protos.cosmos.authz.v1beta1.tx_pb2 import MsgExec
from cosmpy.protos.cosmos.staking.v1beta1.query_pb2 import QueryValidatorRequest
from cosmpy.protos.cosmos.staking.v1beta1.staking_pb2 import Description as DescriptionProto
from cosmpy.protos.cosmos.staking.v1beta1.tx_pb2 import MsgEditValidator
from cosmpy.protos.cosmos.tx.v1beta1.service_pb2 import GetTxRequest
from google.protobuf import any_pb2

from chainmonitor.addresses import OperatorAddress, bech32_decode, parse_operator
from chainmonitor.errors import (
    AuthzUnsupported,
    ChainMonitorError,
    ChainUnavailable,
    FeeTooHigh,
    InsufficientFees,
    InvalidChainData,
    PublishError,
    SigningLibraryError,
    TxNotCommitted,
    TxRejected,
    UnauthorizedSigner,
    UnknownValidator,
    UnsupportedSigner,
)
from chainmonitor.faults import TRANSPORT_ERRORS, classify, is_unsupported_account
from chainmonitor.keys import SigningKey
from chainmonitor.types import Description

DO_NOT_MODIFY: Final = "[do-not-modify]"
EDIT_VALIDATOR_TYPE_URL: Final = "/cosmos.staking.v1beta1.MsgEditValidator"
MAX_DETAILS_BYTES: Final = 280

SigningMode = Literal["operator", "grantee"]


@dataclass(frozen=True)
class ChainConnection:
    """Where and how to send: gRPC address, chain ID (asked from the node if None), fees."""

    grpc_url: str
    chain_id: str | None = None
    fee_denom: str = "stake"
    gas_price: float = 0.0
    gas_adjustment: float = 1.5
    # The largest fee (in fee_denom) a transaction may cost; None: no limit.
    max_fee: int | None = None
    commit_timeout: float = 60.0
    poll_interval: float = 0.2


@dataclass(frozen=True)
class PublishOutcome:
    """What `publish_details` did: `sent` False means the chain already showed what we want."""

    sent: bool
    operator: OperatorAddress
    signer: str
    mode: SigningMode
    details: str
    tx_hash: str = ""
    height: int = 0


# ---- pure message building ---------------------------------------------------------


def edit_details_msg(operator: str, details: str) -> MsgEditValidator:
    """MsgEditValidator that sets `details` and leaves every other field as it is on chain."""
    size = len(details.encode("utf-8"))
    if size > MAX_DETAILS_BYTES:
        raise PublishError(f"details of {size} bytes exceed the chain's {MAX_DETAILS_BYTES}")
    if details == DO_NOT_MODIFY:
        raise PublishError(f"details cannot be the literal {DO_NOT_MODIFY!r}")
    return MsgEditValidator(
        description=DescriptionProto(
            moniker=DO_NOT_MODIFY,
            identity=DO_NOT_MODIFY,
            website=DO_NOT_MODIFY,
            security_contact=DO_NOT_MODIFY,
            details=details,
        ),
        validator_address=operator,
        # commission_rate and min_self_delegation stay unset: unchanged on chain.
    )


def exec_msg(grantee: str, inner: MsgEditValidator) -> MsgExec:
    """authz MsgExec in which `grantee` executes `inner` on the operator's behalf."""
    packed = any_pb2.Any()
    packed.Pack(inner, type_url_prefix="/")
    return MsgExec(grantee=grantee, msgs=[packed])


def signing_mode(key: SigningKey, operator: str) -> SigningMode:
    return "operator" if key.controls(operator) else "grantee"


def classify_failure(text: str, tx_hash: str | None = None) -> PublishError:
    """Our error for the chain's words (simulation, CheckTx or block execution log)."""
    lowered = text.lower()
    if "unable to resolve type url /cosmos.authz." in lowered:
        return AuthzUnsupported(
            "this chain has no authz module (it cannot decode "
            "/cosmos.authz.v1beta1.MsgExec): a grantee key cannot publish here, "
            "use the operator key"
        )
    if "insufficient fee" in lowered:
        return InsufficientFees(text[:300])
    if "authorization not found" in lowered or "unauthorized" in lowered:
        return UnauthorizedSigner(
            "the key may not edit this validator: it is not the operator key and has no authz "
            f"grant for {EDIT_VALIDATOR_TYPE_URL} (see README: creating the authz grant); "
            f"chain said: {text[:300]}"
        )
    if "validator does not exist" in lowered or "validator not found" in lowered:
        return UnknownValidator(f"no such validator on chain: {text[:300]}")
    if "insufficient funds" in lowered:
        return TxRejected(f"the signing account cannot pay the fee: {text[:300]}", tx_hash)
    return TxRejected(text[:500], tx_hash)


# ---- I/O ---------------------------------------------------------------------------


def _grpc_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return f"grpc+http://{url}"
    if scheme in ("grpc", "http"):
        return f"grpc+http://{rest}"
    if scheme in ("grpcs", "https"):
        return f"grpc+https://{rest}"
    if scheme.startswith("grpc+"):
        return url
    raise PublishError(f"not a gRPC URL: {url!r}")


def _rpc_error(what: str, e: grpc.RpcError) -> ChainMonitorError:
    code = e.code() if hasattr(e, "code") else None
    details = e.details() if hasattr(e, "details") else str(e)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ChainUnavailable(f"{what}: {details}")
    return classify_failure(f"{what}: {details}")


def fee_for(gas_used: int, gas_adjustment: float, gas_price: float) -> tuple[int, int]:
    """Gas limit and fee amount for a transaction that simulated at `gas_used`. Pure."""
    gas_limit = max(1, math.ceil(gas_used * gas_adjustment))
    return gas_limit, math.ceil(gas_limit * gas_price)


class EndpointPublisher:
    """Signs and broadcasts description edits for one operator, with one key."""

    def __init__(self, connection: ChainConnection, key: SigningKey) -> None:
        self.connection = connection
        self.key = key
        self._client: LedgerClient | None = None

    def _ledger(self) -> LedgerClient:
        if self._client is None:
            c = self.connection
            chain_id = c.chain_id
            url = _grpc_url(c.grpc_url)
            if chain_id is None:
                probe = LedgerClient(
                    NetworkConfig(
                        chain_id="unknown",
                        url=url,
                        fee_minimum_gas_price=c.gas_price,
                        fee_denomination=c.fee_denom,
                        staking_denomination=c.fee_denom,
                    )
                )
                try:
                    chain_id = probe.query_chain_id()
                except grpc.RpcError as e:
                    raise _rpc_error("reading the chain ID", e) from e
            self._client = LedgerClient(
                NetworkConfig(
                    chain_id=chain_id,
                    url=url,
                    fee_minimum_gas_price=c.gas_price,
                    fee_denomination=c.fee_denom,
                    staking_denomination=c.fee_denom,
                )
            )
        return self._client

    def current_description(self, operator: str) -> Description:
        """The operator's description as the chain shows it now; UnknownValidator if none."""
        client = self._ledger()
        try:
            response = client.staking.Validator(QueryValidatorRequest(validator_addr=operator))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise UnknownValidator(f"no validator {operator} on chain") from e
            raise _rpc_error(f"reading validator {operator}", e) from e
        d = response.validator.description
        return Description(d.moniker, d.identity, d.website, d.security_contact, d.details)

    def publish_details(
        self, operator: str, decide: Callable[[Description], str | None]
    ) -> PublishOutcome:
        """Read the description, let `decide` return new details (None: nothing to do), send.

        Returns once the tx is in a block (with its hash and height), or raises a
        ChainMonitorError saying why not: no cosmpy, grpc or transport exception
        leaves here.
        """
        try:
            return self._publish_details(operator, decide)
        except ChainMonitorError:
            raise
        except (grpc.RpcError, RuntimeError, ValueError, *TRANSPORT_ERRORS) as e:
            fault = classify(e)
            if fault is not None and fault.transient:
                raise ChainUnavailable(f"publishing: {fault.reason}") from e
            reason = fault.reason if fault is not None else f"{type(e).__name__}: {e}"
            raise SigningLibraryError(f"signing failed: {reason}"[:400]) from e

    def _publish_details(
        self, operator: str, decide: Callable[[Description], str | None]
    ) -> PublishOutcome:
        try:
            operator = parse_operator(operator)
        except InvalidChainData as e:
            raise UnknownValidator(f"not an operator address: {operator!r}") from e
        hrp, _ = bech32_decode(operator)
        prefix = hrp.removesuffix("valoper")
        mode = signing_mode(self.key, operator)
        signer = self.key.account(prefix)
        current = self.current_description(operator)
        details = decide(current)
        if details is None:
            return PublishOutcome(False, operator, signer, mode, current.details)
        msg: Any = edit_details_msg(operator, details)
        if mode == "grantee":
            msg = exec_msg(signer, msg)
        tx_hash = self._broadcast(msg, prefix)
        started = time.monotonic()
        try:
            height = self._wait_for_commit(tx_hash)
        except ChainUnavailable as e:
            # Broadcast already: sending again through another node would only be
            # refused (same sequence). Not knowing is not failing; the caller re-reads.
            raise TxNotCommitted(tx_hash, time.monotonic() - started, str(e)) from e
        return PublishOutcome(True, operator, signer, mode, details, tx_hash, height)

    def _broadcast(self, msg: Any, prefix: str) -> str:
        client = self._ledger()
        wallet = self.key.wallet(prefix)
        c = self.connection
        try:
            account = client.query_account(wallet.address())
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise UnauthorizedSigner(
                    f"the signing account {wallet.address()} does not exist on chain: "
                    "fund it before it can sign"
                ) from e
            raise _rpc_error("reading the signing account", e) from e
        except RuntimeError as e:
            if not is_unsupported_account(e):
                raise
            raise UnsupportedSigner(
                f"the signing account {wallet.address()} is not a base account (a vesting or "
                "module account?): it cannot sign here; give the service a key of a plain "
                "account (a grantee key with an authz grant for "
                f"{EDIT_VALIDATOR_TYPE_URL})"
            ) from e
        chain_id = client.network_config.chain_id

        def signed(fee: TxFee) -> Transaction:
            tx = Transaction()
            tx.add_message(msg)
            tx.seal(SigningCfg.direct(wallet.public_key(), account.sequence), fee=fee)
            tx.sign(wallet.signer(), chain_id, account.number)
            return tx.complete()

        try:
            # Simulation runs the message: a missing grant or validator fails here,
            # before anything is broadcast.
            gas_used = client.simulate_tx(signed(TxFee(gas_limit=0)))
        except grpc.RpcError as e:
            raise _rpc_error("simulating the transaction", e) from e
        gas_limit, fee_amount = fee_for(gas_used, c.gas_adjustment, c.gas_price)
        if c.max_fee is not None and fee_amount > c.max_fee:
            raise FeeTooHigh(fee_amount, c.max_fee, c.fee_denom)
        amount = f"{fee_amount}{c.fee_denom}" if fee_amount else None
        tx = signed(TxFee(amount=amount, gas_limit=gas_limit))
        try:
            submitted = client.broadcast_tx(tx)
        except BroadcastError as e:
            raise classify_failure(str(e), e.tx_hash) from e
        except grpc.RpcError as e:
            raise _rpc_error("broadcasting the transaction", e) from e
        return str(submitted.tx_hash)

    def _wait_for_commit(self, tx_hash: str) -> int:
        client = self._ledger()
        c = self.connection
        deadline = time.monotonic() + c.commit_timeout
        while True:
            try:
                response = client.txs.GetTx(GetTxRequest(hash=tx_hash))
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND or "not found" in (e.details() or ""):
                    response = None
                else:
                    raise _rpc_error(f"waiting for tx {tx_hash}", e) from e
            except NotFoundError:
                response = None
            if response is not None:
                result = response.tx_response
                if result.code != 0:
                    raise classify_failure(result.raw_log, tx_hash)
                return int(result.height)
            if time.monotonic() >= deadline:
                raise TxNotCommitted(tx_hash, c.commit_timeout)
            time.sleep(c.poll_interval)
