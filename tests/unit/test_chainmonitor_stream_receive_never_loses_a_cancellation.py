"""Cancelling the stream while a frame arrives stops it (asyncio.wait_for on 3.11 would not)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from chainmonitor.stream import receive_within

Receive = Callable[[Awaitable[str], float], Awaitable[str]]


async def cancelled_as_a_frame_arrives(receive_with_timeout: Receive) -> str:
    """Cancel the reading task in the very loop iteration each frame arrives, 200 times.

    "stopped": the first cancellation ended the reader. "ran on": every one
    of them was lost and the reader read all 200 frames.
    """
    loop = asyncio.get_running_loop()
    task: asyncio.Task[None] | None = None

    async def recv() -> str:
        await asyncio.sleep(0)  # a real socket read yields to the loop
        assert task is not None
        # Scheduled before the result's own callbacks: both land in one iteration.
        loop.call_soon(task.cancel)
        return "frame"

    async def reader() -> None:
        for _ in range(200):
            await receive_with_timeout(recv(), 5.0)

    task = asyncio.create_task(reader())
    try:
        await task
    except asyncio.CancelledError:
        return "stopped"
    return "ran on"


async def test_receive_within_lets_the_cancellation_through() -> None:
    assert await cancelled_as_a_frame_arrives(receive_within) == "stopped"


async def test_receive_within_times_out() -> None:
    never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await receive_within(never, 0.05)
    assert never.cancelled()
