"""Twisted's reactor on weft's (weft.drivers.twisted_reactor), in this process.

Each test makes its own ``WeftReactor`` on its own weft ``Reactor`` and runs
it; none installs a global Twisted reactor (that is process-wide and cannot
be undone: tests/drivers/test_twisted_on_weft_programs.py does it in child
processes).  Twisted's own reactor tests run against it in
tests/frameworks/test_twisted_suite.py.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("twisted.internet.posixbase", reason="needs the twisted extra")

from twisted.internet import error, protocol

from tests.support import TIMEOUT
from weft.drivers.reactor import Reactor
from weft.drivers.twisted_reactor import WeftReactor
from weft.protocols import EchoProtocol


@pytest.fixture
def loop() -> Iterator[Reactor]:
    reactor = Reactor()
    yield reactor
    reactor.close()


@pytest.fixture
def reactor(loop: Reactor) -> Any:
    """A Twisted reactor on ``loop`` (as Any: its interfaces are zope declarations)."""
    twisted_reactor: Any = WeftReactor(loop)
    yield twisted_reactor
    twisted_reactor.removeAll()
    for call in twisted_reactor.getDelayedCalls():
        call.cancel()


def run(reactor: Any, timeout: float = TIMEOUT) -> None:
    """Run ``reactor`` until something stops it; fail if ``timeout`` passes first."""
    timed_out: list[bool] = []

    def expire() -> None:
        timed_out.append(True)
        reactor.stop()

    guard = reactor.callLater(timeout, expire)
    reactor.run(installSignalHandlers=False)
    if guard.active():
        guard.cancel()
    assert not timed_out, f"the reactor was still running after {timeout} s"


class Echo(protocol.Protocol):
    """Twisted's echo."""

    transport: Any

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Exchange(protocol.Protocol):
    """Sends ``messages`` one at a time and waits for each to come back; calls
    ``done(received)`` when all have."""

    transport: Any

    def __init__(self, messages: list[bytes], done: Callable[[bytes], None]) -> None:
        self.messages = list(messages)
        self.expected = b"".join(messages)
        self.received = bytearray()
        self.waiting_for = 0
        self.done = done

    def connectionMade(self) -> None:
        self.send_next()

    def send_next(self) -> None:
        message = self.messages.pop(0)
        self.waiting_for = len(self.received) + len(message)
        self.transport.write(message)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) < self.waiting_for:
            return
        if self.messages:
            self.send_next()
        else:
            self.done(bytes(self.received))


def listen_echo(reactor: Any) -> int:
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    return int(port.getHost().port)


def connect(reactor: Any, port: int, make: Callable[[], protocol.Protocol]) -> None:
    factory = protocol.ClientFactory()
    factory.protocol = make
    reactor.connectTCP("127.0.0.1", port, factory)


# ------------------------------------------------------------------ tests


def test_twisted_client_and_server_exchange_over_tcp(reactor: Any) -> None:
    """A Twisted echo server and a Twisted client exchange messages over loopback."""
    got: list[bytes] = []

    def done(received: bytes) -> None:
        got.append(received)
        reactor.stop()

    messages = [b"hello", b"x" * 70_000, b"bye"]
    connect(reactor, listen_echo(reactor), lambda: Exchange(messages, done))
    run(reactor)
    assert got == [b"".join(messages)]


def test_twisted_and_weft_protocols_share_the_loop(reactor: Any, loop: Reactor) -> None:
    """A weft protocol served on ``reactor.weft`` answers a Twisted client, and a
    Twisted server answers a weft client, all on one weft reactor."""
    assert reactor.weft is loop
    got: list[bytes] = []
    weft_listener = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0)

    class WeftClient:
        transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            transport.write(b"from weft")

        def data_received(self, data: bytes) -> None:
            got.append(b"weft client got " + data)
            self.transport.close()
            if len(got) == 2:
                reactor.stop()

        def eof_received(self) -> None:
            pass

        def connection_lost(self, exc: Exception | None) -> None:
            pass

    def twisted_done(received: bytes) -> None:
        got.append(b"twisted client got " + received)
        if len(got) == 2:
            reactor.stop()

    connect(reactor, weft_listener.port, lambda: Exchange([b"from twisted"], twisted_done))
    loop.connect_tcp(WeftClient, "127.0.0.1", listen_echo(reactor))
    run(reactor)
    weft_listener.close()
    assert sorted(got) == [b"twisted client got from twisted", b"weft client got from weft"]


def test_a_steady_exchange_changes_no_registration(reactor: Any, loop: Reactor) -> None:
    """Once connected, a Twisted echo answering 200 messages makes no change to
    the poller's registrations: its replies go out at once, without write
    interest (Twisted's epoll reactor makes two epoll_ctl calls per reply)."""
    changes: list[int] = []

    class Counting(Exchange):
        def dataReceived(self, data: bytes) -> None:
            if len(self.received) == 0 and not changes:
                # The first answer is back: every registration is made.
                changes.append(loop.poller.changes)
            super().dataReceived(data)

    def done(received: bytes) -> None:
        changes.append(loop.poller.changes)
        reactor.stop()

    connect(reactor, listen_echo(reactor), lambda: Counting([b"ping %d" % i for i in range(200)], done))
    run(reactor)
    assert len(changes) == 2
    assert changes[1] == changes[0]


def test_one_write_pass_per_turn_however_many_replies(reactor: Any, loop: Reactor) -> None:
    """Two clients in step with one echo server: turns read several
    connections that each write their reply right after their read, yet at
    most one end-of-turn write pass is scheduled per turn (there was one per
    reply: a weft callback per message)."""
    passes = 0
    turns = 0
    schedule, poll = loop.call_soon, loop.poller.poll

    def counting_call_soon(callback: Callable[..., object], *args: Any) -> Any:
        nonlocal passes
        if callback == reactor._write_pending:
            passes += 1
        return schedule(callback, *args)

    def counting_poll(timeout: float) -> list[tuple[int, int]]:
        nonlocal turns
        turns += 1
        return poll(timeout)

    loop.call_soon = counting_call_soon  # type: ignore[method-assign,assignment]
    loop.poller.poll = counting_poll  # type: ignore[method-assign]
    finished: list[bytes] = []

    def done(received: bytes) -> None:
        finished.append(received)
        if len(finished) == 2:
            reactor.stop()

    def exchange(name: bytes) -> Callable[[], protocol.Protocol]:
        return lambda: Exchange([b"%s %d" % (name, i) for i in range(100)], done)

    port = listen_echo(reactor)
    for name in (b"a", b"b"):
        connect(reactor, port, exchange(name))
    run(reactor)
    assert len(finished) == 2
    assert 0 < passes <= turns


def test_a_write_the_kernel_cannot_take_waits_for_readiness(reactor: Any) -> None:
    """8 MiB written at once to a client that reads it all: what the socket
    buffer cannot take at the end of the turn waits for write readiness, and
    every byte arrives in order."""
    payload = os.urandom(8 * 1024 * 1024)
    got: list[str] = []

    class Sender(protocol.Protocol):
        transport: Any

        def connectionMade(self) -> None:
            self.transport.write(payload)
            self.transport.loseConnection()

    class Receiver(protocol.Protocol):
        def __init__(self) -> None:
            self.received = bytearray()

        def dataReceived(self, data: bytes) -> None:
            self.received += data

        def connectionLost(self, reason: Any = None) -> None:
            got.append(hashlib.sha256(self.received).hexdigest())
            reactor.stop()

    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Sender), interface="127.0.0.1")
    connect(reactor, port.getHost().port, Receiver)
    run(reactor)
    assert got == [hashlib.sha256(payload).hexdigest()]


def test_delayed_calls_run_in_deadline_order(reactor: Any) -> None:
    """Delayed calls run by deadline; one reset() earlier runs earlier, one
    delayed runs later, a cancelled one never (each change reaches weft's
    single timer)."""
    order: list[str] = []
    reactor.callLater(0.03, order.append, "c")
    moved_sooner = reactor.callLater(0.2, order.append, "a")
    moved_sooner.reset(0.01)
    moved_later = reactor.callLater(0.02, order.append, "d")
    moved_later.delay(0.04)
    reactor.callLater(0.02, order.append, "b")
    reactor.callLater(0.025, order.append, "cancelled").cancel()
    reactor.callLater(0.1, reactor.stop)
    run(reactor)
    assert order == ["a", "b", "c", "d"]


def test_a_call_reset_sooner_runs_sooner(reactor: Any, loop: Reactor) -> None:
    """A delayed call due in 15 s, reset() to 0.01 s while the reactor runs,
    runs before a weft timer due in 1 s: the reset moves weft's one timer for
    Twisted (set for 15 s) earlier."""
    order: list[str] = []
    call = reactor.callLater(15, order.append, "reset")
    loop.call_later(0.005, call.reset, 0.01)
    loop.call_later(1, order.append, "weft timer")
    loop.call_later(1, reactor.stop)
    run(reactor)
    assert order == ["reset", "weft timer"]


def test_call_from_thread_wakes_the_loop(reactor: Any) -> None:
    """A call from another thread runs on the reactor's thread while it waits
    with nothing else to do (the guard timer is far off)."""
    ran_on: list[int] = []

    def record() -> None:
        ran_on.append(threading.get_ident())
        reactor.stop()

    thread = threading.Thread(target=reactor.callFromThread, args=(record,))
    reactor.callWhenRunning(thread.start)
    run(reactor)
    thread.join(TIMEOUT)
    assert ran_on == [threading.get_ident()]


def test_shutdown_triggers_fire_and_run_returns(reactor: Any) -> None:
    """stop() fires the before/during/after shutdown triggers, then run() returns."""
    events: list[str] = []
    for phase in ("before", "during", "after"):
        reactor.addSystemEventTrigger(phase, "shutdown", events.append, phase)
    reactor.callWhenRunning(reactor.stop)
    run(reactor)
    assert events == ["before", "during", "after"]
    with pytest.raises(error.ReactorNotRestartable):
        reactor.run(installSignalHandlers=False)


def test_weft_stop_is_taken_as_twisted_stop(reactor: Any, loop: Reactor) -> None:
    """weft code that stops weft's reactor while Twisted's run() turns it ends
    the program as Twisted's stop() would: shutdown triggers fire first."""
    events: list[str] = []
    reactor.addSystemEventTrigger("before", "shutdown", events.append, "shutdown")
    reactor.callWhenRunning(loop.stop)
    run(reactor)
    assert events == ["shutdown"]
    assert not reactor.running


def test_crash_returns_and_run_resumes(reactor: Any) -> None:
    """crash() makes run() return without shutdown; run() again carries on
    (trial's way of waiting for a Deferred)."""
    events: list[str] = []
    reactor.addSystemEventTrigger("before", "shutdown", events.append, "shutdown")
    reactor.callWhenRunning(reactor.crash)
    reactor.run(installSignalHandlers=False)
    assert events == []
    reactor.callLater(0.01, reactor.stop)
    run(reactor)
    assert events == ["shutdown"]


def test_hosted_twisted_runs_while_weft_drives(reactor: Any, loop: Reactor) -> None:
    """With startRunning() and weft's reactor run by its owner, Twisted's
    startup triggers, delayed calls and connections are served; Twisted's
    stop() fires its shutdown triggers and leaves the loop to its owner."""
    events: list[str] = []
    reactor.callWhenRunning(events.append, "running")
    reactor.addSystemEventTrigger("during", "shutdown", events.append, "shutdown")

    def exchanged(received: bytes) -> None:
        events.append(received.decode())
        reactor.callLater(0.01, reactor.stop)

    def start() -> None:
        reactor.startRunning(installSignalHandlers=False)
        connect(reactor, listen_echo(reactor), lambda: Exchange([b"hosted"], exchanged))

    loop.call_soon(start)
    assert loop.run_until(lambda: "shutdown" in events, timeout=TIMEOUT)
    assert events == ["running", "hosted", "shutdown"]


def test_run_refuses_while_weft_runs_elsewhere(reactor: Any, loop: Reactor) -> None:
    """reactor.run() from inside a running weft reactor raises, saying to use startRunning()."""
    raised: list[BaseException] = []

    def try_run() -> None:
        try:
            reactor.run(installSignalHandlers=False)
        except error.ReactorAlreadyRunning as exc:
            raised.append(exc)

    loop.call_soon(try_run)
    assert loop.run_until(lambda: bool(raised), timeout=TIMEOUT)
    assert "startRunning()" in str(raised[0])


def test_iterate_runs_one_turn(reactor: Any) -> None:
    """iterate() handles what is due without run(): a due delayed call runs."""
    ran: list[str] = []
    reactor.callLater(0, ran.append, "due")
    for _ in range(100):
        if ran:
            break
        reactor.iterate(0.01)
    assert ran == ["due"]


def test_readers_and_writers_are_listed_and_removed(reactor: Any) -> None:
    """getReaders/getWriters list what was added (a writer as soon as it asks,
    before its end-of-turn write); removeAll removes and returns them."""
    left, right = __import__("socket").socketpair()
    try:

        class Descriptor:
            def __init__(self, sock: Any) -> None:
                self.sock = sock

            def fileno(self) -> int:
                return int(self.sock.fileno())

            def logPrefix(self) -> str:
                return "descriptor"

            def doRead(self) -> None:
                pass

            def doWrite(self) -> None:
                pass

            def connectionLost(self, reason: Any) -> None:
                pass

        reader, writer = Descriptor(left), Descriptor(right)
        reactor.addReader(reader)
        reactor.addWriter(writer)
        assert reactor.getReaders() == [reader]
        assert reactor.getWriters() == [writer]
        assert set(reactor.removeAll()) == {reader, writer}
        assert reactor.getReaders() == []
        assert reactor.getWriters() == []
    finally:
        left.close()
        right.close()
