"""The Twisted driver's own behaviour: how weft's contract maps onto Twisted's.

The shipped conformance suite and the driver matrix run on the ``twisted``
driver like on every other (tests/conformance, and every test marked
``drivers``).  Here: the mapping itself, step by step on Twisted's own test
double (``twisted.internet.testing.StringTransport``, playing the Twisted
transport, and ``task.Clock``); the clock on a fake ``IReactorTime``; every
reactor kind through the whole conformance suite; runtimes side by side and
one after another in one process; a reactor a Twisted program runs; and the
missing extra.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import error as twisted_error
from twisted.internet import task
from twisted.internet.protocol import ClientFactory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tests.support import TIMEOUT
from tests.support.descriptors import no_new_fds
from weft.drivers import DRIVERS, UnavailableDriverError, open_runtime
from weft.drivers.testing import RecordingProtocol
from weft.drivers.testing.conformance import (
    DatagramRuntimeHarness,
    FlowRecorder,
    RuntimeHarness,
    check_datagrams,
    check_transport,
)
from weft.drivers.twisted import REACTOR_KINDS, TwistedRuntime, TwistedTransport, new_reactor
from weft.drivers.twisted._reactors import release
from weft.drivers.twisted._transport import CHUNK
from weft.protocols import EchoProtocol
from weft.protocols.contract import clock_of
from weft.protocols.errors import ArgumentError, ClosedResourceError, WriteAfterEofError

KIB = 1024


# ------------------------------------------------ the mapping, step by step


class TwistedDouble(StringTransport):
    """Twisted's StringTransport, with the half-close and writability calls of a real one."""

    def __init__(self) -> None:
        super().__init__(lenient=True)
        self.write_lost = False
        self.aborted = False
        self.watching_writes = 0

    def loseWriteConnection(self) -> None:
        self.write_lost = True

    def abortConnection(self) -> None:
        self.aborted = True

    def startWriting(self) -> None:
        self.watching_writes += 1


class Mapped:
    """A TwistedTransport over a TwistedDouble, with its protocol, its clock and its turns by hand."""

    def __init__(self, protocol: FlowRecorder | None = None) -> None:
        self.protocol = protocol or FlowRecorder(keep_open_on_eof=True)
        self.clock = task.Clock()
        self.soon: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        from weft.drivers.twisted._clock import ReactorClock

        weft_clock = ReactorClock(self.clock, self.clock.seconds, lambda message, exc: None)
        self.transport = TwistedTransport(weft_clock, self.schedule, lambda: self.protocol)
        self.twisted = TwistedDouble()
        self.transport.side.makeConnection(self.twisted)

    def schedule(self, callback: Callable[..., object], *args: Any) -> Any:
        self.soon.append((callback, args))
        return None

    def turn(self) -> None:
        """Run what the transport scheduled for the next turn."""
        ready, self.soon = self.soon, []
        for callback, args in ready:
            callback(*args)

    def twisted_drained(self) -> None:
        """What Twisted does once its buffer is empty: ask its pull producer for more."""
        self.twisted.clear()
        self.transport.side.resumeProducing()

    def lose(self, reason: BaseException) -> None:
        self.transport.side.connectionLost(Failure(reason))
        self.turn()


def test_the_side_is_registered_as_a_pull_producer_and_made_the_protocol() -> None:
    """Twisted's makeConnection makes the weft protocol; the side is the Twisted
    transport's producer, a pull one (Twisted asks it each time its buffer empties)."""
    mapped = Mapped()
    assert mapped.protocol.names == ["connection_made"]
    assert mapped.twisted.producer is mapped.transport.side
    assert mapped.twisted.streaming is False


def test_writes_go_straight_to_twisted_up_to_a_chunk_then_wait_in_the_queue() -> None:
    """While Twisted holds less than a chunk, writes go straight to it; past that
    they wait in the driver's queue, counted, and go on a chunk at a time as
    Twisted asks for more."""
    mapped = Mapped()
    transport = mapped.transport
    transport.set_write_buffer_limits(high=10 * CHUNK)
    transport.write(b"a" * 1000)
    assert mapped.twisted.value() == b"a" * 1000
    transport.write(b"b" * CHUNK)  # would take Twisted past a chunk: queued
    assert mapped.twisted.value() == b"a" * 1000 + b"b" * (CHUNK - 1000)
    assert transport.get_write_buffer_size() == 1000 + CHUNK
    mapped.twisted_drained()
    assert mapped.twisted.value() == b"b" * 1000
    assert transport.get_write_buffer_size() == 1000


def test_pause_and_resume_writing_at_weft_marks_not_twisteds_buffer_size() -> None:
    """pause_writing comes from inside the write that takes the buffer strictly
    over the high-water mark (however high: not at Twisted's own 64 KiB
    bufferSize), resume_writing from inside Twisted's ask for more once it is
    at or under the low one; writelines feeds it the same."""
    mapped = Mapped()
    transport, protocol = mapped.transport, mapped.protocol
    transport.set_write_buffer_limits(high=300 * KIB, low=100 * KIB)
    for _ in range(30):
        transport.write(bytes(10 * KIB))
    assert protocol.count("pause_writing") == 0  # exactly at the mark: not over it
    transport.writelines([b"x"])
    assert protocol.buffer_at_pause == [300 * KIB + 1]
    drains = 0
    while protocol.count("resume_writing") == 0:
        mapped.twisted_drained()
        drains += 1
    assert protocol.buffer_at_resume[0] <= 100 * KIB
    assert protocol.buffer_at_resume[0] > 100 * KIB - CHUNK  # the first ask that took it under
    assert drains == 4


def test_lowering_the_mark_under_the_buffer_pauses_at_once() -> None:
    """set_write_buffer_limits under what waits calls pause_writing before it returns."""
    mapped = Mapped()
    mapped.transport.write(bytes(KIB))
    mapped.transport.set_write_buffer_limits(high=100)
    assert mapped.protocol.buffer_at_pause == [KIB]


def test_pause_and_resume_reading_are_twisteds_pause_and_resume_producing() -> None:
    """pause_reading pauses the Twisted transport as a producer (it stops reading),
    resume_reading resumes it; data Twisted hands over meanwhile is held and
    delivered on a later turn after resume_reading."""
    mapped = Mapped()
    transport, twisted = mapped.transport, mapped.twisted
    transport.pause_reading()
    assert twisted.producerState == "paused"
    mapped.transport.side.dataReceived(b"already read")
    assert mapped.protocol.received == b""
    transport.resume_reading()
    assert mapped.protocol.received == b""  # not from inside resume_reading
    mapped.turn()
    assert mapped.protocol.received == b"already read"
    assert twisted.producerState == "producing"


def test_eof_is_read_connection_lost_and_eof_received_decides() -> None:
    """Twisted's readConnectionLost is eof_received; a true answer keeps the
    connection half-open (no loseConnection), a false one closes it."""
    kept = Mapped(FlowRecorder(keep_open_on_eof=True))
    kept.transport.side.readConnectionLost()
    assert kept.protocol.got_eof
    assert not kept.twisted.disconnecting
    closed = Mapped(FlowRecorder(keep_open_on_eof=False))
    closed.transport.side.readConnectionLost()
    assert closed.twisted.disconnecting
    assert closed.twisted.producer is None  # unregistered first: Twisted would never close otherwise


def test_write_eof_is_lose_write_connection_once_the_queue_is_handed_over() -> None:
    """write_eof with bytes still queued waits until Twisted took them all, then
    unregisters the producer and calls loseWriteConnection; writeConnectionLost
    says it went out; a write after it raises."""
    mapped = Mapped()
    transport = mapped.transport
    transport.write(bytes(CHUNK + 10))
    transport.write_eof()
    assert not mapped.twisted.write_lost
    with pytest.raises(WriteAfterEofError):
        transport.write(b"late")
    mapped.twisted_drained()
    assert mapped.twisted.write_lost
    assert mapped.twisted.producer is None
    transport.side.writeConnectionLost()
    assert transport.get_write_buffer_size() == 0
    assert transport.is_reading()


def test_close_flushes_through_lose_connection_and_abort_drops_through_abort_connection() -> None:
    """close() hands what is queued over and calls loseConnection (Twisted
    flushes); abort() drops the queue (the buffer size is 0 at once) and calls
    abortConnection.  connection_lost(None) follows for both, on a later turn."""
    closing = Mapped()
    closing.transport.write(bytes(CHUNK + 10))
    closing.transport.close()
    assert not closing.twisted.disconnecting
    closing.twisted_drained()
    assert closing.twisted.disconnecting
    assert not closing.twisted.aborted
    closing.lose(twisted_error.ConnectionDone())
    assert closing.protocol.lost
    assert closing.protocol.lost_exc is None

    aborting = Mapped()
    aborting.transport.write(bytes(CHUNK + 10))
    aborting.transport.abort()
    assert aborting.transport.get_write_buffer_size() == 0
    assert aborting.twisted.aborted
    assert not aborting.twisted.disconnecting
    assert not aborting.protocol.lost  # never from inside abort()
    aborting.lose(twisted_error.ConnectionAborted())
    assert aborting.protocol.lost
    assert aborting.protocol.lost_exc is None


def test_connection_lost_gets_a_weft_error_for_an_unclean_end() -> None:
    """Twisted's ConnectionLost (a reset: Twisted drops the errno) reaches the
    protocol as ConnectionResetError; its ConnectionDone as None; any other
    reason as itself."""
    reset = Mapped()
    reset.lose(twisted_error.ConnectionLost())
    assert isinstance(reset.protocol.lost_exc, ConnectionResetError)
    clean = Mapped()
    clean.lose(twisted_error.ConnectionDone())
    assert clean.protocol.lost_exc is None
    odd = Mapped()
    failure = OSError("something else")
    odd.lose(failure)
    assert odd.protocol.lost_exc is failure


def _received(protocol: RecordingProtocol, data: bytes) -> Callable[[], bool]:
    """Whether ``protocol`` has received ``data``, as a condition to run until."""
    return lambda: protocol.received == data


def _returning(protocol: Any) -> Callable[[], Any]:
    """A protocol factory that makes ``protocol``."""
    return lambda: protocol


class Explodes(FlowRecorder):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        raise ValueError("boom")


def test_an_exception_from_a_callback_aborts_that_connection_and_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """data_received raising: logged on weft.drivers.twisted, Twisted's connection
    aborted (a reset), and connection_lost gets the exception; Twisted never sees it."""
    mapped = Mapped(Explodes())
    with caplog.at_level(logging.ERROR, logger="weft.drivers.twisted"):
        mapped.transport.side.dataReceived(b"trigger")
    assert mapped.twisted.aborted
    (record,) = caplog.records
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "boom"
    mapped.lose(twisted_error.ConnectionAborted())
    assert isinstance(mapped.protocol.lost_exc, ValueError)


# --------------------------------------------------------------- the clock


def test_timeouts_run_on_a_fake_reactor_clock() -> None:
    """TwistedRuntime(clock=task.Clock()): now() is the clock's seconds(), a
    connection's timer runs when the clock is advanced to it and not before,
    and calls due together run in the order they were scheduled."""
    clock = task.Clock()
    with TwistedRuntime(clock=clock) as runtime:
        client, server = connect_pair(runtime, FlowRecorder(), FlowRecorder())
        connection_clock = clock_of(server.transport)
        assert runtime.now() == clock.seconds() == connection_clock.now()
        ran: list[int] = []
        for index in range(20):
            connection_clock.call_later(30, ran.append, index)
        server.transport.get_extra_info("clock").call_later(30, server.transport.close)
        clock.advance(29.9)
        assert ran == []
        clock.advance(0.1)
        assert ran == list(range(20))
        assert runtime.run_until(lambda: client.lost, TIMEOUT)


def test_the_clock_never_runs_a_timer_early_and_refuses_nan() -> None:
    """A wake-up that comes before the deadline on the clock's own time (the
    reactor's wall clock ran ahead) runs nothing and waits again; a NaN delay
    is an ArgumentError."""
    from weft.drivers.twisted._clock import ReactorClock

    scheduler = task.Clock()
    now = [100.0]
    clock = ReactorClock(scheduler, lambda: now[0], lambda message, exc: None)
    ran: list[str] = []
    clock.call_later(10, ran.append, "due")
    scheduler.advance(10)  # the wake-up, while only 5 s passed on the monotonic clock
    now[0] = 105.0
    assert ran == []
    now[0] = 110.0
    scheduler.advance(10)
    assert ran == ["due"]
    with pytest.raises(ArgumentError):
        clock.call_later(float("nan"), ran.append, "never")


def test_call_soon_keeps_order_and_call_soon_threadsafe_wakes_the_reactor() -> None:
    """call_soon calls run in call order on the next turn; one made from
    another thread wakes a reactor waiting for I/O."""
    with TwistedRuntime() as runtime:
        ran: list[str] = []
        for name in ("one", "two", "three"):
            runtime.call_soon(ran.append, name)
        assert runtime.run_until(lambda: len(ran) == 3, TIMEOUT)
        assert ran == ["one", "two", "three"]
        thread = threading.Thread(target=runtime.call_soon_threadsafe, args=(ran.append, "from a thread"))
        thread.start()
        assert runtime.run_until(lambda: "from a thread" in ran, TIMEOUT)
        thread.join(TIMEOUT)


# ------------------------------------------------------- runtimes, reactors


def connect_pair(runtime: TwistedRuntime, client: Any, server: Any) -> tuple[Any, Any]:
    """``client`` connected to ``server`` over loopback TCP on ``runtime``."""
    listener = runtime.listen_tcp(lambda: server)
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    assert runtime.run_until(lambda: connecting.done() and bool(listener.connections), TIMEOUT)
    connecting.result()
    listener.close()
    return client, server


def test_the_registry_opens_a_new_reactor_of_the_best_kind() -> None:
    """open_runtime("twisted") gives a TwistedRuntime named "twisted" on a new
    reactor of the best kind here (epoll on Linux), needing the twisted extra."""
    info = DRIVERS["twisted"]
    assert (info.requires, info.extra) == (("twisted.internet",), "twisted")
    runtime = open_runtime("twisted")
    try:
        assert isinstance(runtime, TwistedRuntime)
        assert runtime.name == "twisted"
        expected = "epoll" if hasattr(__import__("select"), "epoll") else runtime.reactor_kind
        assert runtime.reactor_kind == expected
    finally:
        runtime.close()


@pytest.mark.parametrize("absence", ["no twisted at all", "only a twisted/plugins directory"])
def test_without_twisted_the_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch, absence: str) -> None:
    """Where Twisted cannot be imported, the twisted driver is unavailable and says
    which pip extra installs it, in one line: with no ``twisted`` at all, and
    with only a ``twisted/plugins`` directory on the path (an editable weft's
    own plugin), which makes ``twisted`` an empty namespace package."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        if name == "twisted.internet":
            if absence == "no twisted at all":
                raise ModuleNotFoundError("No module named 'twisted'", name="twisted")
            return None
        return real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert not DRIVERS["twisted"].available()
    with pytest.raises(
        UnavailableDriverError, match=r"^the twisted driver needs twisted.internet, .*'weft\[twisted\]'$"
    ):
        open_runtime("twisted")


def test_many_runtimes_in_one_process_install_nothing_and_leak_nothing() -> None:
    """Runtimes one after another and two side by side, each on a reactor of its
    own, each run, stopped and run again: none installs twisted.internet.reactor,
    and closing them leaves no descriptor open (waker pipes, epoll, loops)."""
    installed = sys.modules.get("twisted.internet.reactor")
    with no_new_fds():
        for kind in REACTOR_KINDS:
            with TwistedRuntime(reactor=kind) as runtime:
                runtime.call_soon(runtime.stop)
                runtime.run()
                echoed, _server = connect_pair(runtime, RecordingProtocol(), EchoProtocol())
                echoed.transport.write(b"again")
                assert runtime.run_until(_received(echoed, b"again"), TIMEOUT)
        first, second = TwistedRuntime(), TwistedRuntime(reactor="asyncio")
        try:
            listener = first.listen_tcp(EchoProtocol)
            client = RecordingProtocol()
            connecting = second.connect_tcp(lambda: client, "127.0.0.1", listener.port)
            # Two reactors, one thread: turn them in alternation.
            for _ in range(2000):
                first.run_until(lambda: False, 0.001)
                second.run_until(lambda: False, 0.001)
                if connecting.done():
                    break
            connecting.result().write(b"across reactors")
            for _ in range(2000):
                first.run_until(lambda: False, 0.001)
                if second.run_until(lambda: client.received == b"across reactors", 0.001):
                    break
            assert client.received == b"across reactors"
        finally:
            first.close()
            second.close()
    assert sys.modules.get("twisted.internet.reactor") is installed


def test_stop_from_another_thread_ends_run() -> None:
    """stop() from another thread wakes the reactor and ends run(), which can run again."""
    with TwistedRuntime() as runtime:
        started = threading.Event()
        runtime.call_soon(started.set)

        def stop_once_running() -> None:
            if started.wait(TIMEOUT):
                runtime.stop()

        stopper = threading.Thread(target=stop_once_running)
        stopper.start()
        runtime.run()
        stopper.join(TIMEOUT)
        assert started.is_set()
        assert runtime.run_until(lambda: True, TIMEOUT)


@pytest.mark.parametrize("kind", [kind for kind in REACTOR_KINDS if kind != "epoll"])
@pytest.mark.parametrize("carrier", ["tcp", "pipes"])
def test_every_reactor_kind_passes_the_conformance_suite(kind: str, carrier: str) -> None:
    """The whole shipped suite on Twisted's poll, select and asyncio reactors (the
    epoll one, the registry's, runs in tests/conformance), over TCP and pipes."""
    check_transport(RuntimeHarness(lambda: TwistedRuntime(reactor=kind), carrier, name=f"twisted-{kind}"))


def test_datagrams_on_twisteds_asyncio_reactor() -> None:
    """The datagram checks on Twisted's asyncio reactor too."""
    check_datagrams(DatagramRuntimeHarness(lambda: TwistedRuntime(reactor="asyncio")))


def test_an_unknown_reactor_kind_is_refused() -> None:
    """A reactor kind nobody knows raises ArgumentError, naming the kinds there are."""
    with pytest.raises(ArgumentError, match="choose from default, epoll, poll, select, asyncio"):
        TwistedRuntime(reactor="gtk")


class TwistedPing(TwistedProtocol):
    """A Twisted client: sends ping, stops the reactor when the echo is back."""

    factory: Any

    def connectionMade(self) -> None:
        self.received = b""
        transport: Any = self.transport
        transport.write(b"ping")

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.received == b"ping":
            self.factory.answered.append(self.received)
            self.factory.reactor.stop()


@pytest.fixture
def program_reactor() -> Iterator[Any]:
    """A reactor a Twisted program runs (not the runtime), released afterwards."""
    reactor = new_reactor("select")
    yield reactor
    release(reactor)


def test_protocols_ride_on_a_reactor_a_twisted_program_runs(program_reactor: Any) -> None:
    """TwistedRuntime(reactor=...) on a reactor its program runs with reactor.run():
    weft's echo serves a Twisted client there, run() refuses (the program
    runs the reactor), and close() leaves the reactor to its program."""
    reactor = program_reactor
    runtime = TwistedRuntime(reactor=reactor)
    listener = runtime.listen_tcp(EchoProtocol)
    factory = ClientFactory.forProtocol(TwistedPing)
    factory.answered = []  # type: ignore[attr-defined]
    factory.reactor = reactor  # type: ignore[attr-defined]
    refusals: list[BaseException] = []

    def start() -> None:
        try:
            runtime.run_until(lambda: True, 0)
            runtime.run()
        except RuntimeError as exc:
            refusals.append(exc)
        reactor.connectTCP("127.0.0.1", listener.port, factory)

    reactor.callWhenRunning(start)
    timeout = reactor.callLater(TIMEOUT, reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert timeout.active(), "the Twisted client got no echo"
    timeout.cancel()
    assert factory.answered == [b"ping"]  # type: ignore[attr-defined]
    assert len(refusals) == 1
    assert "a Twisted program runs it" in str(refusals[0])
    runtime.close()
    assert reactor.waker is not None  # not released: the program's
    with pytest.raises(ClosedResourceError):
        runtime.listen_tcp(EchoProtocol)


def test_a_peer_reset_reaches_connection_lost_as_connection_reset_error() -> None:
    """Over a real socket: a peer that resets (SO_LINGER 0) ends the connection with
    ConnectionResetError, and an abort() resets its peer."""
    with TwistedRuntime() as runtime:
        server = FlowRecorder()
        listener = runtime.listen_tcp(lambda: server)
        with socket.create_connection(("127.0.0.1", listener.port), timeout=TIMEOUT) as peer:
            assert runtime.run_until(lambda: server.made, TIMEOUT)
            server.transport.abort()
            assert runtime.run_until(lambda: server.lost, TIMEOUT)
            with pytest.raises(ConnectionResetError):
                peer.recv(10)
        other = FlowRecorder()
        listener = runtime.listen_tcp(lambda: other)
        peer = socket.create_connection(("127.0.0.1", listener.port), timeout=TIMEOUT)
        assert runtime.run_until(lambda: other.made, TIMEOUT)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.close()
        assert runtime.run_until(lambda: other.lost, TIMEOUT)
        assert isinstance(other.lost_exc, ConnectionResetError)


def test_one_connections_failure_leaves_the_others_alone() -> None:
    """A protocol raising in data_received ends its own connection only: another
    connection on the same reactor goes on echoing."""
    with TwistedRuntime() as runtime:
        listener = runtime.listen_tcp(EchoProtocol)
        bad, good = Explodes(), RecordingProtocol()
        for protocol in (bad, good):
            connecting = runtime.connect_tcp(_returning(protocol), "127.0.0.1", listener.port)
            assert runtime.run_until(connecting.done, TIMEOUT)
        good.transport.write(b"first")
        bad.transport.write(b"boom")
        assert runtime.run_until(lambda: bad.lost and good.received == b"first", TIMEOUT)
        good.transport.write(b" second")
        assert runtime.run_until(lambda: good.received == b"first second", TIMEOUT)
        assert not good.lost
        assert isinstance(bad.lost_exc, ValueError)


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listener's accept queue is full: the kernel drops further SYNs."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for sock in [full, *fillers]:
            sock.close()


def test_connect_errors_are_weft_errors_and_the_timeout_is_on_the_runtimes_clock(
    unanswered_port: int, tmp_path: Path
) -> None:
    """A refused connect is ConnectionRefusedError naming the address (from the
    errno Twisted reports); a missing UNIX socket FileNotFoundError naming the
    path; one nobody answers TimeoutError once the runtime's clock (here a
    task.Clock) passes the timeout, with Twisted's connector stopped; one
    under way when the runtime closes, ClosedResourceError."""
    clock = task.Clock()
    runtime = TwistedRuntime(clock=clock)
    try:
        with socket.socket() as vacant:
            vacant.bind(("127.0.0.1", 0))
            refused_port = vacant.getsockname()[1]
        refused = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", refused_port)
        missing = runtime.connect_unix(RecordingProtocol, str(tmp_path / "nobody.sock"))
        assert runtime.run_until(lambda: refused.done() and missing.done(), TIMEOUT)
        assert isinstance(refused.exception(), ConnectionRefusedError)
        assert f"127.0.0.1:{refused_port}" in str(refused.exception())
        assert isinstance(missing.exception(), FileNotFoundError)
        assert "nobody.sock" in str(missing.exception())

        silent = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", unanswered_port, timeout=30)
        assert not runtime.run_until(silent.done, 0.2)
        clock.advance(30)
        assert runtime.run_until(silent.done, TIMEOUT)
        error = silent.exception()
        assert isinstance(error, TimeoutError)
        assert f"cannot connect to 127.0.0.1:{unanswered_port}: no answer in 30 s" in str(error)
        assert runtime.reactor.getWriters() == []  # the connector was stopped

        pending = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", unanswered_port)
    finally:
        runtime.close()
    assert isinstance(pending.exception(), ClosedResourceError)
