"""Subscription queries for CometBFT's event bus, built and checked against the server's limits.

CometBFT refuses a query longer than 512 bytes, knows only `AND` (no `OR`),
has no escape for a quote inside a string, and allows 5 subscriptions per
client. Building queries from typed conditions and checking them here turns a
refused subscription at run time into an error at construction time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from chainmonitor.errors import InvalidQuery
from chainmonitor.events import AUTHZ_EXEC_ACTION, PROVIDER_ACTION_MARK

MAX_QUERY_BYTES: Final = 512
MAX_SUBSCRIPTIONS: Final = 5

Operator = Literal["=", "<", "<=", ">", ">=", "CONTAINS", "EXISTS"]
# CometBFT's tag scanner: first rune a letter, digit or '_'; then also '.' and '-'.
_TAG: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_KEYWORDS: Final = frozenset({"AND", "CONTAINS", "EXISTS", "DATE", "TIME"})


@dataclass(frozen=True)
class Condition:
    """`tag op value`; strings are single-quoted, numbers bare, EXISTS takes no value."""

    tag: str
    op: Operator
    value: str | int | None = None

    def render(self) -> str:
        if not _TAG.fullmatch(self.tag) or self.tag.upper() in _KEYWORDS:
            raise InvalidQuery(f"invalid tag {self.tag!r}")
        if self.op == "EXISTS":
            if self.value is not None:
                raise InvalidQuery(f"{self.tag} EXISTS takes no value")
            return f"{self.tag} EXISTS"
        if self.value is None:
            raise InvalidQuery(f"{self.tag} {self.op} needs a value")
        if isinstance(self.value, int) and not isinstance(self.value, bool):
            if self.op == "CONTAINS" or self.value < 0:
                raise InvalidQuery(f"{self.tag} {self.op} {self.value}: not allowed")
            return f"{self.tag} {self.op} {self.value}"
        if not isinstance(self.value, str):
            raise InvalidQuery(f"{self.tag}: unsupported value {self.value!r}")
        if self.op not in ("=", "CONTAINS"):
            raise InvalidQuery(f"{self.tag} {self.op}: strings only compare with = or CONTAINS")
        try:
            self.value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidQuery(f"{self.tag}: value is not valid UTF-8") from e
        if "'" in self.value:
            # The grammar has no escape: a quote would end the string early.
            raise InvalidQuery(f"{self.tag}: a value cannot contain a single quote")
        return f"{self.tag} {self.op} '{self.value}'"


def build_query(conditions: Sequence[Condition]) -> str:
    """Conditions joined with AND (the only connective CometBFT has), checked for length."""
    if not conditions:
        raise InvalidQuery("a query needs at least one condition")
    query = " AND ".join(c.render() for c in conditions)
    size = len(query.encode("utf-8"))
    if size > MAX_QUERY_BYTES:
        raise InvalidQuery(f"query of {size} bytes exceeds CometBFT's {MAX_QUERY_BYTES}")
    return query


class Topic(StrEnum):
    """What a subscription is for."""

    VALIDATOR_EDITS = "validator-edits"
    PROVIDER_TXS = "provider-txs"
    AUTHZ_TXS = "authz-txs"
    CONSUMER_LAUNCHES = "consumer-launches"
    BLOCKS = "blocks"


@dataclass(frozen=True)
class Subscription:
    topic: Topic
    query: str


def check_plan(plan: Sequence[Subscription]) -> tuple[Subscription, ...]:
    """A subscription plan the server accepts: at most 5, distinct queries, each within limits."""
    if len(plan) > MAX_SUBSCRIPTIONS:
        raise InvalidQuery(f"{len(plan)} subscriptions, CometBFT allows {MAX_SUBSCRIPTIONS}")
    queries = [s.query for s in plan]
    if len(set(queries)) != len(queries):
        # The server answers a repeated query with "already subscribed".
        raise InvalidQuery("two subscriptions with the same query")
    for s in plan:
        size = len(s.query.encode("utf-8"))
        if not s.query or size > MAX_QUERY_BYTES:
            raise InvalidQuery(f"{s.topic}: query of {size} bytes")
    return tuple(plan)


def default_plan() -> tuple[Subscription, ...]:
    """The five subscriptions the monitor uses.

    - validator edits by event, so an edit inside authz `MsgExec` matches too;
    - every provider message by action type (opt in/out, create, update, remove);
    - authz `MsgExec`, whose inner provider messages carry no provider action;
    - blocks with a consumer launch (`consumer_client_created` is a block event);
    - block headers: the height, and proof that the stream is alive.
    """
    tx = Condition("tm.event", "=", "Tx")
    return check_plan(
        (
            Subscription(
                Topic.VALIDATOR_EDITS,
                build_query([tx, Condition("edit_validator.commission_rate", "EXISTS")]),
            ),
            Subscription(
                Topic.PROVIDER_TXS,
                build_query([tx, Condition("message.action", "CONTAINS", PROVIDER_ACTION_MARK)]),
            ),
            Subscription(
                Topic.AUTHZ_TXS,
                build_query([tx, Condition("message.action", "=", AUTHZ_EXEC_ACTION)]),
            ),
            Subscription(
                Topic.CONSUMER_LAUNCHES,
                build_query(
                    [
                        Condition("tm.event", "=", "NewBlock"),
                        Condition("consumer_client_created.consumer_id", "EXISTS"),
                    ]
                ),
            ),
            Subscription(Topic.BLOCKS, build_query([Condition("tm.event", "=", "NewBlockHeader")])),
        )
    )
