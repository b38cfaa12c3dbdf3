"""weft's asyncio loop's task wake-ups: the accelerator's C methods against the Python ones.

Every task wake-up on weft's loop goes through ``LoopTurn.call_soon`` (a
future's result schedules the task) and ``LoopTurn._run_ready`` (a turn runs
it); asyncio's C Future calls ``loop.get_debug()`` for every future made,
and a StreamWriter's ``drain()`` asks the transport's ``is_closing()``.
Where weft's C accelerator is built these four are its C functions
(``weft._speedups.loop_calls``, ``transport_is_closing``).  Each test here
runs once with the Python methods (what a build without a C compiler runs)
and once with the C ones, and requires the same behaviour.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.accelerator import SPEEDUPS, needs_accelerator
from weft.drivers.reactor import DescriptorTransport, new_event_loop
from weft.drivers.reactor._descriptor_transport import python_is_closing
from weft.drivers.reactor._loop_turn import LoopTurn, _report, python_call_soon, python_run_ready

_speedups: Any = SPEEDUPS


def install(
    monkeypatch: pytest.MonkeyPatch, kind: str, call_soon_slow: Callable[..., Any] | None = None
) -> None:
    """Make the loop's and the transport's methods the ``kind`` ones ("python"
    or "c"); the C ones hand their slow calls to ``call_soon_slow`` if given."""
    if kind == "python":
        monkeypatch.setattr(LoopTurn, "call_soon", python_call_soon)
        monkeypatch.setattr(LoopTurn, "_run_ready", python_run_ready)
        # asyncio's own get_debug, inherited (the accelerator's is set on LoopTurn).
        monkeypatch.delattr(LoopTurn, "get_debug", raising=False)
        monkeypatch.setattr(DescriptorTransport, "is_closing", python_is_closing)
        return
    calls = _speedups.loop_calls(asyncio.Handle, call_soon_slow or LoopTurn._call_soon_slow, _report)
    monkeypatch.setattr(LoopTurn, "call_soon", calls[0])
    monkeypatch.setattr(LoopTurn, "_run_ready", calls[1])
    monkeypatch.setattr(LoopTurn, "get_debug", calls[2], raising=False)
    monkeypatch.setattr(DescriptorTransport, "is_closing", _speedups.transport_is_closing)


@pytest.fixture(params=[pytest.param("python"), pytest.param("c", marks=needs_accelerator)])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Installs the parameter's methods for the test; its name."""
    name: str = request.param
    install(monkeypatch, name)
    return name


@pytest.fixture
def loop(kind: str) -> Iterator[asyncio.AbstractEventLoop]:
    """A new weft loop with the ``kind`` methods, closed after the test."""
    new = new_event_loop()
    try:
        yield new
    finally:
        new.close()


def run_turns(loop: asyncio.AbstractEventLoop) -> None:
    """Run the loop until what is scheduled now has run (one stop after it)."""
    loop.call_soon(loop.stop)
    loop.run_forever()


# ---------------------------------------------------------------- call_soon


def test_call_soon_makes_an_asyncio_handle_with_asyncio_fields(loop: asyncio.AbstractEventLoop) -> None:
    """The handle is an ``asyncio.Handle`` holding the callback, the
    arguments as a tuple, this loop and the caller's context, not cancelled;
    it is queued last."""
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable")
    variable.set("caller's")

    def callback(*args: object) -> None:
        pass

    handle: Any = loop.call_soon(callback, 1, "two")
    assert handle._callback is callback
    assert handle._args == (1, "two")
    assert type(handle._args) is tuple
    assert handle._loop is loop
    assert handle._context[variable] == "caller's"
    assert handle._context is not contextvars.copy_context()  # a copy made at the call
    assert not handle.cancelled()
    assert handle._repr is None
    assert handle._source_traceback is None
    assert loop._ready[-1] is handle
    assert "callback" in repr(handle)
    assert type(handle) is asyncio.Handle


def test_callbacks_run_in_order_with_their_arguments_and_contexts(loop: asyncio.AbstractEventLoop) -> None:
    """A turn runs the handles in the order they were made, each in its
    context (the one given, else a copy of the caller's), skipping the
    cancelled (asyncio's ``cancel()`` drops the callback: running it anyway
    would be an error for the exception handler)."""
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="default")
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    given = contextvars.copy_context()
    given.run(variable.set, "given")
    seen: list[object] = []
    loop.call_soon(seen.append, 1)
    skipped = loop.call_soon(seen.append, "cancelled")
    loop.call_soon(lambda: seen.append(variable.get()), context=given)
    loop.call_soon(lambda: seen.append(variable.get()))
    loop.call_soon(lambda: variable.set("set by a callback"))
    loop.call_soon(lambda: seen.append(variable.get()))
    loop.call_soon(seen.append, 2, context=None)
    skipped.cancel()
    run_turns(loop)
    # A callback's own context changes stay in its copy.
    assert seen == [1, "given", "default", "default", 2]
    assert errors == []


def test_a_futures_callbacks_are_scheduled_through_the_common_case(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncio's C Future schedules its callbacks with ``call_soon(...,
    context=ctx)``, naming the keyword with a string of its own: that is
    the common case, not debug mode's (nothing reaches the slow call)."""
    slow_calls: list[tuple[object, ...]] = []

    def recording_slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        slow_calls.append(args)
        return LoopTurn._call_soon_slow(self, *args, **kwargs)

    if kind == "c":
        install(monkeypatch, "c", recording_slow)
    else:
        monkeypatch.setattr(LoopTurn, "_call_soon_slow", recording_slow)
    loop = new_event_loop()
    try:
        future = loop.create_future()
        done: list[object] = []
        future.add_done_callback(done.append)
        future.set_result("result")
        run_turns(loop)
    finally:
        loop.close()
    assert done == [future]
    assert slow_calls == []


def test_debug_mode_keeps_asyncios_checks_and_a_traceback_ending_at_the_caller(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """In debug mode asyncio's own ``call_soon`` runs: a coroutine function
    is refused as asyncio refuses it, and the handle's captured traceback
    ends at the line that called ``call_soon``."""
    loop.set_debug(True)
    assert loop.get_debug() is True

    async def coroutine_function() -> None:
        pass

    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
        loop.call_soon(coroutine_function)
    handle: Any = loop.call_soon(print)
    line = sys._getframe().f_lineno - 1
    frame = handle._source_traceback[-1]
    assert (frame.filename, frame.lineno, frame.name) == (
        __file__,
        line,
        "test_debug_mode_keeps_asyncios_checks_and_a_traceback_ending_at_the_caller",
    )
    loop.set_debug(False)
    assert loop.get_debug() is False
    assert loop.call_soon(print)._source_traceback is None  # type: ignore[attr-defined]


def test_call_soon_on_a_closed_loop_raises_as_asyncio_does(kind: str) -> None:
    """A closed loop refuses ``call_soon`` with asyncio's error."""
    loop = new_event_loop()
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(print)


def test_call_soon_refuses_what_asyncio_refuses(loop: asyncio.AbstractEventLoop) -> None:
    """No callback, or a keyword other than ``context``, is a TypeError."""
    with pytest.raises(TypeError):
        loop.call_soon()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        loop.call_soon(print, delay=1)  # type: ignore[call-arg]
    assert len(loop._ready) == 0  # type: ignore[attr-defined]


# --------------------------------------------------------------- _run_ready


def test_a_callbacks_exception_reaches_the_exception_handler_and_the_turn_goes_on(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """An exception from a callback goes to the loop's exception handler
    with asyncio's message, the exception and the handle; the callbacks
    after it still run in the same turn."""
    errors: list[dict[str, Any]] = []
    seen: list[int] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))

    def fail(argument: int) -> None:
        raise ValueError(f"from a callback with {argument}")

    failing = loop.call_soon(fail, 7)
    loop.call_soon(seen.append, 1)
    run_turns(loop)
    assert seen == [1]
    assert len(errors) == 1
    assert errors[0]["message"].startswith("Exception in callback ")
    assert "fail" in errors[0]["message"]
    assert isinstance(errors[0]["exception"], ValueError)
    assert errors[0]["exception"].__traceback__ is not None
    assert errors[0]["handle"] is failing


def test_a_context_already_entered_is_reported_as_a_callbacks_error(loop: asyncio.AbstractEventLoop) -> None:
    """A handle whose context is the one the loop runs in cannot be entered:
    that is the callback's error, reported, as ``Context.run`` would raise it."""
    errors: list[dict[str, Any]] = []
    seen: list[int] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    context = contextvars.copy_context()

    def schedule_and_run() -> None:
        loop.call_soon(seen.append, 0, context=context)
        loop.call_soon(seen.append, 1)
        run_turns(loop)

    context.run(schedule_and_run)
    assert seen == [1]
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], RuntimeError)
    assert "already entered" in str(errors[0]["exception"])


@pytest.mark.parametrize("exception", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_leave_the_turn_and_the_rest_stays_queued(
    loop: asyncio.AbstractEventLoop, exception: type[BaseException]
) -> None:
    """KeyboardInterrupt and SystemExit from a callback leave ``run_forever``
    at once (not reported); the handles after it stay queued and run next time."""
    errors: list[dict[str, Any]] = []
    seen: list[int] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))

    def interrupt() -> None:
        raise exception()

    loop.call_soon(seen.append, 1)
    loop.call_soon(interrupt)
    loop.call_soon(seen.append, 2)
    loop.call_soon(loop.stop)  # where the turn would end if the interrupt were swallowed
    with pytest.raises(exception):
        loop.run_forever()
    assert seen == [1]
    loop.run_forever()  # the rest, up to the stop queued above
    assert seen == [1, 2]
    assert errors == []


def test_tasks_and_timers_run_as_on_asyncio(loop: asyncio.AbstractEventLoop) -> None:
    """Tasks woken through futures, timers and a cancelled timer: the
    results and the order asyncio gives."""
    order: list[str] = []

    async def sleeper(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        order.append(name)
        return name

    async def main() -> list[str]:
        loop.call_later(0.002, order.append, "timer").cancel()
        async with asyncio.timeout(TIMEOUT):
            return list(await asyncio.gather(sleeper("b", 0.002), sleeper("a", 0), sleeper("c", 0.004)))

    assert loop.run_until_complete(main()) == ["b", "a", "c"]
    assert order == ["a", "b", "c"]


# ------------------------------------------------- get_debug and is_closing


def test_is_closing_follows_the_connection(loop: asyncio.AbstractEventLoop) -> None:
    """A stream transport's ``is_closing()`` is false while it is open and
    true from ``close()`` on, as a StreamWriter's ``drain()`` relies on."""

    async def main() -> tuple[bool, bool]:
        server = await asyncio.start_server(lambda _reader, _writer: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(TIMEOUT):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert isinstance(writer.transport, DescriptorTransport)
            before = writer.transport.is_closing()
            writer.close()
            after = writer.transport.is_closing()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return before, after

    assert loop.run_until_complete(main()) == (False, True)


@needs_accelerator
def test_loop_calls_declines_a_handle_type_without_plain_slots() -> None:
    """Where the handle type's fields are not plain slots (another asyncio),
    the accelerator offers nothing and the Python methods stay."""

    class WithProperties:
        _callback = property(lambda self: None)

    assert _speedups.loop_calls(WithProperties, LoopTurn._call_soon_slow, _report) is None
    assert _speedups.loop_calls(type("Empty", (), {}), LoopTurn._call_soon_slow, _report) is None
