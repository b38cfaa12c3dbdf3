"""Tasks on the fake clock: ordering, futures shared with callback code,
cancellation with cleanup, sleep, run(), and the unretrieved-exception log."""

from __future__ import annotations

import gc
import logging

import pytest

from weft.drivers import Future
from weft.drivers.coroutines import (
    Cancelled,
    NotInTaskError,
    StalledError,
    Task,
    TimedOutError,
    checkpoint,
    current_task,
    run,
    sleep,
    spawn,
)
from weft.drivers.testing import FakeClock
from weft.protocols.errors import ArgumentError, InvalidStateError, WeftError


def test_a_task_runs_on_the_hosts_next_turn_and_gives_its_result() -> None:
    """spawn() schedules the first step with call_soon; the task is a Future of the return value."""
    clock = FakeClock()
    ran: list[str] = []

    async def work() -> int:
        ran.append("ran")
        return 42

    task = spawn(clock, work())
    assert ran == []
    assert not task.done()
    clock.advance(0)
    assert ran == ["ran"]
    assert task.done()
    assert task.result() == 42


def test_tasks_interleave_at_each_yield_point_in_spawn_order() -> None:
    """Two tasks alternate at each checkpoint, in the order they were spawned."""
    clock = FakeClock()
    order: list[str] = []

    async def worker(name: str) -> None:
        for step in range(3):
            order.append(f"{name}{step}")
            await checkpoint()

    spawn(clock, worker("a"))
    spawn(clock, worker("b"))
    clock.advance(0)
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_sleep_wakes_in_deadline_order_on_fake_time() -> None:
    """Sleeps end at their deadlines on the fake clock, shortest first, with no real time."""
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await sleep(seconds)
        woke.append((name, clock.now()))

    async def main() -> None:
        first = spawn(clock, sleeper("slow", 30))
        second = spawn(clock, sleeper("fast", 10))
        await first
        await second

    run(clock, main())
    assert woke == [("fast", 10.0), ("slow", 30.0)]


def test_sleep_zero_is_a_yield_point_and_a_negative_sleep_is_refused() -> None:
    """sleep(0) lets another ready task run first; sleep(-1) raises ArgumentError."""
    clock = FakeClock()
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    async def main() -> None:
        spawn(clock, other())
        await sleep(0)
        order.append("main")
        with pytest.raises(ArgumentError):
            await sleep(-1)

    run(clock, main())
    assert order == ["other", "main"]


def test_awaiting_a_future_resolved_by_callback_code() -> None:
    """A coroutine awaits a Future that a timer callback resolves: the callback
    layer's sentinel is awaitable as is."""
    clock = FakeClock()
    future: Future[str] = Future(clock.call_soon)
    clock.call_later(5, future.set_result, "from a callback")

    async def main() -> tuple[str, float]:
        return await future, clock.now()

    assert run(clock, main()) == ("from a callback", 5.0)


def test_awaiting_a_future_that_failed_raises_its_exception() -> None:
    """An exception set on a Future by callback code is raised at the await."""
    clock = FakeClock()
    future: Future[str] = Future(clock.call_soon)
    clock.call_later(1, future.set_exception, ConnectionResetError("gone"))

    async def main() -> str:
        return await future

    with pytest.raises(ConnectionResetError, match="gone"):
        run(clock, main())


def test_callback_code_adds_a_done_callback_to_a_task() -> None:
    """Callback code treats a Task as a Future: its done callbacks get the task."""
    clock = FakeClock()
    seen: list[object] = []

    async def work() -> str:
        await sleep(2)
        return "finished"

    task = spawn(clock, work())
    task.add_done_callback(lambda done: seen.append((done.result(), clock.now())))
    clock.advance(1)
    assert seen == []
    clock.advance(1)
    assert seen == [("finished", 2.0)]


def test_a_tasks_result_cannot_be_set_from_outside() -> None:
    """set_result and set_exception on a Task raise InvalidStateError: its coroutine decides."""
    clock = FakeClock()

    async def work() -> int:
        return 1

    task = spawn(clock, work())
    with pytest.raises(InvalidStateError):
        task.set_result(2)
    with pytest.raises(InvalidStateError):
        task.set_exception(ValueError())
    clock.advance(0)
    assert task.result() == 1


def test_cancel_reaches_the_await_and_cleanup_can_itself_await() -> None:
    """cancel() throws Cancelled at the current await; a finally block that sleeps
    runs to its end, and the task ends cancelled."""
    clock = FakeClock()
    events: list[tuple[str, float]] = []

    async def work() -> None:
        try:
            await sleep(100)
        finally:
            events.append(("cleanup starts", clock.now()))
            await sleep(3)
            events.append(("cleanup done", clock.now()))

    task = spawn(clock, work())
    clock.advance(10)
    assert task.cancel() is True
    clock.advance(0)
    assert events == [("cleanup starts", 10.0)]
    assert not task.done()
    clock.advance(3)
    assert events == [("cleanup starts", 10.0), ("cleanup done", 13.0)]
    assert task.cancelled()
    with pytest.raises(Cancelled):
        task.result()
    assert task.cancel() is False


def test_a_cancel_withdrawn_before_it_is_delivered_leaves_the_wait_alone() -> None:
    """cancel() then uncancel() before the task's next step: no Cancelled is
    thrown, and the task goes on waiting for the very future it awaited."""
    clock = FakeClock()
    reply: Future[str] = Future(clock.call_soon)

    async def work() -> str:
        return await reply

    task = spawn(clock, work())
    clock.advance(0)
    assert task.cancel() is True
    assert task.uncancel() == 0
    clock.advance(0)
    assert not task.done()
    reply.set_result("answer")
    clock.advance(0)
    assert task.result() == "answer"


def test_cancelled_is_a_base_exception_that_asyncio_code_recognises() -> None:
    """Cancelled gets past `except Exception` and is an asyncio.CancelledError, but not a WeftError."""
    import asyncio

    assert issubclass(Cancelled, asyncio.CancelledError)
    assert issubclass(Cancelled, BaseException)
    assert not issubclass(Cancelled, Exception)
    assert not issubclass(Cancelled, WeftError)
    assert issubclass(TimedOutError, WeftError)
    assert issubclass(TimedOutError, TimeoutError)


def test_cancel_before_the_first_step_never_runs_the_body() -> None:
    """A task cancelled before its first step ends cancelled without running any of its code."""
    clock = FakeClock()
    ran: list[str] = []

    async def work() -> None:
        ran.append("body")

    task = spawn(clock, work())
    task.cancel("changed my mind")
    clock.advance(0)
    assert ran == []
    assert task.cancelled()
    error = task.exception()
    assert isinstance(error, Cancelled)
    assert str(error) == "changed my mind"


def test_a_task_that_swallows_cancelled_carries_on() -> None:
    """Swallowing Cancelled is allowed: the task keeps running and can finish normally."""
    clock = FakeClock()

    async def stubborn() -> str:
        try:
            await sleep(100)
        except Cancelled:
            pass
        await sleep(1)
        return "still here"

    task = spawn(clock, stubborn())
    clock.advance(5)
    task.cancel()
    clock.advance(0)
    assert not task.done()
    clock.advance(1)
    assert task.result() == "still here"
    assert not task.cancelled()


def test_a_task_cancelling_itself_is_cancelled_at_its_next_await() -> None:
    """current_task().cancel() from inside takes effect at the task's next await."""
    clock = FakeClock()
    reached: list[str] = []

    async def work() -> None:
        current_task().cancel()
        reached.append("before await")
        await sleep(1)
        reached.append("after await")

    task = spawn(clock, work())
    clock.advance(0)
    assert task.cancelled()
    assert reached == ["before await"]
    assert clock.now() == 0.0


def test_cancelling_a_task_waiting_on_a_future_leaves_the_future_alone() -> None:
    """The cancelled task stops waiting; resolving the Future later is harmless."""
    clock = FakeClock()
    future: Future[int] = Future(clock.call_soon)

    async def work() -> int:
        return await future

    task = spawn(clock, work())
    clock.advance(0)
    task.cancel()
    clock.advance(0)
    assert task.cancelled()
    future.set_result(1)
    clock.advance(0)
    assert future.result() == 1


def test_awaiting_a_task_does_not_own_it() -> None:
    """Cancelling the task that awaits another does not cancel the one awaited."""
    clock = FakeClock()

    async def inner() -> str:
        await sleep(10)
        return "inner done"

    inner_task = spawn(clock, inner())

    async def outer() -> str:
        return await inner_task

    outer_task = spawn(clock, outer())
    clock.advance(1)
    outer_task.cancel()
    clock.advance(10)
    assert outer_task.cancelled()
    assert inner_task.result() == "inner done"


def test_awaiting_something_foreign_raises_type_error_in_the_task() -> None:
    """A task handed a non-weft awaitable (a bare yielded value) gets a TypeError at that await."""
    clock = FakeClock()

    class Foreign:
        def __await__(self):  # type: ignore[no-untyped-def]
            yield "not a future"

    async def work() -> None:
        await Foreign()

    task = spawn(clock, work())
    clock.advance(0)
    assert isinstance(task.exception(), TypeError)


def test_sleep_outside_a_task_raises_not_in_task() -> None:
    """The calls that need the current task say so clearly when there is none."""
    with pytest.raises(NotInTaskError):
        current_task()
    coro = sleep(1)
    with pytest.raises(NotInTaskError):
        coro.send(None)
    assert issubclass(NotInTaskError, RuntimeError)


def test_run_drives_the_fake_clock_so_an_hour_takes_no_real_time() -> None:
    """run() jumps the fake clock from deadline to deadline while the task waits."""
    clock = FakeClock()

    async def main() -> float:
        await sleep(3600)
        return clock.now()

    assert run(clock, main()) == 3600.0


def test_run_raises_stalled_when_nothing_can_wake_the_task() -> None:
    """A task awaiting a Future nobody will resolve, with nothing scheduled, is reported, not hung."""
    clock = FakeClock()
    never: Future[None] = Future(clock.call_soon)

    async def main() -> None:
        await never

    with pytest.raises(StalledError):
        run(clock, main())


def test_run_with_a_timeout_cancels_and_raises_timed_out() -> None:
    """run(..., timeout=) cancels the coroutine at the deadline and raises TimedOutError."""
    clock = FakeClock()
    cleaned: list[float] = []

    async def main() -> None:
        try:
            await sleep(100)
        finally:
            cleaned.append(clock.now())

    with pytest.raises(TimedOutError):
        run(clock, main(), timeout=5)
    assert cleaned == [5.0]


def test_run_raises_what_escaped_the_coroutine() -> None:
    """An exception escaping the coroutine is raised by run(), and counts as retrieved."""
    clock = FakeClock()

    async def main() -> None:
        await sleep(1)
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        run(clock, main())


def test_an_unretrieved_task_exception_is_logged_when_the_task_is_collected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed task nobody asked about logs its exception, with traceback, when dropped."""
    clock = FakeClock()

    async def fails() -> None:
        raise ValueError("nobody looked")

    task = spawn(clock, fails())
    clock.advance(0)
    with caplog.at_level(logging.ERROR, logger="weft.drivers.coroutines"):
        del task
        gc.collect()
    records = [record for record in caplog.records if record.name == "weft.drivers.coroutines"]
    assert len(records) == 1
    assert "never retrieved" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], ValueError)
    assert "nobody looked" in caplog.text
    assert "Traceback" in caplog.text


def test_a_retrieved_or_cancelled_task_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Once exception() was called, or when the task was only cancelled, nothing is logged."""
    clock = FakeClock()

    async def fails() -> None:
        raise ValueError("seen")

    async def forever() -> None:
        await sleep(1000)

    seen = spawn(clock, fails())
    cancelled = spawn(clock, forever())
    clock.advance(0)
    cancelled.cancel()
    clock.advance(0)
    assert isinstance(seen.exception(), ValueError)
    with caplog.at_level(logging.ERROR, logger="weft.drivers.coroutines"):
        del seen, cancelled
        gc.collect()
    assert [r for r in caplog.records if r.name == "weft.drivers.coroutines"] == []


def test_a_task_needs_a_coroutine() -> None:
    """Task(host, not_a_coroutine) is a TypeError, at once."""
    with pytest.raises(TypeError):
        Task(FakeClock(), 42)  # type: ignore[arg-type]


def test_a_cancel_after_the_awaited_future_resolved_wins_and_steps_once() -> None:
    """If the future resolves and the task is cancelled before it resumes, it sees
    Cancelled, once: the stale wakeup from the future is ignored."""
    clock = FakeClock()
    future: Future[int] = Future(clock.call_soon)
    seen: list[str] = []

    async def work() -> None:
        try:
            await future
            seen.append("got the result")
        except Cancelled:
            seen.append("cancelled")
            await sleep(1)
            seen.append("cleanup done")
            raise

    task = spawn(clock, work())
    clock.advance(0)
    future.set_result(1)  # the task's wakeup is now scheduled...
    task.cancel()  # ...and the cancel comes first
    clock.advance(0)
    clock.advance(1)
    assert seen == ["cancelled", "cleanup done"]
    assert task.cancelled()


def test_awaiting_a_failed_task_retrieves_its_exception(caplog: pytest.LogCaptureFixture) -> None:
    """The exception raised at `await task` counts as retrieved: nothing is logged later."""
    clock = FakeClock()

    async def fails() -> None:
        raise ValueError("handled")

    async def main() -> str:
        task = spawn(clock, fails())
        try:
            await task
        except ValueError as error:
            return str(error)
        return "no error"

    with caplog.at_level(logging.ERROR, logger="weft.drivers.coroutines"):
        assert run(clock, main()) == "handled"
        gc.collect()
    assert [r for r in caplog.records if r.name == "weft.drivers.coroutines"] == []


def test_the_fake_clock_is_a_steppable_host() -> None:
    """FakeClock conforms to the Host protocol and to SteppableHost, which run() drives."""
    from weft.drivers.coroutines import Host, SteppableHost

    clock = FakeClock()
    assert isinstance(clock, Host)
    assert isinstance(clock, SteppableHost)


def test_awaiting_itself_is_refused() -> None:
    """A task that awaits its own Task gets InvalidStateError at that await, instead of hanging."""
    clock = FakeClock()

    async def narcissist() -> None:
        await current_task()

    task = spawn(clock, narcissist())
    clock.advance(0)
    assert isinstance(task.exception(), InvalidStateError)
