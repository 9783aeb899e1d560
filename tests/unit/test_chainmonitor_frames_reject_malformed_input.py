"""Whatever arrives on the WebSocket, the parser either returns a frame or raises FrameRejected.

A hostile or broken node must not be able to crash the stream with one frame:
arbitrary bytes, arbitrary JSON, recorded frames with parts deleted or retyped,
and frames over the size limit all end in a typed result or FrameRejected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainmonitor.errors import FrameRejected
from chainmonitor.frames import ErrorReply, EventFrame, Frame, Reply, parse_frame

WS = Path(__file__).resolve().parents[1] / "data" / "ws"
RECORDED = {p.stem: json.loads(p.read_bytes()) for p in sorted(WS.glob("*.json"))}

REASONS = {"oversized", "not json", "bad shape", "no id", "bad id", "bad height", "bad tx"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def rejection(data: str | bytes, limit: int = 4 * 1024 * 1024) -> FrameRejected:
    """The parser's rejection of `data`; fails when `data` parses or another exception escapes."""
    with pytest.raises(FrameRejected) as rejected:
        parse_frame(data, limit)
    assert rejected.value.reason in REASONS, rejected.value.reason
    return rejected.value


def parse_or_reject(data: str | bytes, limit: int = 4 * 1024 * 1024) -> Frame | FrameRejected:
    """For input that may be valid: the frame, or the rejection.

    Fails when anything but FrameRejected escapes, or when what parses is not a
    JSON-RPC response (an object with a result or an error).
    """
    try:
        frame = parse_frame(data, limit)
    except FrameRejected:
        return rejection(data, limit)
    assert isinstance(frame, Reply | ErrorReply | EventFrame), frame
    try:
        doc = json.loads(data)
    except ValueError:
        raise AssertionError(f"accepted a frame that is not JSON: {data!r:.200}") from None
    assert isinstance(doc, dict), f"accepted a frame that is not a JSON object: {data!r:.200}"
    assert "result" in doc or doc.get("error") is not None, (
        f"accepted a frame with neither result nor error: {data!r:.200}"
    )
    return frame


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    parse_or_reject(data)


@given(json_values)
def test_arbitrary_json_never_escapes_as_other_errors(value: Any) -> None:
    parse_or_reject(json.dumps(value))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def replaced(value: Any, path: tuple[Any, ...], new: Any, delete: bool) -> Any:
    if not path:
        return new
    copy: Any = json.loads(json.dumps(value))
    node = copy
    for step in path[:-1]:
        node = node[step]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = new
    return copy


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(RECORDED)),
    pick=st.integers(min_value=0),
    new=json_values,
    delete=st.booleans(),
)
def test_recorded_frames_with_a_part_broken_still_parse_or_reject(
    name: str, pick: int, new: Any, delete: bool
) -> None:
    original = RECORDED[name]
    candidates = paths(original)
    path = candidates[pick % len(candidates)]
    parse_or_reject(json.dumps(replaced(original, path, new, delete)))


def test_frame_over_the_limit_is_rejected_before_parsing() -> None:
    data = (WS / "new_block.json").read_bytes()
    assert rejection(data, limit=len(data) - 1).reason == "oversized"
    assert isinstance(parse_frame(data, max_bytes=len(data)), EventFrame)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not json"),
        ("[1, 2]", "bad shape"),
        ('{"jsonrpc": "2.0", "result": {}}', "no id"),
        ('{"jsonrpc": "2.0", "id": 1}', "bad shape"),
        ('{"jsonrpc": "2.0", "id": {"a": 1}, "result": {}}', "bad id"),
        ('{"jsonrpc": "2.0", "id": 1, "error": {"code": "x"}}', "bad shape"),
        (
            '{"jsonrpc":"2.0","id":1,"result":{"query":"q","data":{"type":"tendermint/event/Tx",'
            '"value":{"TxResult":{"height":"-4","tx":"","result":{}}}}}}',
            "bad height",
        ),
        (
            '{"jsonrpc":"2.0","id":1,"result":{"query":"q","data":{"type":"tendermint/event/Tx",'
            '"value":{"TxResult":{"height":"4","tx":"%%%","result":{}}}}}}',
            "bad tx",
        ),
    ],
)
def test_malformed_frames_are_rejected_with_a_reason(text: str, reason: str) -> None:
    assert rejection(text).reason == reason


def test_deeply_nested_json_is_rejected_not_a_crash() -> None:
    text = '{"jsonrpc":"2.0","id":1,"result":' + "[" * 100_000 + "]" * 100_000 + "}"
    rejection(text)


NON_RESPONSES = [
    b"\xff\xfe",
    "null",
    "[]",
    '"frame"',
    "{}",
    '{"id": 1}',
    '{"id": 1, "error": null}',
]


@pytest.mark.parametrize("text", NON_RESPONSES)
def test_non_responses_are_rejected(text: str | bytes) -> None:
    rejection(text)


@pytest.mark.parametrize("text", NON_RESPONSES)
def test_the_checking_helpers_fail_when_a_non_response_is_accepted(
    text: str | bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A parser that accepts everything: both helpers must notice.
    monkeypatch.setattr(f"{__name__}.parse_frame", lambda data, max_bytes=0: Reply(request_id=1))
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        rejection(text)
    with pytest.raises(AssertionError, match="accepted a frame"):
        parse_or_reject(text)


def test_the_checking_helpers_fail_when_another_error_escapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(data: str | bytes, max_bytes: int = 0) -> Frame:
        raise KeyError("result")

    monkeypatch.setattr(f"{__name__}.parse_frame", crash)
    with pytest.raises(KeyError):
        rejection('{"id": 1}')
    with pytest.raises(KeyError):
        parse_or_reject('{"id": 1}')


def test_recorded_frames_parse_as_frames_through_the_helper() -> None:
    for name, doc in RECORDED.items():
        assert not isinstance(parse_or_reject(json.dumps(doc)), FrameRejected), name
