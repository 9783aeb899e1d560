"""The polling helpers return the first truthy value, or fail naming what and the last seen."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
from kubernetes.client.exceptions import ApiException

from tests.support.polling import Died, any_error, eventually, wait_until


def answers(*values: object) -> Callable[[], object]:
    """A check giving `values` in turn (an exception instance is raised), the last one forever."""
    it: Iterator[object] = iter(values)
    last: list[object] = [None]

    def check() -> object:
        value = next(it, last[0])
        last[0] = value
        if isinstance(value, Exception):
            raise value
        return value

    return check


def wait_sync(check: Callable[[], object], timeout: float = 0.05, **kw: object) -> object:
    return wait_until("the thing", check, timeout=timeout, interval=0.001, **kw)  # type: ignore[arg-type]


def wait_async(check: Callable[[], object], timeout: float = 0.05, **kw: object) -> object:
    async def run() -> object:
        return await eventually("the thing", check, timeout=timeout, interval=0.001, **kw)  # type: ignore[arg-type]

    return asyncio.run(run())


WAITS = pytest.mark.parametrize("wait", [wait_sync, wait_async], ids=["wait_until", "eventually"])


@WAITS
def test_returns_the_first_truthy_value(wait: Callable[..., object]) -> None:
    assert wait(answers(None, 0, "", [], {"ready": 1}), timeout=30) == {"ready": 1}


@WAITS
def test_times_out_naming_what_and_the_last_value(wait: Callable[..., object]) -> None:
    with pytest.raises(TimeoutError, match=r"waiting for the thing \(last: \[\]\)"):
        wait(answers(0, []))


@WAITS
def test_a_missing_kubernetes_object_means_not_yet(wait: Callable[..., object]) -> None:
    assert wait(answers(ApiException(status=404, reason="Not Found"), True), timeout=30) is True
    with pytest.raises(TimeoutError, match=r"last: ApiException: \(404\) Reason: Not Found"):
        wait(answers(ApiException(status=404, reason="Not Found")))


@WAITS
def test_any_other_exception_fails_at_once(wait: Callable[..., object]) -> None:
    check = answers(None, ApiException(status=403, reason="Forbidden"), True)
    with pytest.raises(ApiException, match="Forbidden"):
        wait(check, timeout=30)
    with pytest.raises(ValueError, match="broken"):
        wait(answers(ValueError("broken"), True), timeout=30)


@WAITS
def test_any_error_keeps_waiting_and_reports_the_last_exception(
    wait: Callable[..., object],
) -> None:
    assert wait(answers(ConnectionRefusedError("starting"), 7), timeout=30, not_yet=any_error) == 7
    with pytest.raises(TimeoutError, match=r"last: ConnectionRefusedError: still starting"):
        wait(answers(ConnectionRefusedError("still starting")), not_yet=any_error)


@WAITS
def test_a_dead_process_fails_at_once_with_its_reason(wait: Callable[..., object]) -> None:
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        return False

    with pytest.raises(Died, match="the thing: exited with status 1"):
        wait(check, timeout=30, alive=lambda: "exited with status 1" if calls else None)
    assert len(calls) == 1


class Unready:
    """Falsy, with a huge, multi-line repr (a whole object listing, say)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "x\n" * 10_000


def test_long_values_are_cut_to_one_line_in_the_message() -> None:
    with pytest.raises(TimeoutError) as e:
        wait_sync(answers(Unready()))
    assert "\n" not in str(e.value)
    assert str(e.value).endswith("x x x...)")
    assert len(str(e.value)) < 700
    with pytest.raises(TimeoutError) as e:
        wait_sync(answers(ValueError("y" * 10_000)), not_yet=any_error)
    assert "..." in str(e.value)
    assert len(str(e.value)) < 700


def test_eventually_runs_the_check_in_a_thread_unless_told_not_to() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def check() -> bool:
        seen.append(threading.get_ident())
        return True

    wait_async(check, timeout=30)
    wait_async(check, timeout=30, in_thread=False)
    assert seen[0] != loop_thread
    assert seen[1] == loop_thread
