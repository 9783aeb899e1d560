"""Waiting by polling: the one way tests (and the test bed) wait for a condition.

`eventually` (async) and `wait_until` (blocking) take the same arguments::

    value = await eventually(what, check, timeout=..., interval=..., not_yet=..., alive=...)
    value = wait_until(what, check, timeout=..., interval=..., not_yet=..., alive=...)

`check` is called until it returns something truthy, which is returned. An
exception from `check` means "not yet" when `not_yet(exception)` says so (by
default: a Kubernetes object it reads does not exist yet, since the thing
waited for often creates it; `any_error` for something still starting), and
fails the wait at once otherwise. `alive` (a process's `exit_reason`) returns
why the thing waited on is gone, to fail at once with `Died` instead of
waiting out the timeout. After `timeout` seconds the wait fails with a
`TimeoutError` naming `what` and the last value or exception `check` gave.

Use these instead of a loop with `sleep`: a wait that fails then says what it
waited for and what it saw instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

WAIT = 120.0
"""Default timeout: generous, for a loaded machine; a wait that succeeds returns early."""
INTERVAL = 0.1
"""Default pause between two checks."""

NotYet = Callable[[Exception], bool]
Alive = Callable[[], str | None]


def missing(error: Exception) -> bool:
    """A Kubernetes object the check reads does not exist (404) yet: keep waiting."""
    return isinstance(error, ApiException) and error.status == 404


def any_error(error: Exception) -> bool:
    """Every exception means "not yet" (e.g. a server still starting refuses connections)."""
    return True


class Died(RuntimeError):
    """What a wait was for is gone (its `alive` said why) before the check held."""


def describe(observed: object, limit: int = 500) -> str:
    """One line for a failure message: the last value `check` returned or the exception."""
    if isinstance(observed, BaseException):
        text = f"{type(observed).__name__}: {observed}"
    else:
        text = repr(observed)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Poll:
    """One wait's bookkeeping, shared by the blocking and the async loop."""

    def __init__(self, what: str, timeout: float, not_yet: NotYet, alive: Alive | None) -> None:
        self.what = what
        self.timeout = timeout
        self.not_yet = not_yet
        self.alive = alive
        self.deadline = time.monotonic() + timeout

    def before(self) -> None:
        """Fail at once when what is waited on is gone."""
        reason = self.alive() if self.alive is not None else None
        if reason:
            raise Died(f"{self.what}: {reason}")

    def judge(self, value: object = None, error: Exception | None = None) -> bool:
        """True when `value` ends the wait; raise when the wait fails; else poll again."""
        observed: object = value
        if error is not None:
            if not self.not_yet(error):
                raise error
            observed = error
        elif value:
            return True
        if time.monotonic() >= self.deadline:
            raise TimeoutError(
                f"timed out after {self.timeout:g}s waiting for {self.what} "
                f"(last: {describe(observed)})"
            )
        return False


def wait_until(
    what: str,
    check: Callable[[], T],
    *,
    timeout: float = WAIT,
    interval: float = INTERVAL,
    not_yet: NotYet = missing,
    alive: Alive | None = None,
) -> T:
    """The first truthy result of `check`, polled every `interval` seconds (blocking)."""
    poll = _Poll(what, timeout, not_yet, alive)
    while True:
        poll.before()
        try:
            value = check()
        except Exception as e:
            poll.judge(error=e)
        else:
            if poll.judge(value):
                return value
        time.sleep(interval)


async def eventually(
    what: str,
    check: Callable[[], T],
    *,
    timeout: float = WAIT,  # noqa: ASYNC109 (a polling deadline, named as in wait_until)
    interval: float = INTERVAL,
    not_yet: NotYet = missing,
    alive: Alive | None = None,
    in_thread: bool = True,
) -> T:
    """`wait_until` without blocking the event loop.

    `check` runs in a worker thread (`in_thread`, the default: checks that do
    blocking reads such as Kubernetes calls) or on the loop (`in_thread=False`:
    in-process state that the loop changes).
    """
    poll = _Poll(what, timeout, not_yet, alive)
    while True:
        poll.before()
        try:
            value = await asyncio.to_thread(check) if in_thread else check()
        except Exception as e:
            poll.judge(error=e)
        else:
            if poll.judge(value):
                return value
        await asyncio.sleep(interval)
