"""Trio programs in guest mode on weft's reactor (weft.drivers.trio_guest).

Real Trio code (``open_tcp_stream``, ``serve_tcp``, ``move_on_after``,
``fail_after``, ``to_thread``, nurseries, cancellation) runs on a weft
``Reactor`` beside weft protocols served by the same reactor, and on a Twisted
reactor on weft's.  Every wait is bounded by ``TIMEOUT``; none sleeps.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from tests.support import TIMEOUT
from weft.drivers import Future
from weft.drivers.coroutines import Cancelled
from weft.drivers.reactor import Reactor
from weft.drivers.testing import RecordingProtocol
from weft.drivers.trio_guest import DEFAULT_CLOSE_TIMEOUT, TrioGuest, run_trio, start_trio_guest
from weft.protocols import EchoProtocol
from weft.protocols.errors import ArgumentError, BusyResourceError, ClosedResourceError

KIB = 1024
#: 256 KiB that is not one byte repeated, so a reordering or a lost chunk shows.
PAYLOAD = bytes(range(256)) * KIB


@pytest.fixture(autouse=True)
def no_trio_run_is_left_behind() -> Iterator[None]:
    """Each test ends with no Trio run in this thread: a run left going would
    break every later Trio run here (Trio allows one per thread)."""
    yield
    assert not trio.lowlevel.in_trio_run()


@pytest.fixture
def reactor() -> Iterator[Reactor]:
    made = Reactor()
    yield made
    made.close()


def finish(reactor: Reactor, guest: TrioGuest[Any]) -> Any:
    """Turn ``reactor`` until the guest run is over; its result (or raise its exception)."""
    assert reactor.run_until(guest.done, TIMEOUT), "the Trio guest run did not finish in time"
    assert reactor.run_until(guest.outcome.done, TIMEOUT)
    return guest.outcome.result()


# ------------------------------------------------------------ networking


def test_a_trio_client_talks_to_a_weft_server_on_the_same_reactor(reactor: Reactor) -> None:
    """``trio.open_tcp_stream`` connects to weft's echo protocol served by the
    reactor that hosts Trio, sends 256 KiB and gets all of it back in order,
    then half-closes and sees the server's EOF; the Trio task runs on the
    reactor's thread."""
    listener = reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0)

    async def client() -> dict[str, object]:
        async with await trio.open_tcp_stream("127.0.0.1", listener.port) as stream:
            received = bytearray()

            async def receive() -> None:
                while chunk := await stream.receive_some():
                    received.extend(chunk)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                await stream.send_all(PAYLOAD)
                await stream.send_eof()
        return {"echoed": bytes(received) == PAYLOAD, "thread": threading.get_ident()}

    guest = start_trio_guest(reactor, client)
    assert finish(reactor, guest) == {"echoed": True, "thread": threading.get_ident()}
    listener.close()


def test_a_weft_client_talks_to_a_trio_server_on_the_same_reactor(reactor: Reactor) -> None:
    """``trio.serve_tcp`` serves on the reactor's thread; a weft protocol connects
    with the reactor's ``connect_tcp`` and gets its lines back upper-cased.
    Cancelling the guest ends ``serve_tcp`` (and the connection's handler):
    the outcome is Cancelled, and the weft client sees the connection end."""
    ports: list[int] = []
    handled: list[str] = []

    async def upper(stream: Any) -> None:
        try:
            while data := await stream.receive_some():
                await stream.send_all(data.upper())
            handled.append("eof")
        finally:
            handled.append("handler ended")

    async def server() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, upper, 0)
            ports.append(listeners[0].socket.getsockname()[1])

    guest = start_trio_guest(reactor, server)
    assert reactor.run_until(lambda: bool(ports), TIMEOUT)
    client = RecordingProtocol()
    connecting = reactor.connect_tcp(lambda: client, "127.0.0.1", ports[0])
    assert reactor.run_until(connecting.done, TIMEOUT)
    client.transport.write(b"hello from weft\n")
    assert reactor.run_until(lambda: client.received == b"HELLO FROM WEFT\n", TIMEOUT)
    guest.cancel()
    with pytest.raises(Cancelled, match="cancelled by its host"):
        finish(reactor, guest)
    assert handled == ["handler ended"]
    assert reactor.run_until(lambda: client.lost, TIMEOUT)


def test_a_twisted_program_on_weft_hosts_trio_too(reactor: Reactor) -> None:
    """On a Twisted reactor running on weft's (WeftReactor), a Trio client in
    guest mode on the same weft reactor talks to a Twisted LineReceiver server:
    three frameworks, one loop, one thread."""
    pytest.importorskip("twisted.internet.posixbase", reason="needs the twisted extra")
    from twisted.internet import protocol
    from twisted.protocols.basic import LineReceiver

    from weft.drivers.twisted_reactor import WeftReactor

    class Shout(LineReceiver):
        delimiter = b"\n"
        transport: Any

        def lineReceived(self, line: bytes) -> None:
            self.transport.write(line.upper() + b"!\n")

    twisted_reactor: Any = WeftReactor(reactor)
    twisted_reactor.startRunning(installSignalHandlers=False)
    port = twisted_reactor.listenTCP(0, protocol.Factory.forProtocol(Shout), interface="127.0.0.1")
    try:

        async def client() -> bytes:
            async with await trio.open_tcp_stream("127.0.0.1", port.getHost().port) as stream:
                await stream.send_all(b"hello twisted\n")
                answer = b""
                while not answer.endswith(b"\n"):
                    answer += await stream.receive_some()
                return answer

        assert finish(reactor, start_trio_guest(reactor, client)) == b"HELLO TWISTED!\n"
    finally:
        stopping = port.stopListening()
        stopped: list[object] = []
        stopping.addBoth(stopped.append)
        assert reactor.run_until(lambda: bool(stopped), TIMEOUT)
        twisted_reactor.removeAll()


# ------------------------------------------------------ time and threads


def test_trio_timeouts_and_threads_work_in_guest_mode(reactor: Reactor) -> None:
    """``trio.sleep`` returns, ``move_on_after`` cancels a ``sleep_forever``,
    ``fail_after`` raises TooSlowError, and ``trio.to_thread.run_sync`` runs a
    function in another thread that calls back into Trio with
    ``trio.from_thread.run_sync``, while weft's timers fire on the same loop."""
    ticks: list[str] = []
    reactor.call_later(0.001, ticks.append, "weft timer")

    async def program() -> dict[str, object]:
        seen: dict[str, object] = {}
        before = trio.current_time()
        await trio.sleep(0.01)
        seen["slept"] = trio.current_time() - before >= 0.01
        with trio.move_on_after(0.01) as scope:
            await trio.sleep_forever()
        seen["moved_on"] = scope.cancelled_caught
        with pytest.raises(trio.TooSlowError), trio.fail_after(0.01):
            await trio.sleep_forever()
        seen["failed_after"] = True

        def in_a_thread() -> tuple[bool, str]:
            # Back into Trio from the worker thread, through Trio's own door.
            name = trio.from_thread.run_sync(lambda: "called back")
            return threading.get_ident() != host, name + ", " + hashlib.sha256(PAYLOAD).hexdigest()[:8]

        seen["thread"] = await trio.to_thread.run_sync(in_a_thread)
        return seen

    host = threading.get_ident()
    result = finish(reactor, start_trio_guest(reactor, program))
    assert result == {
        "slept": True,
        "moved_on": True,
        "failed_after": True,
        "thread": (True, "called back, " + hashlib.sha256(PAYLOAD).hexdigest()[:8]),
    }
    assert ticks == ["weft timer"]


def test_host_code_calls_into_trio_through_the_token(reactor: Reactor) -> None:
    """Host code reaches the running Trio program with ``guest.token.run_sync_soon``:
    a weft timer sets a ``trio.Event`` a Trio task waits on."""
    waiting: list[Any] = []

    async def program() -> str:
        woken = trio.Event()
        waiting.append(woken)
        with trio.fail_after(TIMEOUT):
            await woken.wait()
        return "woken by weft"

    guest = start_trio_guest(reactor, program)
    before_it_ran = guest.token
    assert before_it_ran is None  # the program has not started yet
    assert reactor.run_until(lambda: bool(waiting), TIMEOUT)
    token = guest.token
    assert token is not None
    reactor.call_later(0.001, token.run_sync_soon, waiting[0].set)
    assert finish(reactor, guest) == "woken by weft"


def current_wakeup_fd() -> int:
    """The fd ``signal.set_wakeup_fd`` holds now (-1: none), left as it was."""
    current = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(current)
    return current


def test_trio_leaves_a_wakeup_fd_set_by_the_host_alone(reactor: Reactor) -> None:
    """Where something in the process already uses ``signal.set_wakeup_fd`` (an
    asyncio loop, Twisted's ``reactor.run()``), the guest run is told so and leaves
    it in place (Trio would otherwise take it over, and warn); where nothing does,
    Trio sets its own for the run and puts -1 back."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal.set_wakeup_fd exists only in the main thread")
    seen: list[int] = []

    async def look() -> None:
        await trio.sleep(0)
        seen.append(current_wakeup_fd())

    outer = signal.set_wakeup_fd(-1)  # whatever the test runner had, put back at the end
    try:
        finish(reactor, start_trio_guest(reactor, look))
        assert seen[0] != -1  # Trio's own, for the run
        assert current_wakeup_fd() == -1
        host_end, other_end = socket.socketpair()
        with host_end, other_end:
            host_end.setblocking(False)
            hosts = host_end.fileno()
            signal.set_wakeup_fd(hosts)
            finish(reactor, start_trio_guest(reactor, look))
            assert seen[1] == hosts
            assert current_wakeup_fd() == hosts
            signal.set_wakeup_fd(-1)
    finally:
        signal.set_wakeup_fd(outer)


# ---------------------------------------------------- outcome and errors


def test_an_exception_from_the_trio_program_reaches_the_host(reactor: Reactor) -> None:
    """The exception the Trio function raises is the outcome Future's, and the
    ``done`` callback is handed that Future; an error in a nursery's child comes
    as Trio's ExceptionGroup."""
    handed: list[Future[None]] = []

    async def fails() -> None:
        await trio.sleep(0)
        raise ValueError("raised in Trio")

    guest = start_trio_guest(reactor, fails, done=handed.append)
    with pytest.raises(ValueError, match="raised in Trio"):
        finish(reactor, guest)
    assert reactor.run_until(lambda: bool(handed), TIMEOUT)  # a Future's callbacks run soon, not inline
    assert handed == [guest.outcome]

    async def child_fails() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fails)
            await trio.sleep_forever()

    with pytest.raises(ExceptionGroup) as group:
        finish(reactor, start_trio_guest(reactor, child_fails))
    assert [str(exc) for exc in group.value.exceptions] == ["raised in Trio"]


def test_run_trio_returns_or_raises_what_the_function_does() -> None:
    """``run_trio`` is ``trio.run`` on a weft reactor: the function's value, or its
    exception raised, on a reactor of its own (closed at the end) or one given
    (left open and usable)."""

    async def double(value: int) -> int:
        await trio.sleep(0)
        return value * 2

    async def fails() -> None:
        await trio.sleep(0)
        raise KeyError("from Trio")

    assert run_trio(double, 21) == 42
    with pytest.raises(KeyError, match="from Trio"):
        run_trio(fails)
    with Reactor() as given:
        assert run_trio(double, 4, reactor=given) == 8
        after: list[str] = []
        given.call_soon(after.append, "still usable")
        assert given.run_until(lambda: bool(after), TIMEOUT)


def test_run_trio_serves_weft_protocols_on_the_reactor_it_is_given() -> None:
    """The reactor ``run_trio`` turns serves what else is on it: a Trio client
    reaches weft's echo protocol listening on it."""
    with Reactor() as given:
        listener = given.listen_tcp(EchoProtocol, "127.0.0.1", 0)

        async def ask() -> bytes:
            async with await trio.open_tcp_stream("127.0.0.1", listener.port) as stream:
                await stream.send_all(b"ping")
                return bytes(await stream.receive_some())

        assert run_trio(ask, reactor=given) == b"ping"


# ---------------------------------------------------------- cancellation


def test_cancel_ends_the_trio_program_through_trio_cancellation(reactor: Reactor) -> None:
    """``guest.cancel()`` raises Trio's Cancelled at the program's checkpoint, its
    ``finally`` runs (and may still await, shielded), and the outcome is weft's
    Cancelled; cancelling again, or once done, changes nothing."""
    steps: list[str] = []

    async def program() -> None:
        try:
            steps.append("waiting")
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0)
            steps.append("cleaned up")

    guest = start_trio_guest(reactor, program)
    assert reactor.run_until(lambda: steps == ["waiting"], TIMEOUT)
    guest.cancel()
    guest.cancel()
    with pytest.raises(Cancelled):
        finish(reactor, guest)
    assert steps == ["waiting", "cleaned up"]
    guest.cancel()
    assert guest.done()


def test_a_cancel_before_the_program_starts_still_lets_it_clean_up(reactor: Reactor) -> None:
    """Cancelled before its first step, the function meets the cancellation at its
    first checkpoint, and the outcome is Cancelled."""
    steps: list[str] = []

    async def program() -> None:
        steps.append("started")
        try:
            await trio.sleep(0)
            steps.append("went past a checkpoint")
        finally:
            steps.append("cleaned up")

    guest = start_trio_guest(reactor, program)
    guest.cancel()
    with pytest.raises(Cancelled):
        finish(reactor, guest)
    assert steps == ["started", "cleaned up"]


def test_a_program_that_handles_its_cancellation_returns_its_value(reactor: Reactor) -> None:
    """A function whose own scope absorbs the cancellation and then returns ends the
    run with that value: a cancel asks, the program decides."""

    async def program() -> str:
        with trio.CancelScope(shield=True), trio.move_on_after(0.01):
            await trio.sleep_forever()
        return "ended on its own terms"

    guest = start_trio_guest(reactor, program)
    guest.cancel()
    assert finish(reactor, guest) == "ended on its own terms"


def test_stopping_the_reactor_under_run_trio_cancels_the_program() -> None:
    """``reactor.stop()`` while ``run_trio`` runs asks the Trio program to end: it
    is cancelled, its ``finally`` runs, and ``run_trio`` raises Cancelled."""
    steps: list[str] = []
    with Reactor() as given:

        async def program() -> None:
            try:
                given.call_soon(given.stop)  # weft code stops the loop
                await trio.sleep_forever()
            finally:
                steps.append("cleaned up")

        with pytest.raises(Cancelled):
            run_trio(program, reactor=given)
    assert steps == ["cleaned up"]


def test_an_exception_escaping_the_loop_cancels_the_run_and_close_waits_for_it() -> None:
    """A BaseException out of the host's loop (a KeyboardInterrupt raised in a
    weft callback) comes out of ``run_trio``, after the Trio program was
    cancelled and, as its reactor closed, allowed to finish."""
    steps: list[str] = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    async def program() -> None:
        try:
            steps.append("waiting")
            await trio.sleep_forever()
        finally:
            steps.append("cleaned up")

    async def main() -> None:
        weft_loop.call_soon(interrupt)
        await program()

    with Reactor() as weft_loop, pytest.raises(KeyboardInterrupt):
        run_trio(main, reactor=weft_loop)
    assert steps == ["waiting", "cleaned up"]


# ------------------------------------------------------------- closing


def test_closing_the_reactor_cancels_the_run_and_waits_for_it(reactor: Reactor) -> None:
    """``Reactor.close()`` with a guest run going cancels it and turns the loop until
    Trio's done callback: the program's ``finally`` runs (a Trio connection it holds
    to weft's echo is closed in order), the done callback gets Cancelled, and
    Trio can run again in this thread."""
    listener = reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    steps: list[str] = []
    handed: list[Future[None]] = []

    async def program() -> None:
        async with await trio.open_tcp_stream("127.0.0.1", listener.port) as stream:
            await stream.send_all(b"hello")
            steps.append(bytes(await stream.receive_some()).decode())
            try:
                await trio.sleep_forever()
            finally:
                steps.append("cleaned up")

    guest = start_trio_guest(reactor, program, done=handed.append)
    assert reactor.run_until(lambda: steps == ["hello"], TIMEOUT)
    reactor.close()
    assert steps == ["hello", "cleaned up"]
    assert guest.done()
    assert handed == [guest.outcome]
    assert isinstance(guest.outcome.exception(), Cancelled)
    assert not trio.lowlevel.in_trio_run()

    async def again() -> str:
        await trio.sleep(0)
        return "trio runs again"

    assert trio.run(again) == "trio runs again"


def test_closing_gives_up_on_a_run_that_ignores_cancellation() -> None:
    """A guest run shielded from cancellation would hold ``close()`` forever: after
    ``close_timeout`` it is abandoned, an error says so, and close finishes.  In a
    child process, since an abandoned run leaves Trio unusable in its thread."""
    code = """
import logging, trio
from weft.drivers.reactor import Reactor
from weft.drivers.trio_guest import start_trio_guest

logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
started = []

async def stubborn():
    with trio.CancelScope(shield=True):
        started.append(True)
        await trio.sleep_forever()

reactor = Reactor()
guest = start_trio_guest(reactor, stubborn, close_timeout=0.05)
assert reactor.run_until(lambda: bool(started), 20)
reactor.close()
print("closed; the run is done:", guest.done())
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=2 * TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "closed; the run is done: False\n"
    assert (
        "weft.drivers.trio_guest: a Trio guest run was still going 0.05 s after its reactor began to close "
        "and cancelled it: it is abandoned, and Trio cannot run again in this thread"
    ) in done.stderr


# -------------------------------------------------------------- refusals


def test_one_trio_run_per_thread(reactor: Reactor) -> None:
    """A second guest run in the thread of a first is refused with BusyResourceError
    (Trio's rule), and the first goes on unharmed."""

    async def first() -> str:
        await trio.sleep(0.001)
        return "first finished"

    guest = start_trio_guest(reactor, first)
    with pytest.raises(BusyResourceError, match="one per thread"):
        start_trio_guest(reactor, first)
    assert finish(reactor, guest) == "first finished"


def test_bad_arguments_and_a_closed_reactor_are_refused() -> None:
    """A negative or NaN close_timeout is an ArgumentError; a closed reactor is a
    ClosedResourceError; neither leaves a Trio run behind."""

    async def nothing() -> None:
        await trio.sleep(0)

    with Reactor() as reactor:
        for bad in (-1.0, float("nan")):
            with pytest.raises(ArgumentError, match="close_timeout"):
                start_trio_guest(reactor, nothing, close_timeout=bad)
    with pytest.raises(ClosedResourceError):
        start_trio_guest(reactor, nothing)
    assert DEFAULT_CLOSE_TIMEOUT > 0


def test_without_trio_the_error_names_the_extra() -> None:
    """Importing the package where Trio is missing fails in one line that says
    which extra to install."""
    code = "import sys; sys.modules['trio'] = None\nimport weft.drivers.trio_guest"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: weft.drivers.trio_guest needs Trio, which is not installed: "
        "pip install 'weft[trio]'"
    )
