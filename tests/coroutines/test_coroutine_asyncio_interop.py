"""Bridges between weft tasks and asyncio on the asyncio driver (and uvloop when installed).

weft awaiting asyncio (futures, tasks, asyncio coroutines), asyncio awaiting
weft (``to_asyncio``), callback code (``from_asyncio``); outcomes and
cancellation carried both ways; the refusals; and one program with both
styles on one loop.  Every wait is bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import re
import subprocess
import sys
import types
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support import TIMEOUT
from weft.drivers import Future, open_runtime
from weft.drivers.asyncio import AsyncioRuntime
from weft.drivers.coroutines import (
    AsyncioHost,
    Cancelled,
    Task,
    TimedOutError,
    current_task,
    fail_after,
    from_asyncio,
    gather,
    race,
    run,
    sleep,
    spawn,
    to_asyncio,
    wait_for,
)
from weft.drivers.reactor import Reactor
from weft.drivers.testing import FakeClock
from weft.protocols import EchoProtocol
from weft.protocols.contract import Protocol, Transport

_T = TypeVar("_T")

#: The tests that take a ``runtime`` run on the asyncio adapter's two loops:
#: asyncio's default one, and uvloop's (skipped, naming the extra, where it is missing).
pytestmark = pytest.mark.drivers(only=("asyncio", "uvloop"))


@pytest.fixture
def runtime(driver: str) -> Iterator[AsyncioRuntime]:
    """A weft runtime on a new asyncio (or uvloop) loop, closed after the test."""
    made = open_runtime(driver)
    if not isinstance(made, AsyncioRuntime):
        made.close()
        raise TypeError(f"the {driver} driver is no AsyncioRuntime: this file tests the adapter")
    assert made.name == driver
    try:
        yield made
    finally:
        made.close()


def run_asyncio(runtime: AsyncioRuntime, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` as an asyncio task on the runtime's loop; its result (bounded by TIMEOUT)."""
    task = runtime.loop.create_task(coro)
    assert runtime.run_until(task.done, TIMEOUT), "the asyncio task did not finish in time"
    return task.result()


# ----------------------------------------------------------- weft awaits asyncio


def test_a_weft_task_awaits_an_asyncio_future_resolved_on_the_loop(runtime: AsyncioRuntime) -> None:
    """`await asyncio_future` in a weft task: the loop resolves it, the task resumes with the
    value; while the task waits, the future's _asyncio_future_blocking flag is down again."""
    future: asyncio.Future[str] = runtime.loop.create_future()
    flags: list[bool] = []

    def resolve() -> None:
        flags.append(future._asyncio_future_blocking)
        future.set_result("from asyncio")

    async def main() -> str:
        runtime.loop.call_soon(resolve)
        return await future

    assert run(runtime, main(), timeout=TIMEOUT) == "from asyncio"
    assert flags == [False]


def test_a_weft_task_awaits_asyncio_tasks_and_asyncio_coroutines(runtime: AsyncioRuntime) -> None:
    """An asyncio task (asyncio.sleep inside), asyncio.sleep itself, an asyncio.Queue and an
    asyncio.Event are all awaited from weft code, beside weft's own sleep."""

    async def asyncio_work(value: int) -> int:  # plain asyncio code
        await asyncio.sleep(0.01)
        return value * 2

    async def main() -> list[object]:
        doubled = await runtime.loop.create_task(asyncio_work(21))
        slept = await asyncio.sleep(0.01, "slept")
        await asyncio.sleep(0)  # a bare yield: weft's checkpoint
        await sleep(0.001)  # weft's own sleep, in the same task
        queue: asyncio.Queue[str] = asyncio.Queue()
        runtime.loop.call_later(0.001, queue.put_nowait, "queued")
        item = await queue.get()  # empty until then: the task waits
        event = asyncio.Event()
        runtime.loop.call_later(0.001, event.set)
        await event.wait()
        return [doubled, slept, item, event.is_set()]

    assert run(runtime, main(), timeout=TIMEOUT) == [42, "slept", "queued", True]


def test_asyncio_failures_are_raised_in_the_weft_task(runtime: AsyncioRuntime) -> None:
    """An asyncio future's exception, and an asyncio task's, are raised at the weft `await`."""

    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("from an asyncio task")

    async def main() -> list[str]:
        future: asyncio.Future[int] = runtime.loop.create_future()
        runtime.loop.call_soon(future.set_exception, ValueError("from an asyncio future"))
        seen = []
        try:
            await future
        except ValueError as error:
            seen.append(str(error))
        try:
            await runtime.loop.create_task(fails())
        except KeyError as error:
            seen.append(str(error.args[0]))
        return seen

    assert run(runtime, main(), timeout=TIMEOUT) == ["from an asyncio future", "from an asyncio task"]


def test_weft_combinators_take_asyncio_awaitables(runtime: AsyncioRuntime) -> None:
    """gather and race accept asyncio tasks; race's loser, an asyncio task, is cancelled
    (its cleanup runs), as any awaited asyncio future is when its waiter is cancelled."""
    cleaned: list[str] = []

    async def asyncio_slow() -> str:
        try:
            await asyncio.sleep(TIMEOUT)
        finally:
            cleaned.append("asyncio loser")
        return "slow"

    async def weft_fast() -> str:
        await sleep(0.01)
        return "fast"

    async def asyncio_value(value: int) -> int:
        await asyncio.sleep(0.001)
        return value

    async def main() -> tuple[list[int], str]:
        both = await gather(runtime.loop.create_task(asyncio_value(1)), asyncio_value(2))
        loser = runtime.loop.create_task(asyncio_slow())
        winner = await race(loser, weft_fast())
        await asyncio.wait([loser])  # the asyncio task's cleanup
        assert loser.cancelled()
        return both, winner

    assert run(runtime, main(), timeout=TIMEOUT) == ([1, 2], "fast")
    assert cleaned == ["asyncio loser"]


# ------------------------------------------------ cancellation, weft to asyncio


class RecordingFuture(asyncio.Future[int]):
    """An asyncio future that remembers which done callbacks are registered."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.registered: list[Callable[[RecordingFuture], object]] = []

    def add_done_callback(
        self, fn: Callable[[RecordingFuture], object], *, context: contextvars.Context | None = None
    ) -> None:
        """Record, then register as asyncio does."""
        self.registered.append(fn)
        super().add_done_callback(fn, context=context)

    def remove_done_callback(self, fn: Callable[[RecordingFuture], object]) -> int:
        """Forget, then unregister as asyncio does."""
        self.registered = [callback for callback in self.registered if callback != fn]
        return super().remove_done_callback(fn)


def test_cancelling_the_weft_task_cancels_the_asyncio_future_it_awaits(runtime: AsyncioRuntime) -> None:
    """weft's Cancelled (weft's own class, with the message) reaches the weft task, its cleanup
    runs and may await; the asyncio future is cancelled and the done callback removed."""
    future = RecordingFuture(loop=runtime.loop)
    seen: list[object] = []

    async def waiter() -> None:
        try:
            await future
        except Cancelled as cancel:
            seen.append(cancel.args)
            seen.append(list(future.registered))
            await asyncio.sleep(0.001)  # cleanup that awaits asyncio
            seen.append("cleanup done")
            raise

    task = spawn(runtime, waiter())
    assert runtime.run_until(lambda: bool(future.registered), TIMEOUT)
    assert task.cancel("enough")
    assert runtime.run_until(task.done, TIMEOUT)
    assert task.cancelled()
    assert type(task.exception()) is Cancelled
    assert seen == [("enough",), [], "cleanup done"]
    assert future.cancelled()


def test_a_weft_task_that_cancelled_itself_cancels_the_asyncio_future_it_then_awaits(
    runtime: AsyncioRuntime,
) -> None:
    """A cancel requested while the task runs is delivered at its next await, an asyncio one
    included: that future is cancelled, and no callback is left on it."""
    future = RecordingFuture(loop=runtime.loop)

    async def main() -> None:
        current_task().cancel()
        await future

    task = spawn(runtime, main())
    assert runtime.run_until(task.done, TIMEOUT)
    assert type(task.exception()) is Cancelled
    assert future.cancelled()
    assert future.registered == []


def test_cancelling_the_weft_task_cancels_the_asyncio_task_it_awaits(runtime: AsyncioRuntime) -> None:
    """An asyncio task awaited by a cancelled weft task is cancelled too, and its own cleanup
    runs; the weft task gets Cancelled at once, without waiting for that cleanup."""
    order: list[str] = []

    async def asyncio_side() -> None:
        order.append("asyncio sleeping")
        try:
            await asyncio.sleep(TIMEOUT)
        finally:
            await asyncio.sleep(0.001)
            order.append("asyncio cleanup")

    inner = runtime.loop.create_task(asyncio_side())

    async def weft_side() -> None:
        order.append("weft waiting")  # and waiting, once this step ends
        try:
            await inner
        finally:
            order.append("weft cleanup")

    task = spawn(runtime, weft_side())
    assert runtime.run_until(lambda: len(order) == 2, TIMEOUT)
    task.cancel()
    assert runtime.run_until(lambda: task.done() and inner.done(), TIMEOUT)
    assert task.cancelled()
    assert inner.cancelled()
    assert order[2:] == ["weft cleanup", "asyncio cleanup"]


def test_a_weft_timeout_cancels_the_asyncio_future_it_waits_on(runtime: AsyncioRuntime) -> None:
    """wait_for and fail_after on asyncio awaitables: TimedOutError, and the asyncio side cancelled."""
    future: asyncio.Future[int] = runtime.loop.create_future()

    async def forever() -> None:
        await asyncio.sleep(TIMEOUT)

    async def main() -> list[str]:
        seen = []
        try:
            await wait_for(future, 0.01)
        except TimedOutError:
            seen.append(f"wait_for: future cancelled={future.cancelled()}")
        asyncio_task = runtime.loop.create_task(forever())
        try:
            with fail_after(0.01):
                await asyncio_task
        except TimedOutError:
            await asyncio.wait([asyncio_task])
            seen.append(f"fail_after: task cancelled={asyncio_task.cancelled()}")
        return seen

    assert run(runtime, main(), timeout=TIMEOUT) == [
        "wait_for: future cancelled=True",
        "fail_after: task cancelled=True",
    ]


def test_asyncio_shield_keeps_the_awaited_task_running(runtime: AsyncioRuntime) -> None:
    """asyncio's opt-out works: a weft task cancelled while awaiting shield(task) leaves it running."""

    async def work() -> str:
        await asyncio.sleep(0.02)
        return "finished anyway"

    inner = runtime.loop.create_task(work())

    async def main() -> None:
        with fail_after(0.001):
            await asyncio.shield(inner)

    with pytest.raises(TimedOutError):
        run(runtime, main(), timeout=TIMEOUT)
    assert runtime.run_until(inner.done, TIMEOUT)
    assert inner.result() == "finished anyway"


def test_an_asyncio_future_cancelled_elsewhere_ends_the_weft_task_cancelled(runtime: AsyncioRuntime) -> None:
    """A future cancelled by someone else raises asyncio's CancelledError at the weft await."""
    future: asyncio.Future[int] = runtime.loop.create_future()

    async def main() -> int:
        runtime.loop.call_soon(future.cancel, "not needed")
        return await future

    task = spawn(runtime, main())
    assert runtime.run_until(task.done, TIMEOUT)
    assert task.cancelled()
    error = task.exception()
    assert isinstance(error, asyncio.CancelledError)
    assert error.args == ("not needed",)


# ---------------------------------------------------------- asyncio awaits weft


def test_asyncio_code_awaits_a_weft_task_and_a_weft_future(runtime: AsyncioRuntime) -> None:
    """to_asyncio: an asyncio coroutine awaits a weft Task and a Future resolved by callback code."""
    callback_future: Future[str] = Future(runtime.call_soon)
    runtime.call_later(0.01, callback_future.set_result, "from a callback")

    async def weft_work() -> str:
        await sleep(0.01)
        return "from a weft task"

    async def asyncio_main() -> list[str]:
        task = spawn(runtime, weft_work())
        wrapped = to_asyncio(task)
        assert wrapped.get_loop() is asyncio.get_running_loop()
        return [await wrapped, await to_asyncio(callback_future)]

    assert run_asyncio(runtime, asyncio_main()) == ["from a weft task", "from a callback"]


def test_to_asyncio_of_a_done_future_is_done_at_once(runtime: AsyncioRuntime) -> None:
    """A weft future already resolved gives an asyncio future already resolved (no turn needed)."""
    done: Future[int] = Future(runtime.call_soon)
    done.set_result(7)
    wrapped = to_asyncio(done, loop=runtime.loop)
    assert wrapped.done()
    assert wrapped.result() == 7


def test_weft_failures_reach_asyncio_code(runtime: AsyncioRuntime, caplog: pytest.LogCaptureFixture) -> None:
    """A weft task's exception, and a weft future's, are raised at the asyncio await; the task's
    exception counts as retrieved (the asyncio future reports it from then on)."""
    failed: Future[int] = Future(runtime.call_soon)
    runtime.call_soon(failed.set_exception, ConnectionResetError("from a callback"))

    async def weft_fails() -> int:
        await sleep(0.001)
        raise ValueError("from a weft task")

    tasks = [spawn(runtime, weft_fails())]

    async def asyncio_main() -> list[str]:
        seen = []
        try:
            await to_asyncio(tasks[0])
        except ValueError as error:
            seen.append(str(error))
        try:
            await to_asyncio(failed)
        except ConnectionResetError as error:
            seen.append(str(error))
        return seen

    with caplog.at_level(logging.ERROR, logger="weft.drivers.coroutines"):
        assert run_asyncio(runtime, asyncio_main()) == ["from a weft task", "from a callback"]
        tasks.clear()
        gc.collect()
    assert [record for record in caplog.records if record.name == "weft.drivers.coroutines"] == []


def test_cancelling_the_asyncio_side_cancels_the_weft_task(runtime: AsyncioRuntime) -> None:
    """An asyncio task awaiting to_asyncio(weft_task) is cancelled: the weft task is cancelled,
    with the message, and its cleanup (which awaits) runs to its end."""
    cleaned: list[object] = []
    waiting: list[str] = []

    async def weft_work() -> None:
        waiting.append("weft")
        try:
            await sleep(TIMEOUT)
        except Cancelled as cancel:
            await sleep(0.001)
            cleaned.append(cancel.args)
            raise

    weft_task = spawn(runtime, weft_work())

    async def asyncio_main() -> None:
        waiting.append("asyncio")
        await to_asyncio(weft_task)

    asyncio_task = runtime.loop.create_task(asyncio_main())
    assert runtime.run_until(lambda: len(waiting) == 2, TIMEOUT)
    asyncio_task.cancel("stop it")
    assert runtime.run_until(lambda: asyncio_task.done() and weft_task.done(), TIMEOUT)
    assert asyncio_task.cancelled()
    assert weft_task.cancelled()
    assert cleaned == [("stop it",)]


def test_a_cancelled_weft_task_cancels_its_asyncio_future(runtime: AsyncioRuntime) -> None:
    """The other way: a weft task cancelled by weft makes to_asyncio's future cancelled."""

    async def weft_work() -> None:
        await sleep(TIMEOUT)

    weft_task = spawn(runtime, weft_work())
    runtime.call_later(0.01, weft_task.cancel, "weft said so")

    async def asyncio_main() -> tuple[object, ...]:
        try:
            await to_asyncio(weft_task)
        except asyncio.CancelledError as error:
            return error.args
        return ()

    assert run_asyncio(runtime, asyncio_main()) == ("weft said so",)


def test_cancelling_to_asyncio_of_a_plain_future_leaves_the_future_alone(runtime: AsyncioRuntime) -> None:
    """A plain weft Future cannot be cancelled: asyncio's wrapper is, and the future still resolves."""
    future: Future[int] = Future(runtime.call_soon)
    wrapped = to_asyncio(future, loop=runtime.loop)
    wrapped.cancel()
    assert runtime.run_until(lambda: False, 0.005) is False  # let the wrapper's callbacks run
    future.set_result(1)
    assert runtime.run_until(lambda: False, 0.005) is False
    assert wrapped.cancelled()
    assert future.result() == 1


# ------------------------------------------------------------ from_asyncio


def test_from_asyncio_gives_callback_code_a_weft_future(runtime: AsyncioRuntime) -> None:
    """from_asyncio carries a result, an exception and a cancellation (as weft's Cancelled)
    into weft futures, whose callbacks run on the host; a coroutine is started as an asyncio task."""
    outcomes: dict[str, object] = {}

    def record(name: str) -> Callable[[Future[Any]], None]:
        def done(future: Future[Any]) -> None:
            error = future.exception()
            outcomes[name] = future.result() if error is None else error

        return done

    async def asyncio_value() -> str:
        await asyncio.sleep(0.001)
        return "from a coroutine"

    failing: asyncio.Future[int] = runtime.loop.create_future()
    cancelled: asyncio.Future[int] = runtime.loop.create_future()
    from_asyncio(asyncio_value(), runtime).add_done_callback(record("coroutine"))
    from_asyncio(failing, runtime).add_done_callback(record("failing"))
    from_asyncio(cancelled, runtime).add_done_callback(record("cancelled"))
    failing.set_exception(OSError("from a future"))
    cancelled.cancel("called off")
    assert runtime.run_until(lambda: len(outcomes) == 3, TIMEOUT)
    assert outcomes["coroutine"] == "from a coroutine"
    assert isinstance(outcomes["failing"], OSError)
    cancelled_outcome = outcomes["cancelled"]
    assert type(cancelled_outcome) is Cancelled
    assert cancelled_outcome.args == ("called off",)
    assert isinstance(cancelled_outcome.__cause__, asyncio.CancelledError)


def test_a_weft_task_awaits_what_from_asyncio_gave(runtime: AsyncioRuntime) -> None:
    """The weft future from from_asyncio is awaited by weft code like any other."""

    async def main() -> int:
        return await from_asyncio(asyncio.sleep(0.001, 5), runtime)

    assert run(runtime, main(), timeout=TIMEOUT) == 5


# ---------------------------------------------------------------- refusals


def test_a_future_of_another_loop_is_refused(runtime: AsyncioRuntime) -> None:
    """A weft task awaiting another loop's future gets TypeError at that await (and can carry on)."""
    other = asyncio.new_event_loop()
    try:
        foreign: asyncio.Future[int] = other.create_future()

        async def main() -> str:
            try:
                await foreign
            except TypeError as error:
                return str(error)
            return "no error"

        assert "different event loop" in run(runtime, main(), timeout=TIMEOUT)
        assert not foreign._asyncio_future_blocking
        with pytest.raises(TypeError, match="different event loop"):
            from_asyncio(foreign, runtime)
    finally:
        other.close()


def test_a_host_without_an_asyncio_loop_is_refused() -> None:
    """On the reactor, and on a fake clock, awaiting an asyncio future is a TypeError, as is
    from_asyncio with such a host."""
    loop = asyncio.new_event_loop()
    reactor = Reactor()
    try:
        future: asyncio.Future[int] = loop.create_future()

        async def main() -> None:
            await future

        with pytest.raises(TypeError, match="does not run on an asyncio loop"):
            run(reactor, main(), timeout=TIMEOUT)
        with pytest.raises(TypeError, match="does not run on an asyncio loop"):
            run(FakeClock(), main())
        with pytest.raises(TypeError, match="needs a host that runs on an asyncio loop"):
            from_asyncio(future, reactor)  # type: ignore[arg-type]
    finally:
        reactor.close()
        loop.close()


def test_a_fake_clock_inside_a_running_loop_is_still_refused(runtime: AsyncioRuntime) -> None:
    """What counts is the loop the host runs on, not whether a loop is running: run(clock, ...)
    from inside an asyncio program never turns that loop, so the wait is refused, not stalled."""

    async def weft_main(future: asyncio.Future[int]) -> int:
        return await future

    async def asyncio_main() -> str:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            run(FakeClock(), weft_main(future))
        except TypeError as error:
            return str(error)
        return "no error"

    assert "does not run on an asyncio loop" in run_asyncio(runtime, asyncio_main())


def test_a_bare_yield_of_an_asyncio_future_is_refused(runtime: AsyncioRuntime) -> None:
    """Yielding an asyncio future (not awaiting it) is refused, as asyncio's Task does."""
    future: asyncio.Future[int] = runtime.loop.create_future()

    @types.coroutine
    def bare() -> Generator[Any, None, None]:
        yield future

    async def main() -> None:
        await bare()

    with pytest.raises(TypeError, match="yielded, not awaited"):
        run(runtime, main(), timeout=TIMEOUT)


def test_to_asyncio_refuses_a_task_off_the_loop(runtime: AsyncioRuntime) -> None:
    """to_asyncio refuses a task on a host without an asyncio loop, a loop that is not its
    host's, and something that is not a weft future; a plain future needs a loop."""
    clock = FakeClock()

    async def nothing() -> None:
        return None

    clock_task = spawn(clock, nothing())
    runtime_task = spawn(runtime, nothing())
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="does not run on an asyncio loop"):
            to_asyncio(clock_task)
        with pytest.raises(TypeError, match="different event loop"):
            to_asyncio(runtime_task, loop=other)
        with pytest.raises(TypeError, match="weft Future or Task"):
            to_asyncio(other.create_future())  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="no running event loop"):
            to_asyncio(Future(runtime.call_soon))
        with pytest.raises(TypeError, match="weft Future already"):
            from_asyncio(Future(runtime.call_soon), runtime)
    finally:
        other.close()
        clock.advance(0)
        runtime.run_until(runtime_task.done, TIMEOUT)


# ------------------------------------------------------- duck-typed futures


class DuckFuture:
    """Not an asyncio.Future, but advertising itself as one, as asyncio allows (asyncio.isfuture)."""

    _asyncio_future_blocking = False

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done = False
        self._cancelled = False
        self._value: int | None = None
        self.callbacks: list[Callable[[DuckFuture], object]] = []
        self.removed: list[Callable[[DuckFuture], object]] = []

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The loop the callbacks run on."""
        return self._loop

    def done(self) -> bool:
        """Whether it is resolved or cancelled."""
        return self._done

    def cancelled(self) -> bool:
        """Whether it was cancelled."""
        return self._cancelled

    def result(self) -> int:
        """The value; CancelledError if cancelled."""
        if self._cancelled:
            raise asyncio.CancelledError
        assert self._value is not None
        return self._value

    def add_done_callback(
        self, fn: Callable[[DuckFuture], object], *, context: contextvars.Context | None = None
    ) -> None:
        """Register ``fn``."""
        self.callbacks.append(fn)

    def remove_done_callback(self, fn: Callable[[DuckFuture], object]) -> int:
        """Unregister ``fn``."""
        kept = [callback for callback in self.callbacks if callback != fn]
        self.removed += [callback for callback in self.callbacks if callback == fn]
        removed = len(self.callbacks) - len(kept)
        self.callbacks = kept
        return removed

    def _finish(self) -> None:
        self._done = True
        for callback in self.callbacks:
            self._loop.call_soon(callback, self)
        self.callbacks = []

    def set_result(self, value: int) -> None:
        """Resolve with ``value``."""
        self._value = value
        self._finish()

    def cancel(self, msg: str | None = None) -> bool:
        """Cancel, if still pending."""
        if self._done:
            return False
        self._cancelled = True
        self._finish()
        return True

    def __await__(self) -> Generator[Any, None, int]:
        if not self._done:
            self._asyncio_future_blocking = True
            yield self
        return self.result()


def test_a_duck_typed_asyncio_future_is_awaited_and_cancelled(runtime: AsyncioRuntime) -> None:
    """Anything asyncio.isfuture accepts is awaited: resolved, it gives its value; when the weft
    task is cancelled, its callback is removed and it is cancelled."""
    first, second = DuckFuture(runtime.loop), DuckFuture(runtime.loop)
    assert asyncio.isfuture(first)
    runtime.loop.call_soon(first.set_result, 3)

    async def main() -> int:
        value = await first
        return value + await second

    task: Task[int] = spawn(runtime, main())
    assert runtime.run_until(lambda: bool(second.callbacks), TIMEOUT)
    assert not second._asyncio_future_blocking
    task.cancel()
    assert runtime.run_until(task.done, TIMEOUT)
    assert task.cancelled()
    assert second.cancelled()
    assert len(second.removed) == 1
    assert second.callbacks == []


# --------------------------------------------------- both styles, one program


class LineCollector(Protocol):
    """A weft client protocol (callback style): resolves a Future with the first full line."""

    def __init__(self, line: Future[bytes], lost: Future[None]) -> None:
        self.line = line
        self.lost = lost
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        """Hand the first line to whoever awaits the future."""
        self.buffer += data
        if b"\n" in self.buffer and not self.line.done():
            self.line.set_result(self.buffer.split(b"\n", 1)[0] + b"\n")

    def connection_lost(self, exc: BaseException | None) -> None:
        """Tell the coroutine that the connection is gone."""
        self.lost.set_result(None)


def test_one_program_mixes_both_styles_on_one_loop(runtime: AsyncioRuntime) -> None:
    """An asyncio-streams server and a weft listener share the loop; a weft task talks to the
    first with weft's connect_tcp and to the second with asyncio streams; an asyncio task awaits
    the weft task under asyncio.wait_for."""

    async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:  # asyncio style
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = run_asyncio(runtime, asyncio.start_server(shout, "127.0.0.1", 0))
    shout_port = server.sockets[0].getsockname()[1]
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)  # weft's callback protocol

    async def weft_side() -> tuple[bytes, bytes]:  # a weft task
        line: Future[bytes] = Future(runtime.call_soon)
        lost: Future[None] = Future(runtime.call_soon)
        with fail_after(5):
            transport: Transport = await runtime.connect_tcp(
                lambda: LineCollector(line, lost), "127.0.0.1", shout_port
            )
            transport.write(b"weft here\n")
            shouted = await line
            transport.close()
            await lost
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(b"asyncio here\n")
            echoed = await reader.readline()
            writer.close()
            await writer.wait_closed()
        return shouted, echoed

    async def asyncio_side() -> tuple[bytes, bytes]:  # an asyncio task
        return await asyncio.wait_for(to_asyncio(spawn(runtime, weft_side())), TIMEOUT)

    try:
        assert run_asyncio(runtime, asyncio_side()) == (b"WEFT HERE\n", b"asyncio here\n")
    finally:
        listener.close()
        server.close()
        run_asyncio(runtime, server.wait_closed())


def test_the_asyncio_runtime_is_an_asyncio_host(runtime: AsyncioRuntime) -> None:
    """AsyncioRuntime conforms to AsyncioHost (its loop is where its callbacks run); the reactor does not."""
    assert isinstance(runtime, AsyncioHost)
    reactor = Reactor()
    try:
        assert not isinstance(reactor, AsyncioHost)
    finally:
        reactor.close()


def test_asyncio_helpers_bound_to_an_asyncio_task_refuse_a_weft_task(runtime: AsyncioRuntime) -> None:
    """The documented limit: inside a weft task there is no current asyncio task, and
    asyncio.timeout says so (weft's fail_after is the one to use there)."""

    async def main() -> tuple[object, str]:
        try:
            async with asyncio.timeout(1):
                pass
        except RuntimeError as error:
            return asyncio.current_task(), str(error)
        return asyncio.current_task(), "no error"

    assert run(runtime, main(), timeout=TIMEOUT) == (None, "Timeout should be used inside a task")


def test_the_snippet_in_docs_asyncio_md_runs() -> None:
    """The example under "Coroutines and asyncio in one program" runs as written."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "asyncio.md").read_text()
    section = text.split("## Coroutines and asyncio in one program", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None
    result = subprocess.run(
        [sys.executable, "-c", found.group(1)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
