"""Shape checks of decoded JSON from the provider's WebSocket, shared by the frame parsers.

Each returns the value with its type narrowed or raises `FrameRejected` with
the reason the stream counts ("bad shape", "bad height"); nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chainmonitor.errors import FrameRejected


def as_object(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise FrameRejected("bad shape", f"{what} is not an object")
    return value


def as_list(value: object, what: str) -> Sequence[object]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise FrameRejected("bad shape", f"{what} is not a list")
    return value


def as_text(value: object, what: str, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise FrameRejected("bad shape", f"{what} is not a string")
    return value


def as_height(value: object, what: str) -> int:
    # int64 heights are JSON strings in CometBFT's encoding; accept numbers too.
    if isinstance(value, bool):
        raise FrameRejected("bad height", what)
    if isinstance(value, int):
        height = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        height = int(value)
    else:
        raise FrameRejected("bad height", f"{what}: {str(value)[:40]!r}")
    if height < 0 or height >= 2**63:
        raise FrameRejected("bad height", f"{what}: {height}")
    return height
