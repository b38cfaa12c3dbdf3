"""Helpers for the coroutine stream tests: two streams back to back on the memory
driver and a fake clock, moved by hand."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from weft.drivers.coroutines import Stream, StreamProtocol, spawn
from weft.drivers.testing import FakeClock, Pump, connect_pair

_T = TypeVar("_T")


def pair(*, read_limit: int = 256 * 1024) -> tuple[Pump, Stream, Stream]:
    """Two streams back to back on a memory pump and a fake clock."""
    client, server = StreamProtocol(), StreamProtocol(read_limit=read_limit)
    pump = connect_pair(client, server, clock=FakeClock())
    return pump, client.stream, server.stream


def settle(pump: Pump) -> None:
    """Move bytes both ways and run the tasks until nothing happens twice in a row."""
    quiet = 0
    for _ in range(10_000):
        moved = pump.deliver("client")
        moved = pump.deliver("server") or moved
        quiet = 0 if moved else quiet + 1
        if quiet == 2:
            return
    raise AssertionError("the pump never settled")


def go(pump: Pump, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` as a task on the pump's clock, settle, and return its result."""
    task = spawn(pump.clock, coro)
    settle(pump)
    assert task.done(), "the task is still waiting"
    return task.result()
