"""Subscription queries CometBFT accepts: AND only, quoted strings, 512 bytes, 5 per client."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainmonitor.errors import InvalidQuery
from chainmonitor.subscriptions import (
    MAX_QUERY_BYTES,
    MAX_SUBSCRIPTIONS,
    Condition,
    Subscription,
    Topic,
    build_query,
    check_plan,
    default_plan,
)


def test_default_plan_fits_the_server_limits() -> None:
    plan = default_plan()
    assert len(plan) <= MAX_SUBSCRIPTIONS
    assert len({s.query for s in plan}) == len(plan)
    assert {s.topic for s in plan} == set(Topic)
    for s in plan:
        assert len(s.query.encode()) <= MAX_QUERY_BYTES
        assert " OR " not in s.query


def test_default_plan_queries() -> None:
    queries = {s.topic: s.query for s in default_plan()}
    assert queries[Topic.VALIDATOR_EDITS] == (
        "tm.event = 'Tx' AND edit_validator.commission_rate EXISTS"
    )
    assert queries[Topic.PROVIDER_TXS] == (
        "tm.event = 'Tx' AND message.action CONTAINS '.ccv.provider.v1.Msg'"
    )
    assert queries[Topic.CONSUMER_LAUNCHES] == (
        "tm.event = 'NewBlock' AND consumer_client_created.consumer_id EXISTS"
    )
    assert queries[Topic.BLOCKS] == "tm.event = 'NewBlockHeader'"


def test_conditions_render() -> None:
    assert (
        build_query(
            [
                Condition("tm.event", "=", "Tx"),
                Condition("tx.height", ">=", 5),
                Condition("message.action", "CONTAINS", "Msg"),
                Condition("a-b_c.d", "EXISTS"),
            ]
        )
        == "tm.event = 'Tx' AND tx.height >= 5 AND message.action CONTAINS 'Msg' AND a-b_c.d EXISTS"
    )


@pytest.mark.parametrize(
    "condition",
    [
        Condition("tm.event", "=", "it's"),
        Condition("bad tag", "=", "x"),
        Condition(".starts.with.dot", "EXISTS"),
        Condition("AND", "EXISTS"),
        Condition("a.b", "EXISTS", "x"),
        Condition("a.b", "="),
        Condition("a.b", "<", "text"),
        Condition("a.b", "CONTAINS", 3),
        Condition("a.b", "=", -1),
        Condition("a.b", "=", "\ud800"),
    ],
)
def test_invalid_conditions_are_refused(condition: Condition) -> None:
    with pytest.raises(InvalidQuery):
        build_query([condition])


def test_length_limit_is_in_bytes() -> None:
    value = "é" * 255  # 510 bytes in 255 characters: the query is 518 bytes
    with pytest.raises(InvalidQuery):
        build_query([Condition("a.b", "=", value)])
    assert len(build_query([Condition("a.b", "=", "e" * 250)]).encode()) <= MAX_QUERY_BYTES


def test_plan_limits() -> None:
    six = [Subscription(Topic.BLOCKS, f"tm.event = 'Tx' AND x{i}.y EXISTS") for i in range(6)]
    with pytest.raises(InvalidQuery):
        check_plan(six)
    with pytest.raises(InvalidQuery):
        check_plan([six[0], six[0]])
    with pytest.raises(InvalidQuery):
        check_plan([Subscription(Topic.BLOCKS, "")])


tags = st.from_regex(re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,20}"), fullmatch=True).filter(
    lambda t: t.upper() not in {"AND", "CONTAINS", "EXISTS", "DATE", "TIME"}
)
values = st.text(
    alphabet=st.characters(blacklist_characters="'", blacklist_categories=["Cs"]), max_size=40
)


@given(st.lists(st.tuples(tags, values), min_size=1, max_size=8))
def test_built_queries_are_and_joined_and_bounded(pairs: list[tuple[str, str]]) -> None:
    conditions = [Condition(t, "=", v) for t, v in pairs]
    try:
        query = build_query(conditions)
    except InvalidQuery:
        assert len(" AND ".join(c.render() for c in conditions).encode()) > MAX_QUERY_BYTES
        return
    assert len(query.encode()) <= MAX_QUERY_BYTES
    assert query.count("'") == 2 * len(pairs)
    assert query.startswith(f"{pairs[0][0]} = '")
    assert query == " AND ".join(f"{t} = '{v}'" for t, v in pairs)
