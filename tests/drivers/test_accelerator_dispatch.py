"""weft's C accelerator's Dispatcher against the reactor loop's own Python loop.

One turn of a Reactor, once with the reactor's dispatcher and once with
none (the Python loop), over scripted events for scripted streams, readers
and writers, and over real descriptors in epoll (the dispatcher's turn()
then makes the wait): the same calls, in the same order, with the same
exceptions handed to the same hooks (each handled while its hook runs), and
the same exception out of the turn.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.accelerator import SPEEDUPS, Alarm, Interrupted, needs_accelerator_in_use, nonblocking_pipe
from weft.drivers._core import accelerator
from weft.drivers._core.socket_defaults import READ_SIZE
from weft.drivers.reactor import Reactor
from weft.drivers.reactor._pollers import ERROR, HANGUP, READABLE, WRITABLE

_speedups: Any = SPEEDUPS

#: What a turn's calls logged, in order.
Log = list[tuple[Any, ...]]
#: A poll's events.
Events = list[tuple[int, int]]


class ScriptedPoller:
    """A poller that reports ``events`` on its first poll, and nothing after."""

    name = "scripted"

    def __init__(self, events: list[tuple[int, int]]) -> None:
        self.events = events
        self.changes = 0

    def register(self, fd: int, mask: int) -> None:
        self.changes += 1

    def modify(self, fd: int, mask: int) -> None:
        self.changes += 1

    def unregister(self, fd: int) -> None:
        self.changes += 1

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        events, self.events = self.events, []
        return events

    def close(self) -> None:
        pass


#: What each scripted call does: a result, or an exception to raise.
Script = dict[str, Any]


class ScriptedStream:
    """An inline reader (a stream transport, to the loop) whose calls log
    themselves and do what ``script`` says."""

    def __init__(self, fd: int, log: list[tuple[Any, ...]], script: Script) -> None:
        self.fd = fd
        self.log = log
        self.script = script
        self._protocol = self

    def act(self, name: str, *record: Any) -> Any:
        handled = sys.exc_info()[1]
        self.log.append((name, self.fd, *record, describe(handled)))
        action = self.script.get(name)
        if callable(action):
            return action()
        if isinstance(action, BaseException):
            raise action
        return action

    def _recv(self, size: int) -> bytes:
        result: bytes = self.act("recv", size)
        return result

    def data_received(self, data: bytes) -> None:
        self.act("data_received", data)

    def _eof(self) -> None:
        self.act("eof")

    def _recv_failed(self, exc: OSError) -> None:
        self.act("recv_failed", describe(exc))

    def _callback_failed(self, exc: Exception) -> None:
        self.act("callback_failed", describe(exc))


def describe(exc: BaseException | None) -> Any:
    """An exception as a log can compare it: its type and args, and its context's."""
    if exc is None:
        return None
    return (type(exc).__name__, exc.args, describe(exc.__context__))


class RecordingReactor(Reactor):
    """A reactor whose _fd_callback_failed logs, with the exception being handled."""

    log: list[tuple[Any, ...]]

    def _fd_callback_failed(self, fd: int, exc: Exception) -> None:
        self.log.append(("fd_callback_failed", fd, describe(exc), describe(sys.exc_info()[1])))
        action = getattr(self, "fd_callback_failed_raises", None)
        if action is not None:
            raise action


Scenario = Callable[[RecordingReactor, list[tuple[Any, ...]]], list[tuple[int, int]]]


def one_turn(scenario: Scenario, *, accelerated: bool) -> tuple[list[tuple[Any, ...]], Any]:
    """Run one turn of a reactor set up by ``scenario`` (which returns the
    events to report); the log, and what the turn raised (described)."""
    log: list[tuple[Any, ...]] = []
    poller = ScriptedPoller([])
    reactor = RecordingReactor(poller)
    reactor.log = log
    if not accelerated:
        reactor._dispatch = None
    poller.events = scenario(reactor, log)
    raised = None
    try:
        reactor.run_once(0)
    except BaseException as exc:
        raised = describe(exc)
    finally:
        reactor._streams.clear()
        reactor._readers.clear()
        reactor._writers.clear()
        reactor.close()
    return log, raised


def stream(reactor: Reactor, log: list[tuple[Any, ...]], fd: int, **script: Any) -> ScriptedStream:
    made = ScriptedStream(fd, log, script)
    reactor._streams[fd] = made  # type: ignore[assignment]
    return made


def callback(reactor: Reactor, log: list[tuple[Any, ...]], table: str, fd: int, action: Any = None) -> None:
    def call() -> None:
        log.append((table, fd, describe(sys.exc_info()[1])))
        if isinstance(action, BaseException):
            raise action
        if callable(action):
            action()

    getattr(reactor, f"_{table}")[fd] = call


def data_and_eof(reactor: RecordingReactor, log: Log) -> Events:
    stream(reactor, log, 10, recv=b"hello")
    stream(reactor, log, 11, recv=b"")
    return [(10, READABLE), (11, READABLE)]


def reads_that_fail(reactor: RecordingReactor, log: Log) -> Events:
    stream(reactor, log, 10, recv=BlockingIOError(11, "again"))
    stream(reactor, log, 11, recv=InterruptedError(4, "interrupted"))
    stream(reactor, log, 12, recv=ConnectionResetError(104, "reset"))
    stream(reactor, log, 13, recv=b"after them")
    return [(10, READABLE), (11, READABLE), (12, READABLE), (13, READABLE)]


def protocols_that_raise(reactor: RecordingReactor, log: Log) -> Events:
    stream(reactor, log, 10, recv=b"x", data_received=ValueError("bad data"))
    stream(reactor, log, 11, recv=b"", eof=RuntimeError("bad eof"))
    stream(reactor, log, 12, recv=b"y")
    return [(10, READABLE), (11, READABLE), (12, READABLE)]


def readers_and_writers(reactor: RecordingReactor, log: Log) -> Events:
    """Plain readers, writers, masks with errors and hang-ups, a stream fd
    with more than READABLE (its reader, not the inline read), a callback
    that raises, and an fd with nothing registered."""
    callback(reactor, log, "readers", 20)
    callback(reactor, log, "writers", 21, ValueError("writer broke"))
    callback(reactor, log, "readers", 22, KeyError("reader broke"))
    callback(reactor, log, "writers", 22)
    stream(reactor, log, 23, recv=b"not read inline")
    callback(reactor, log, "readers", 23)
    return [
        (20, READABLE),
        (21, WRITABLE),
        (22, ERROR),
        (23, READABLE | HANGUP),
        (24, READABLE),
        (22, READABLE | WRITABLE),
        (20, HANGUP),
    ]


def callbacks_that_unregister(reactor: RecordingReactor, log: Log) -> Events:
    """A protocol that closes another stream (its later event finds nothing)
    and drops the last reference to its own stream while it runs; a writer
    that removes the reader of its fd (ERROR: the writer is asked after)."""

    def close_others() -> None:
        del reactor._streams[11]
        del reactor._streams[10]  # the last reference is the loop's now

    stream(reactor, log, 10, recv=b"first", data_received=close_others)
    stream(reactor, log, 11, recv=b"never read")
    callback(reactor, log, "readers", 12, lambda: reactor._writers.pop(12))
    callback(reactor, log, "writers", 12)
    return [(10, READABLE), (11, READABLE), (12, ERROR)]


def a_read_raising_no_os_error(reactor: RecordingReactor, log: Log) -> Events:
    """Not an OSError from the read: it leaves the turn, the events after it unhandled."""
    stream(reactor, log, 10, recv=TypeError("not an OSError"))
    stream(reactor, log, 11, recv=b"never")
    return [(10, READABLE), (11, READABLE)]


def a_keyboard_interrupt(reactor: RecordingReactor, log: Log) -> Events:
    """A BaseException from a protocol leaves the turn, unhandled, the events after it too."""
    stream(reactor, log, 10, recv=b"x", data_received=KeyboardInterrupt())
    callback(reactor, log, "readers", 11)
    return [(10, READABLE), (11, READABLE)]


def a_hook_that_raises(reactor: RecordingReactor, log: Log) -> Events:
    """A hook raising in its turn: that leaves the turn, with the exception
    it was handling as its context."""
    stream(
        reactor, log, 10, recv=b"x", data_received=ValueError("first"), callback_failed=RuntimeError("hook")
    )
    stream(reactor, log, 11, recv=b"never")
    return [(10, READABLE), (11, READABLE)]


def an_fd_hook_that_raises(reactor: RecordingReactor, log: Log) -> Events:
    """The reactor's own hook raising: the same."""
    reactor.fd_callback_failed_raises = RuntimeError("fd hook")  # type: ignore[attr-defined]
    callback(reactor, log, "writers", 20, ValueError("writer broke"))
    callback(reactor, log, "readers", 21)
    return [(20, WRITABLE), (21, READABLE)]


SCENARIOS: list[Scenario] = [
    data_and_eof,
    reads_that_fail,
    protocols_that_raise,
    readers_and_writers,
    callbacks_that_unregister,
    a_read_raising_no_os_error,
    a_keyboard_interrupt,
    a_hook_that_raises,
    an_fd_hook_that_raises,
]


@needs_accelerator_in_use
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_the_dispatcher_makes_the_python_loops_calls(scenario: Scenario) -> None:
    """The same calls, in the same order, the same exceptions to the same
    hooks (each handled while its hook runs), and the same exception out of
    the turn, with the dispatcher as with the reactor loop's Python loop."""
    assert one_turn(scenario, accelerated=True) == one_turn(scenario, accelerated=False)


@needs_accelerator_in_use
def test_the_scenarios_do_what_they_say() -> None:
    """The comparison above compares something: what the Python loop does in three of them."""
    log, raised = one_turn(data_and_eof, accelerated=False)
    assert log == [
        ("recv", 10, READ_SIZE, None),
        ("data_received", 10, b"hello", None),
        ("recv", 11, READ_SIZE, None),
        ("eof", 11, None),
    ]
    assert raised is None
    log, raised = one_turn(reads_that_fail, accelerated=True)
    reset = ("ConnectionResetError", (104, "reset"), None)
    assert [entry[0] for entry in log] == ["recv", "recv", "recv", "recv_failed", "recv", "data_received"]
    assert log[3] == ("recv_failed", 12, reset, reset)
    log, raised = one_turn(a_hook_that_raises, accelerated=True)
    assert raised == ("RuntimeError", ("hook",), ("ValueError", ("first",), None))
    assert [entry[0] for entry in log] == ["recv", "data_received", "callback_failed"]


def test_a_reactor_uses_the_dispatcher_where_the_accelerator_is() -> None:
    """A new reactor holds a Dispatcher when the accelerator is in use, None otherwise."""
    reactor = Reactor()
    try:
        if accelerator.ACCELERATED:
            assert isinstance(reactor._dispatch, _speedups.Dispatcher)
        else:
            assert reactor._dispatch is None
    finally:
        reactor.close()


# ------------------------------------------------------ the turn, on epoll


def epoll_scenario(reactor: RecordingReactor, log: Log, fds: list[int]) -> Callable[[], None]:
    """Real descriptors in the reactor's epoll (a pipe with data for a
    stream, a writable pipe, a hung-up pipe whose reader raises), an
    always-ready descriptor, in that order; the before_dispatch to pass."""
    with_data, data_writer = nonblocking_pipe()
    os.write(data_writer, b"waiting")
    writable_reader, writable = nonblocking_pipe()
    hung_up, gone = nonblocking_pipe()
    os.close(gone)
    fds.extend([with_data, data_writer, writable_reader, writable, hung_up])
    stream(reactor, log, with_data, recv=b"scripted")
    reactor._poller.register(with_data, READABLE)
    callback(reactor, log, "writers", writable)
    reactor._poller.register(writable, WRITABLE)
    callback(reactor, log, "readers", hung_up, ValueError("reader broke"))
    reactor._poller.register(hung_up, READABLE)
    callback(reactor, log, "readers", 999)
    reactor._always_ready[999] = READABLE
    return lambda: log.append(("before_dispatch",))


def epoll_turn(accelerated: bool) -> tuple[Log, Any]:
    log: Log = []
    fds: list[int] = []
    reactor = RecordingReactor()
    reactor.log = log
    if not accelerated:
        reactor._dispatch = None
    try:
        before = epoll_scenario(reactor, log, fds)
        try:
            reactor._start_running()
            reactor._turn_for_host(0, before)
        finally:
            reactor._stop_running()
        return log, reactor._poller.poll is reactor._own_poll
    finally:
        reactor._always_ready.clear()
        for fd in fds:
            with contextlib.suppress(OSError):
                reactor._poller.unregister(fd)
            os.close(fd)
        reactor._streams.clear()
        reactor._readers.clear()
        reactor._writers.clear()
        reactor.close()


@needs_accelerator_in_use
def test_a_turn_on_epoll_makes_the_python_loops_calls() -> None:
    """The dispatcher's turn (epoll_wait in C) against epoll.poll and the
    Python loop, on real descriptors: before_dispatch first, then each
    event's calls in epoll's order, a reader's exception to the reactor's
    hook, then the always-ready descriptor's reader."""
    log, own_poll = epoll_turn(accelerated=True)
    assert own_poll  # the turn was the dispatcher's
    assert log == epoll_turn(accelerated=False)[0]
    assert log[0] == ("before_dispatch",)
    assert [entry[0] for entry in log[1:]] == [
        "recv",
        "data_received",
        "writers",
        "readers",
        "fd_callback_failed",
        "readers",
    ]
    assert log[-1] == ("readers", 999, None)


@needs_accelerator_in_use
def test_a_wrapped_poll_is_called_instead_of_the_dispatchers_wait() -> None:
    """A poller whose poll was wrapped since (a test counting turns) keeps
    being called: the dispatcher then hands out what it returns."""
    reactor = Reactor()
    polls: list[float] = []
    own = reactor._poller.poll

    def counting(timeout: float) -> list[tuple[int, int]]:
        polls.append(timeout)
        return own(timeout)

    try:
        reactor._poller.poll = counting  # type: ignore[method-assign]
        reactor.run_once(0)
        reactor.run_once(0)
    finally:
        reactor.close()
    assert polls == [0, 0]


@needs_accelerator_in_use
@pytest.mark.parametrize("accelerated", [False, True], ids=["python", "accelerator"])
def test_a_signal_during_the_wait_runs_its_handler_and_the_wait_goes_on(
    alarm: Alarm, accelerated: bool
) -> None:
    """EINTR in the turn's wait: the handler runs; what it makes ready (it
    writes to a watched pipe) is handed out in the same turn."""
    reactor = Reactor()
    if not accelerated:
        reactor._dispatch = None
    read_fd, write_fd = nonblocking_pipe()
    got: list[bytes] = []
    try:
        reactor._set_reader(read_fd, lambda: got.append(os.read(read_fd, 100)), None)
        alarm(lambda: os.write(write_fd, b"from the handler"), 0.02, 0)
        reactor.run_once(TIMEOUT)
    finally:
        reactor._set_reader(read_fd, None, None)
        reactor.close()
        os.close(read_fd)
        os.close(write_fd)
    assert got == [b"from the handler"]


@needs_accelerator_in_use
@pytest.mark.parametrize("accelerated", [False, True], ids=["python", "accelerator"])
def test_a_handler_that_raises_during_the_wait_ends_the_turn_with_it(alarm: Alarm, accelerated: bool) -> None:
    """EINTR, and the handler raises: the turn leaves with that exception."""
    reactor = Reactor()
    if not accelerated:
        reactor._dispatch = None
    waiting = False

    def handler() -> None:
        nonlocal waiting
        if waiting:
            waiting = False
            raise Interrupted

    def wait() -> None:
        nonlocal waiting
        waiting = True
        reactor.run_once(TIMEOUT)

    try:
        alarm(handler, 0.02, 0.02)
        with pytest.raises(Interrupted):
            wait()
    finally:
        reactor.close()


@needs_accelerator_in_use
def test_a_turn_within_a_turn_is_refused() -> None:
    """The dispatcher's events are in use during its turn: a callback that
    asks for another turn of the same dispatcher gets RuntimeError."""
    reactor = Reactor()
    read_fd, write_fd = nonblocking_pipe()
    raised: list[BaseException] = []

    def nested() -> None:
        os.read(read_fd, 100)
        try:
            reactor._dispatch.turn(0, None, {})
        except RuntimeError as exc:
            raised.append(exc)

    try:
        os.write(write_fd, b"x")
        reactor._set_reader(read_fd, nested, None)
        reactor.run_once(TIMEOUT)
    finally:
        reactor._set_reader(read_fd, None, None)
        reactor.close()
        os.close(read_fd)
        os.close(write_fd)
    assert [str(exc) for exc in raised] == ["turn() called from within a turn of the same dispatcher"]
