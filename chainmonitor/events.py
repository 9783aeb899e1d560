"""Typed chain events: what a CometBFT event frame means for the registry and provider state.

Events are hints, never state: a `TxCommitted` says which validators or
consumer chains may have changed at a height, and the monitor then asks the
chain for the truth. Keeping them as small frozen values lets the frame parser
stay pure and the tests compare events directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from chainmonitor.addresses import OperatorAddress
from chainmonitor.types import ChainId, ConsumerId

EDIT_VALIDATOR_ACTION = "/cosmos.staking.v1beta1.MsgEditValidator"
AUTHZ_EXEC_ACTION = "/cosmos.authz.v1beta1.MsgExec"
# Every provider message type URL contains this (MsgCreateConsumer, MsgOptIn, ...).
PROVIDER_ACTION_MARK = ".ccv.provider.v1.Msg"


@dataclass(frozen=True)
class AbciEvent:
    """One ABCI event: a type and its attributes in order (keys may repeat)."""

    type: str
    attributes: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        for k, v in self.attributes:
            if k == key:
                return v
        return None

    def values(self, key: str) -> Iterator[str]:
        return (v for k, v in self.attributes if k == key)


class ConsumerActionKind(StrEnum):
    """Provider tx events that change a consumer chain or its opted-in set."""

    CREATE = "create_consumer"
    UPDATE = "update_consumer"
    REMOVE = "remove_consumer"
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    ASSIGN_KEY = "assign_consumer_key"


@dataclass(frozen=True)
class ConsumerAction:
    """A consumer lifecycle or opt-in change seen in a tx (IDs as the event states them)."""

    kind: ConsumerActionKind
    consumer_id: ConsumerId | None
    chain_id: ChainId | None = None
    validator: OperatorAddress | None = None


@dataclass(frozen=True)
class ConsumerLaunch:
    """`consumer_client_created`: the provider launched a consumer in this block."""

    consumer_id: ConsumerId
    chain_id: ChainId
    client_id: str = ""


@dataclass(frozen=True)
class TxCommitted:
    """A transaction committed at `height`, reduced to what may have changed.

    `edited` lists the validators whose description a `MsgEditValidator` (direct
    or inside authz `MsgExec`) changed. `edits_unresolved` is set when the tx
    edited a validator the parser could not name, so the caller must reload all
    validators rather than miss one.
    """

    height: int
    tx_hash: str
    code: int = 0
    edited: tuple[OperatorAddress, ...] = ()
    edits_unresolved: bool = False
    consumer_actions: tuple[ConsumerAction, ...] = ()
    authz: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def touches_consumers(self) -> bool:
        return bool(self.consumer_actions)


@dataclass(frozen=True)
class BlockCommitted:
    """A block committed at `height`; `launched` from its block events when the frame had them.

    `time` is the block's time (seconds since the epoch) when the frame has a
    header; it only serves to notice a client falling behind, so it takes no
    part in comparisons.
    """

    height: int
    launched: tuple[ConsumerLaunch, ...] = ()
    time: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class OtherEvent:
    """An event of a type this client does not interpret (kept for counting and logs)."""

    type: str
    height: int | None = None


ChainEvent = TxCommitted | BlockCommitted | OtherEvent
