"""The reactor's own promises: scheduling, fd registration, errors, signals, sockets.

Transports are checked by the conformance suite; this file covers the loop
and what only the reactor offers.  Every test runs on the reactor and on the
coroutine driver, which is the reactor with a task per connection.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft.drivers import open_runtime
from weft.drivers._core import accepting
from weft.drivers.reactor import Reactor, ReactorListener
from weft.drivers.reactor._pollers import EpollPoller, PollPoller, SelectorPoller
from weft.drivers.testing import RecordingProtocol
from weft.protocols import EchoProtocol
from weft.protocols.contract import Protocol, Transport, clock_of
from weft.protocols.errors import ArgumentError, BusyResourceError, ClosedResourceError

#: This file tests the Reactor class itself (its internals too), on the
#: drivers that are one: chosen by name, not by capability.
pytestmark = pytest.mark.drivers(only=("reactor", "coroutine"))


@pytest.fixture
def reactor(driver: str) -> Iterator[Reactor]:
    made = open_runtime(driver)
    if not isinstance(made, Reactor):
        made.close()
        raise TypeError(f"the {driver} driver is no Reactor: this file tests the Reactor class")
    yield made
    made.close()


def echo_pair(reactor: Reactor) -> tuple[RecordingProtocol, ReactorListener]:
    """A recording client connected to an echo server on ``reactor``."""
    listener = reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    client = RecordingProtocol()
    connecting = reactor.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    assert reactor.run_until(connecting.done, TIMEOUT)
    connecting.result()
    return client, listener


def received(protocol: RecordingProtocol, size: int) -> Callable[[], bool]:
    """A condition: ``protocol`` has received ``size`` bytes."""
    return lambda: len(protocol.received) == size


def finish(reactor: Reactor, listener: ReactorListener, *protocols: RecordingProtocol) -> None:
    """Close the listener, abort every connection (both ends) and run until all have ended."""
    listener.close()
    for protocol in protocols:
        protocol.transport.abort()
    for transport in list(listener.connections):
        transport.abort()
    assert reactor.run_until(lambda: all(p.lost for p in protocols) and not listener.connections, TIMEOUT)
    reactor.run_until(lambda: not reactor._ready, TIMEOUT)


# ------------------------------------------------------------- scheduling


def test_call_soon_runs_in_call_order(reactor: Reactor) -> None:
    """call_soon callbacks run on the next turn, first in first out, with their arguments."""
    ran: list[int] = []
    for index in range(20):
        reactor.call_soon(ran.append, index)
    assert ran == []
    assert reactor.run_until(lambda: len(ran) == 20, TIMEOUT)
    assert ran == list(range(20))


def test_a_callback_scheduling_another_does_not_starve_the_loop(reactor: Reactor) -> None:
    """A callback that reschedules itself runs once per turn, so I/O and timers still run."""
    turns: list[int] = []

    def again() -> None:
        turns.append(1)
        reactor.call_soon(again)

    reactor.call_soon(again)
    fired: list[bool] = []
    reactor.call_later(0.01, fired.append, True)
    assert reactor.run_until(lambda: bool(fired), TIMEOUT)
    assert len(turns) > 1


def test_timers_run_in_deadline_order_and_cancel(reactor: Reactor) -> None:
    """call_later and call_at run by deadline (ties in scheduling order); cancelled ones never."""
    ran: list[str] = []
    now = reactor.now()
    reactor.call_later(0.03, ran.append, "third")
    reactor.call_at(now + 0.01, ran.append, "first")
    reactor.call_at(now + 0.01, ran.append, "second")
    reactor.call_later(-5, ran.append, "at once")
    reactor.call_later(0.02, ran.append, "never").cancel()
    assert reactor.run_until(lambda: len(ran) == 4, TIMEOUT)
    assert ran == ["at once", "first", "second", "third"]
    assert reactor.now() - now >= 0.03


def test_nan_delays_are_refused(reactor: Reactor) -> None:
    """A NaN delay or deadline is an ArgumentError, not a timer that never fires."""
    with pytest.raises(ArgumentError):
        reactor.call_later(float("nan"), print)
    with pytest.raises(ArgumentError):
        reactor.call_at(float("nan"), print)


def test_call_soon_threadsafe_wakes_a_sleeping_loop(reactor: Reactor) -> None:
    """A call from another thread wakes a loop blocked in poll with nothing to do."""
    ran: list[str] = []
    thread = threading.Thread(target=lambda: reactor.call_soon_threadsafe(ran.append, "from a thread"))
    reactor.call_later(0.05, thread.start)
    assert reactor.run_until(lambda: bool(ran), TIMEOUT)
    thread.join(TIMEOUT)
    assert ran == ["from a thread"]


def test_stop_from_another_thread(reactor: Reactor) -> None:
    """stop() from another thread makes run() return even when the loop is idle."""
    stopper = threading.Thread(target=reactor.stop)
    reactor.call_later(0.05, stopper.start)
    reactor.run()
    assert not reactor.running
    stopper.join(TIMEOUT)


def test_run_until_gives_up_after_its_timeout(reactor: Reactor) -> None:
    """run_until returns False once the timeout passes with the condition false."""
    start = reactor.now()
    assert not reactor.run_until(lambda: False, 0.05)
    assert reactor.now() - start >= 0.05


def test_run_is_not_reentrant_and_close_needs_a_stopped_loop(reactor: Reactor) -> None:
    """run() inside run() and close() while running are RuntimeErrors; a closed
    reactor refuses to run."""
    errors: list[BaseException] = []

    def misuse() -> None:
        for call in (reactor.run, reactor.close):
            try:
                call()
            except RuntimeError as exc:
                errors.append(exc)
        reactor.stop()

    reactor.call_soon(misuse)
    reactor.run()
    assert len(errors) == 2
    reactor.close()
    with pytest.raises(ClosedResourceError):
        reactor.run()


# ------------------------------------------------------ fd registration


def test_readers_and_writers_are_called_when_ready(reactor: Reactor) -> None:
    """add_reader calls back with its arguments when the fd is readable; add_writer
    when writable; removing them stops the calls."""
    left, right = socket.socketpair()
    with left, right:
        events: list[tuple[str, int]] = []
        reactor.add_writer(left.fileno(), events.append, ("writable", 1))
        assert reactor.run_until(lambda: ("writable", 1) in events, TIMEOUT)
        assert reactor.remove_writer(left.fileno())
        assert not reactor.remove_writer(left.fileno())
        right.send(b"x")
        reactor.add_reader(left.fileno(), lambda: events.append(("readable", len(left.recv(10)))))
        assert reactor.run_until(lambda: ("readable", 1) in events, TIMEOUT)
        assert reactor.remove_reader(left.fileno())


def test_a_second_reader_or_writer_is_refused(reactor: Reactor) -> None:
    """Registering a second reader (or writer) for an fd raises BusyResourceError and
    leaves the first in place: nothing is silently replaced."""
    left, right = socket.socketpair()
    with left, right:
        first: list[bytes] = []
        reactor.add_reader(left.fileno(), lambda: first.append(left.recv(10)))
        with pytest.raises(BusyResourceError):
            reactor.add_reader(left.fileno(), print)
        reactor.add_writer(left.fileno(), print)
        with pytest.raises(BusyResourceError):
            reactor.add_writer(left.fileno(), print)
        reactor.remove_writer(left.fileno())
        right.send(b"still mine")
        assert reactor.run_until(lambda: first == [b"still mine"], TIMEOUT)
        reactor.remove_reader(left.fileno())


def test_a_reactor_connection_refuses_a_second_reader(reactor: Reactor) -> None:
    """A connection's own fd counts too: add_reader on it is refused."""
    client, listener = echo_pair(reactor)
    fd = client.transport.get_extra_info("socket").fileno()
    with pytest.raises(BusyResourceError):
        reactor.add_reader(fd, print)
    finish(reactor, listener, client)


def test_a_closed_fd_is_refused() -> None:
    """Registering an fd that is not open raises ClosedResourceError, whatever the poller."""
    # A number far above any open fd (a just-closed one would be reused by the
    # reactor's own epoll or eventfd).
    closed_fd = 4000
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(closed_fd)
    for poller in (EpollPoller(), PollPoller(), SelectorPoller()):
        with Reactor(poller) as reactor, pytest.raises(ClosedResourceError):
            reactor.add_reader(closed_fd, print)


# ---------------------------------------------------------------- errors


def test_an_exception_in_a_plain_callback_is_logged_and_the_loop_goes_on(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising call_soon callback is logged with its traceback; later callbacks run."""
    ran: list[str] = []

    def fail() -> None:
        raise ValueError("broken callback")

    reactor.call_soon(fail)
    reactor.call_soon(ran.append, "after")
    with caplog.at_level(logging.ERROR, logger="weft.drivers.reactor"):
        assert reactor.run_until(lambda: bool(ran), TIMEOUT)
    assert any(record.exc_info and "broken callback" in str(record.exc_info[1]) for record in caplog.records)


class FailsOnBoom(Protocol):
    """Echoes, but raises on the word boom, and records how it ended."""

    def __init__(self) -> None:
        self.lost: list[BaseException | None] = []

    def connection_made(self, transport: Any) -> None:
        self.transport: Transport = transport

    def data_received(self, data: bytes) -> None:
        if b"boom" in data:
            raise RuntimeError("protocol bug")
        self.transport.write(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


def test_a_protocol_error_ends_only_its_connection(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    """data_received raising ends that connection with the exception, logged with
    its traceback; another connection on the same reactor carries on."""
    servers: list[FailsOnBoom] = []

    def make() -> FailsOnBoom:
        servers.append(FailsOnBoom())
        return servers[-1]

    listener = reactor.listen_tcp(make, "127.0.0.1", 0)
    doomed, bystander = RecordingProtocol(), RecordingProtocol()
    for client in (doomed, bystander):
        connecting = reactor.connect_tcp(
            functools.partial(lambda made: made, client), "127.0.0.1", listener.port
        )
        assert reactor.run_until(connecting.done, TIMEOUT)
    assert reactor.run_until(lambda: len(servers) == 2, TIMEOUT)
    with caplog.at_level(logging.ERROR, logger="weft.drivers.reactor"):
        doomed.transport.write(b"boom")
        assert reactor.run_until(lambda: doomed.lost, TIMEOUT)
    assert isinstance(servers[0].lost[0], RuntimeError)
    assert any("protocol bug" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)
    bystander.transport.write(b"still here")
    assert reactor.run_until(lambda: bystander.received == b"still here", TIMEOUT)
    assert servers[1].lost == []
    finish(reactor, listener, bystander)


def test_a_failing_connection_timer_ends_only_that_connection(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    """A timer scheduled through a connection's clock that raises ends that
    connection with the exception; the loop and other connections go on."""
    first, listener = echo_pair(reactor)
    second = RecordingProtocol()
    connecting = reactor.connect_tcp(lambda: second, "127.0.0.1", listener.port)
    assert reactor.run_until(connecting.done, TIMEOUT)

    def fail() -> None:
        raise LookupError("timer bug")

    clock_of(first.transport).call_later(0.01, fail)
    with caplog.at_level(logging.ERROR, logger="weft.drivers.reactor"):
        assert reactor.run_until(lambda: first.lost, TIMEOUT)
    assert isinstance(first.lost_exc, LookupError)
    second.transport.write(b"ok")
    assert reactor.run_until(lambda: second.received == b"ok", TIMEOUT)
    finish(reactor, listener, second)


# ------------------------------------------------------- registrations


def test_steady_echo_makes_no_registration_changes(reactor: Reactor) -> None:
    """Once a connection is reading, a thousand echoed messages change no poller
    registration: no epoll_ctl per read (the 2012 prototype made two) and none
    per write (Twisted makes two per write burst)."""
    client, listener = echo_pair(reactor)
    message = b"m" * 64
    client.transport.write(message)
    assert reactor.run_until(lambda: len(client.received) == 64, TIMEOUT)
    before = reactor.poller.changes
    for count in range(2, 1002):
        client.transport.write(message)
        assert reactor.run_until(received(client, 64 * count), TIMEOUT)
    assert reactor.poller.changes == before
    finish(reactor, listener, client)


def test_write_interest_is_added_only_while_data_waits(reactor: Reactor) -> None:
    """A write the kernel cannot take whole adds write interest (one change); once
    the queue drains it is removed (one more); nothing else changes.  (On every
    runtime built on the reactor: the coroutine driver too.)"""
    client, listener = echo_pair(reactor)
    server_transport = next(iter(listener.connections))
    server_transport.pause_reading()
    assert reactor.run_until(lambda: True, TIMEOUT)
    before = reactor.poller.changes
    payload = os.urandom(8 * 1024 * 1024)
    client.transport.write(payload)
    # The reactor sends at once; the coroutine driver's task on its next step.
    assert reactor.run_until(lambda: reactor.poller.changes != before, TIMEOUT)
    assert client.transport.get_write_buffer_size() > 0
    assert reactor.poller.changes == before + 1
    server_transport.resume_reading()
    assert reactor.run_until(lambda: client.transport.get_write_buffer_size() == 0, TIMEOUT)
    assert reactor.run_until(lambda: len(client.received) == len(payload), TIMEOUT)
    assert client.received == payload
    finish(reactor, listener, client)


@pytest.mark.parametrize(
    "poller_kind", [EpollPoller, PollPoller, SelectorPoller], ids=["epoll", "poll", "selectors"]
)
def test_every_poller_runs_an_echo(poller_kind: type[EpollPoller | PollPoller | SelectorPoller]) -> None:
    """The fallbacks (poll, selectors) carry a real exchange as epoll does."""
    with Reactor(poller_kind()) as reactor:
        client, listener = echo_pair(reactor)
        data = os.urandom(300_000)
        client.transport.write(data)
        assert reactor.run_until(lambda: len(client.received) == len(data), TIMEOUT)
        assert client.received == data
        finish(reactor, listener, client)


# --------------------------------------------------------------- signals


def test_a_signal_runs_its_handler_in_the_loop(reactor: Reactor) -> None:
    """add_signal_handler runs the callback on the loop when the signal arrives,
    even while the loop sleeps; remove_signal_handler puts the old handler back."""
    original = signal.getsignal(signal.SIGUSR1)
    got: list[str] = []
    reactor.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
    reactor.call_later(0.05, os.kill, os.getpid(), signal.SIGUSR1)
    assert reactor.run_until(lambda: bool(got), TIMEOUT)
    assert got == ["usr1"]
    assert reactor.remove_signal_handler(signal.SIGUSR1)
    assert not reactor.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) == original


def test_close_restores_signal_handlers() -> None:
    """Closing a reactor puts back every signal handler it replaced."""
    original = signal.getsignal(signal.SIGUSR2)
    reactor = Reactor()
    reactor.add_signal_handler(signal.SIGUSR2, print)
    assert signal.getsignal(signal.SIGUSR2) != original
    reactor.close()
    assert signal.getsignal(signal.SIGUSR2) == original


# ---------------------------------------------------- listening, connecting


def test_port_zero_gets_a_real_port_on_every_address(reactor: Reactor) -> None:
    """Listening on "localhost" binds each address it resolves to, all on one port."""
    listener = reactor.listen_tcp(EchoProtocol, "localhost", 0)
    ports = {address[1] for address in listener.addresses}
    assert ports == {listener.port}
    assert listener.port > 0
    listener.close()


def test_ipv6_loopback_works(reactor: Reactor) -> None:
    """Listening and connecting over IPv6 (::1) carries data like IPv4."""
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6 support at all")
    listener = reactor.listen_tcp(EchoProtocol, "::1", 0)
    client = RecordingProtocol()
    connecting = reactor.connect_tcp(lambda: client, "::1", listener.port)
    assert reactor.run_until(connecting.done, TIMEOUT)
    client.transport.write(b"over six")
    assert reactor.run_until(lambda: client.received == b"over six", TIMEOUT)
    assert client.transport.get_extra_info("peername")[0] == "::1"
    finish(reactor, listener, client)


def test_a_port_in_use_raises_at_once(reactor: Reactor) -> None:
    """Listening on a port already taken raises OSError(EADDRINUSE) immediately."""
    first = reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    with pytest.raises(OSError, match="in use") as caught:
        reactor.listen_tcp(EchoProtocol, "127.0.0.1", first.port)
    assert caught.value.errno == errno.EADDRINUSE
    first.close()


def test_a_closed_listener_accepts_no_more(reactor: Reactor) -> None:
    """After close() the port refuses connections; open connections are untouched."""
    client, listener = echo_pair(reactor)
    port = listener.port
    listener.close()
    assert listener.closed
    refused = reactor.connect_tcp(RecordingProtocol, "127.0.0.1", port)
    assert reactor.run_until(refused.done, TIMEOUT)
    assert isinstance(refused.exception(), ConnectionRefusedError)
    client.transport.write(b"still served")
    assert reactor.run_until(lambda: client.received == b"still served", TIMEOUT)
    finish(reactor, listener, client)


def test_a_factory_may_close_its_listener(reactor: Reactor, caplog: pytest.LogCaptureFixture) -> None:
    """A protocol factory that closes the listener (serve one client, then stop)
    ends the accept loop cleanly, with nothing logged, even with more clients
    waiting in the backlog."""
    listeners: list[ReactorListener] = []

    def once() -> RecordingProtocol:
        listeners[0].close()
        return RecordingProtocol()

    listeners.append(reactor.listen_tcp(once, "127.0.0.1", 0))
    port = listeners[0].port
    waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        with caplog.at_level(logging.ERROR):
            assert reactor.run_until(lambda: len(listeners[0].connections) == 1, TIMEOUT)
            reactor.run_until(lambda: False, 0.05)
        assert caplog.records == []
        assert listeners[0].closed
    finally:
        for sock in waiting:
            sock.close()
        for transport in list(listeners[0].connections):
            transport.abort()
        reactor.run_until(lambda: not listeners[0].connections, TIMEOUT)


def test_listener_tracks_live_connections(reactor: Reactor) -> None:
    """listener.connections holds each accepted connection until it ends."""
    client, listener = echo_pair(reactor)
    assert reactor.run_until(lambda: len(listener.connections) == 1, TIMEOUT)
    client.transport.close()
    assert reactor.run_until(lambda: not listener.connections, TIMEOUT)
    listener.close()


def test_a_refused_connect_names_the_address(reactor: Reactor) -> None:
    """Connecting where nobody listens fails with ConnectionRefusedError naming host:port."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    connecting = reactor.connect_tcp(RecordingProtocol, "127.0.0.1", port)
    assert reactor.run_until(connecting.done, TIMEOUT)
    error = connecting.exception()
    assert isinstance(error, ConnectionRefusedError)
    assert f"127.0.0.1:{port}" in str(error)


def test_a_connect_that_gets_no_answer_times_out(reactor: Reactor) -> None:
    """A connect whose SYNs are dropped (a listener with a full backlog) fails with
    TimeoutError after the timeout, and leaves no registration behind."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(0)
    port = blocker.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        connecting = reactor.connect_tcp(RecordingProtocol, "127.0.0.1", port, timeout=0.3)
        assert reactor.run_until(connecting.done, TIMEOUT)
        error = connecting.exception()
        assert isinstance(error, TimeoutError), error
        assert "0.3" in str(error)
        assert reactor._writers == {}
    finally:
        for filler in fillers:
            filler.close()
        blocker.close()


def test_connect_resolves_names_off_the_loop(reactor: Reactor) -> None:
    """A host name is resolved in a thread; the connection then works as with an address."""
    listener = reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    client = RecordingProtocol()
    connecting = reactor.connect_tcp(lambda: client, "localhost", listener.port)
    assert reactor.run_until(connecting.done, TIMEOUT)
    if isinstance(connecting.exception(), ConnectionRefusedError):
        # localhost may resolve to ::1 first, where nothing listens; then 127.0.0.1 must have been tried
        pytest.fail("connect did not fall back to the next address")
    client.transport.write(b"by name")
    assert reactor.run_until(lambda: client.received == b"by name", TIMEOUT)
    finish(reactor, listener, client)


def test_unix_socket_files_are_replaced_only_when_stale(reactor: Reactor, tmp_path: os.PathLike[str]) -> None:
    """listen_unix replaces a socket file nobody listens on, refuses a live one and
    never overwrites a regular file; close() removes the file."""
    path = os.path.join(tmp_path, "sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    listener = reactor.listen_unix(EchoProtocol, path)
    with pytest.raises(OSError, match="listening"):
        reactor.listen_unix(EchoProtocol, path)
    listener.close()
    assert not os.path.exists(path)
    with open(path, "w") as blocker:
        blocker.write("not a socket")
    with pytest.raises(FileExistsError):
        reactor.listen_unix(EchoProtocol, path)
    with open(path) as kept:
        assert kept.read() == "not a socket"


def test_accepting_pauses_when_out_of_descriptors(
    reactor: Reactor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """EMFILE on accept stops accepting for a while (instead of spinning on the
    error), with one line logged, and then resumes; waiting connections are then served."""
    monkeypatch.setattr(accepting, "ACCEPT_PAUSE", 0.05)
    listener = reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    listening = listener.sockets[0]
    real_accept = listening.accept
    failures = [OSError(errno.EMFILE, "Too many open files")]

    class Flaky:
        def __getattr__(self, name: str) -> object:
            return getattr(listening, name)

        def accept(self) -> tuple[socket.socket, object]:
            if failures:
                raise failures.pop()
            return real_accept()

    flaky = Flaky()
    acceptor = listener._acceptor
    reactor._set_reader(listening.fileno(), lambda: acceptor.accept(flaky), None)  # type: ignore[arg-type]
    client = RecordingProtocol()
    connecting = reactor.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    assert reactor.run_until(connecting.done, TIMEOUT)
    assert reactor.run_until(lambda: acceptor.paused or bool(listener.connections), TIMEOUT)
    assert listening.fileno() not in reactor._readers or listener.connections
    assert reactor.run_until(lambda: bool(listener.connections), TIMEOUT)
    client.transport.write(b"served after the pause")
    assert reactor.run_until(lambda: client.received == b"served after the pause", TIMEOUT)
    pauses = [record for record in caplog.records if "cannot accept" in record.getMessage()]
    assert len(pauses) == 1
    assert "(Too many open files); pausing for 0.05 s" in pauses[0].getMessage()
    finish(reactor, listener, client)


def test_closing_a_reactor_ends_what_is_still_open() -> None:
    """close() closes listeners and aborts open transports: their protocols hear
    connection_lost before close() returns, and no descriptor is left open."""
    reactor = Reactor()
    server = RecordingProtocol()
    listener = reactor.listen_tcp(lambda: server, "127.0.0.1", 0)
    client = RecordingProtocol()
    reactor.connect_tcp(lambda: client, "127.0.0.1", listener.addresses[0][1])
    assert reactor.run_until(lambda: client.made and server.made, TIMEOUT)
    sockets = [client.transport.get_extra_info("socket"), server.transport.get_extra_info("socket")]
    listening = listener.sockets[0]
    reactor.close()
    assert client.events[-1] == ("connection_lost", None)
    assert server.events[-1] == ("connection_lost", None)
    assert all(sock.fileno() == -1 for sock in [*sockets, listening])
    assert listener.closed


# ------------------------------------------------- embedding: stop, run_once


def test_a_stop_before_run_is_kept_for_one_turn() -> None:
    """stop() before run() is not lost: run makes one turn (what was ready runs)
    and returns, as asyncio's run_forever does; the next run is not stopped."""
    with Reactor() as reactor:
        ran: list[str] = []
        reactor.call_soon(ran.append, "ready before the stop")

        def safety_stop() -> None:
            ran.append("safety")
            reactor.stop()

        # Bounds the run should the stop be lost; it must not be needed.
        safety = reactor.call_later(TIMEOUT, safety_stop)
        reactor.stop()
        reactor.run()
        assert ran == ["ready before the stop"]
        safety.cancel()
        reactor.call_later(0.01, ran.append, "timer")
        reactor.call_later(0.02, reactor.stop)
        reactor.run()
        assert ran == ["ready before the stop", "timer"]


def test_run_once_runs_what_is_ready_and_returns() -> None:
    """run_once(0) runs the callbacks already scheduled, not the ones they schedule, and returns."""
    with Reactor() as reactor:
        ran: list[str] = []

        def first() -> None:
            ran.append("first")
            reactor.call_soon(ran.append, "next turn")

        reactor.call_soon(first)
        reactor.run_once(0)
        assert ran == ["first"]
        reactor.run_once(0)
        assert ran == ["first", "next turn"]
        reactor.run_once(0)  # nothing to do: returns at once
        assert ran == ["first", "next turn"]


def test_run_once_waits_for_io_and_for_timers() -> None:
    """With no timeout, a turn waits until a readable socket or a due timer, and handles it."""
    with Reactor() as reactor:
        left, right = socket.socketpair()
        with left, right:
            got: list[bytes] = []
            reactor.add_reader(left.fileno(), lambda: got.append(left.recv(100)))
            right.send(b"ping")
            reactor.run_once()
            assert got == [b"ping"]
            reactor.remove_reader(left.fileno())
        fired: list[str] = []
        reactor.call_later(0.01, fired.append, "timer")
        while not fired:  # a turn may wake a little early for the timer
            reactor.run_once(TIMEOUT)
        assert fired == ["timer"]


def test_run_once_with_nothing_to_do_returns_after_its_timeout() -> None:
    """A bounded wait with no I/O and no timer returns having run nothing."""
    with Reactor() as reactor:
        later: list[str] = []
        reactor.call_later(TIMEOUT, later.append, "far off")
        reactor.run_once(0.01)
        assert later == []


def test_run_once_leaves_a_pending_stop_to_run() -> None:
    """A pending stop makes run_once not wait, and run still sees it afterwards."""
    with Reactor() as reactor:
        ran: list[str] = []
        reactor.call_later(TIMEOUT, ran.append, "far off")
        reactor.stop()
        reactor.run_once()  # would wait TIMEOUT if the stop were ignored
        reactor.call_soon(ran.append, "one turn")
        reactor.run()
        assert ran == ["one turn"]


def test_run_once_refuses_a_bad_timeout_and_a_running_reactor() -> None:
    """A negative or NaN timeout is an ArgumentError; run_once inside a run is a RuntimeError."""
    with Reactor() as reactor:
        for bad in (-1.0, float("nan")):
            with pytest.raises(ArgumentError, match="timeout"):
                reactor.run_once(bad)
        errors: list[BaseException] = []

        def nested() -> None:
            try:
                reactor.run_once(0)
            except RuntimeError as exc:
                errors.append(exc)
            reactor.stop()

        reactor.call_soon(nested)
        reactor.run()
        assert [str(error) for error in errors] == ["the reactor is already running"]


def test_call_before_close_runs_first_and_may_turn_the_loop(
    reactor: Reactor, caplog: pytest.LogCaptureFixture
) -> None:
    """close() runs the before-close callbacks first, in order, while the loop can
    still turn: one that turns it sees a timer fire and an echo answered while the
    connection is still open (close aborts it only afterwards); a callback called
    off does not run, and one that raises is logged, with its traceback, and the
    others still run."""
    client, listener = echo_pair(reactor)
    seen: list[str] = []

    def finish_on_the_loop() -> None:
        reactor.call_later(0.001, seen.append, "timer fired")
        client.transport.write(b"last words")
        reactor.run_until(lambda: client.received == b"last words" and len(seen) == 2, TIMEOUT)
        seen.append(f"echoed {client.received!r}, connection lost: {client.lost}")

    def fail() -> None:
        raise RuntimeError("this hook fails")

    reactor.call_before_close(seen.append, "first")
    reactor.call_before_close(fail)
    reactor.call_before_close(finish_on_the_loop)
    reactor.call_before_close(seen.append, "called off").cancel()
    with caplog.at_level(logging.ERROR, logger="weft.drivers.reactor"):
        reactor.close()
    assert seen == ["first", "timer fired", "echoed b'last words', connection lost: False"]
    assert client.lost  # aborted by close, after the hooks
    assert listener.closed
    failures = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert [str(exc) for exc in failures] == ["this hook fails"]
    with pytest.raises(ClosedResourceError):
        reactor.call_before_close(seen.append, "too late")


# ---------------------------------------------------------- lent buffers


class TakesLentBuffers(RecordingProtocol):
    """Records what it gets, and how: views of a lent buffer, or bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.views: list[int] = []  # the length of each view it was lent
        self.byte_pieces = 0

    def buffer_received(self, view: memoryview) -> None:
        assert type(view) is memoryview
        self.views.append(len(view))
        super().data_received(bytes(view))  # a copy: the view is lent for this call only

    def data_received(self, data: bytes) -> None:
        self.byte_pieces += 1
        super().data_received(data)

    def buffer_received_only(self) -> bool:
        """Whether every piece came in a lent buffer."""
        return bool(self.views) and self.byte_pieces == 0


@pytest.mark.drivers(only=("reactor",))
def test_a_protocol_that_takes_a_lent_buffer_gets_the_stream_in_it(reactor: Reactor) -> None:
    """A socket whose protocol has ``buffer_received`` (weft's TLS layer) is read into the
    reactor's own buffer, not inline: every byte arrives, in order, as views of it, and
    none as bytes; the fd is not in the inline table."""
    server = TakesLentBuffers()
    listener = reactor.listen_tcp(lambda: server, "127.0.0.1", 0)
    client = RecordingProtocol()
    connecting = reactor.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    assert reactor.run_until(connecting.done, TIMEOUT)
    payload = bytes(range(256)) * 2048  # 512 KiB: more than one lent buffer's worth
    client.transport.write(payload)
    assert reactor.run_until(received(server, len(payload)), TIMEOUT)
    assert server.received == payload
    assert server.buffer_received_only()
    assert max(server.views) <= len(reactor._read_buffer)
    (accepted,) = listener.connections
    assert accepted._read_fd not in reactor._streams
    finish(reactor, listener, client, server)


@pytest.mark.drivers(only=("reactor",))
def test_a_lent_buffer_reader_handed_to_a_plain_protocol_gives_it_bytes(reactor: Reactor) -> None:
    """After ``set_protocol`` to a protocol without ``buffer_received``, the same
    connection's bytes reach it through ``data_received``, as bytes; EOF still arrives."""
    first = TakesLentBuffers()
    listener = reactor.listen_tcp(lambda: first, "127.0.0.1", 0)
    client = RecordingProtocol()
    connecting = reactor.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    assert reactor.run_until(connecting.done, TIMEOUT)
    client.transport.write(b"one")
    assert reactor.run_until(received(first, 3), TIMEOUT)
    second = RecordingProtocol()
    first.transport.set_protocol(second)
    client.transport.write(b"two")
    assert reactor.run_until(received(second, 3), TIMEOUT)
    assert second.received == b"two"
    assert all(type(event[1]) is bytes for event in second.events if event[0] == "data_received")
    client.transport.write_eof()
    assert reactor.run_until(lambda: second.got_eof, TIMEOUT)
    finish(reactor, listener, client)  # aborts the accepted side too
    assert second.lost
    assert not first.lost


# ------------------------------------------------------- refilling writers


class RefillsOnResume(RecordingProtocol):
    """Writes a little from resume_writing, and notes what was still queued right after."""

    def __init__(self) -> None:
        super().__init__()
        self.queued_after_refill: list[int] = []

    def resume_writing(self) -> None:
        super().resume_writing()
        self.transport.write(b"refill")
        self.queued_after_refill.append(self.transport.get_write_buffer_size())


@pytest.mark.drivers(only=("reactor",))
def test_a_write_from_resume_writing_goes_to_the_kernel_at_once(reactor: Reactor) -> None:
    """Once the queue has drained, resume_writing comes with the transport sending at
    once again: a write made from it is handed to the kernel in that call (nothing
    left queued), not held for the next writable event, a turn of the loop later."""
    listener = reactor.listen_tcp(RecordingProtocol, "127.0.0.1", 0)
    writer = RefillsOnResume()
    connecting = reactor.connect_tcp(lambda: writer, "127.0.0.1", listener.port)
    assert reactor.run_until(connecting.done, TIMEOUT)
    assert reactor.run_until(lambda: len(listener.connections) == 1, TIMEOUT)
    (reader,) = listener.connections
    reader.pause_reading()
    block = b"x" * 65536
    while "pause_writing" not in writer.names:  # fill the kernel's buffers, then the queue
        writer.transport.write(block)
        reactor.run_once(0)
    reader.resume_reading()
    assert reactor.run_until(lambda: bool(writer.queued_after_refill), TIMEOUT)
    assert writer.queued_after_refill[0] == 0
    finish(reactor, listener, writer)
