"""The asyncio driver: what the conformance suite does not cover.

The runtime itself (clock, running and stopping, closing, signals), the
registry, connecting and listening, pipes, a weft server inside an asyncio
program, and the places where the adapter changes asyncio's behaviour.
Every network test is on loopback; every wait is a bounded ``run_until``.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import logging
import os
import random
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from weft.drivers import DRIVERS, Future, Listener, Runtime, UnavailableDriverError, open_runtime
from weft.drivers.asyncio import AsyncioListener, AsyncioRuntime, AsyncioTransport
from weft.drivers.asyncio._clock import LoopTimers
from weft.drivers.testing import RecordingProtocol
from weft.drivers.testing.conformance import ALL_CHECKS, RuntimeHarness, Verdict, run_check
from weft.protocols import EchoProtocol
from weft.protocols.contract import Clock, Transport, clock_of
from weft.protocols.errors import ArgumentError, ClosedResourceError
from weft.protocols.pubsub import PubSubClientProtocol, PubSubHub, PubSubServerProtocol

#: This file tests the asyncio adapter, on its two loops: chosen by name.
pytestmark = pytest.mark.drivers(only=("asyncio", "uvloop"))
KIB = 1024


@pytest.fixture
def runtime(driver: str) -> Iterator[AsyncioRuntime]:
    """A runtime on asyncio's default loop, then one on uvloop."""
    made = open_runtime(driver)
    if not isinstance(made, AsyncioRuntime):
        made.close()
        raise TypeError(f"the {driver} driver is no AsyncioRuntime: this file tests the adapter")
    yield made
    made.close()


def run(runtime: AsyncioRuntime, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    assert runtime.run_until(condition, timeout), "timed out"


def connected(runtime: AsyncioRuntime, server: Any, client: Any) -> tuple[AsyncioListener, Future[Transport]]:
    """``server`` and ``client`` over TCP on ``runtime``, both made."""
    listener = runtime.listen_tcp(lambda: server)
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    run(
        runtime,
        lambda: connecting.done() and "connection_made" in getattr(server, "names", ["connection_made"]),
    )
    connecting.result()
    return listener, connecting


def factory_of(protocol: RecordingProtocol) -> Callable[[], RecordingProtocol]:
    return lambda: protocol


def unused_port() -> tuple[socket.socket, int]:
    """A bound socket that does not listen: connecting to its port is refused."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    return holder, holder.getsockname()[1]


class RecordingEcho(RecordingProtocol):
    """Echoes what it receives, and records everything, as RecordingProtocol does."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.transport.write(data)


class Collecting(logging.Handler):
    """Keeps the records weft logs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def exceptions(self) -> list[BaseException]:
        return [r.exc_info[1] for r in self.records if r.exc_info and r.exc_info[1] is not None]


@pytest.fixture
def weft_log() -> Iterator[Collecting]:
    """The errors logged on the ``weft`` logger during the test."""
    handler = Collecting()
    logging.getLogger("weft").addHandler(handler)
    yield handler
    logging.getLogger("weft").removeHandler(handler)


def runtime_static_check(runtime: AsyncioRuntime, listener: AsyncioListener) -> Runtime:
    """Never run: mypy --strict checks that the asyncio runtime is a Runtime (and a
    Clock), its listener a Listener and its transports weft Transports."""
    _listener: Listener = listener
    _transport: Transport = runtime.connect_pipes(EchoProtocol, 0, 1)
    _clock: Clock = runtime
    return runtime


# --------------------------------------------------------------- registry


def test_the_registry_opens_asyncio_and_uvloop_runtimes() -> None:
    """open_runtime("asyncio") and open_runtime("uvloop") give AsyncioRuntimes named
    after their loop; uvloop needs the uvloop module, from the "uvloop" extra."""
    assert DRIVERS["asyncio"].requires == ()
    assert (DRIVERS["uvloop"].requires, DRIVERS["uvloop"].extra) == (("uvloop",), "uvloop")
    for name in ("asyncio", "uvloop"):
        if name == "uvloop":
            pytest.importorskip("uvloop")
        made = open_runtime(name)
        try:
            assert isinstance(made, AsyncioRuntime)
            assert made.name == name
            assert type(made.loop).__module__.startswith("uvloop") == (name == "uvloop")
        finally:
            made.close()


def test_without_uvloop_the_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where uvloop cannot be imported, the uvloop driver is unavailable and says
    which pip extra installs it."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "uvloop" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert not DRIVERS["uvloop"].available()
    with pytest.raises(UnavailableDriverError, match=r"pip install 'weft\[uvloop\]'"):
        open_runtime("uvloop")


# ---------------------------------------------------------------- running


def test_calls_run_soonest_first_and_in_order(runtime: AsyncioRuntime) -> None:
    """call_soon calls run in order before timers, and timers by deadline."""
    ran: list[str] = []
    runtime.call_later(0.02, ran.append, "late")
    runtime.call_soon(ran.append, "soon 1")
    runtime.call_later(0.01, ran.append, "early")
    runtime.call_soon(ran.append, "soon 2")
    run(runtime, lambda: len(ran) == 4)
    assert ran == ["soon 1", "soon 2", "early", "late"]


def test_run_stop_and_run_again(runtime: AsyncioRuntime) -> None:
    """run() returns after stop(), and the runtime can run again; a stop() made
    while not running is forgotten, as on the reactor (asyncio would end the
    next run at once)."""
    turns: list[int] = []
    for turn in range(2):
        runtime.call_later(0.001, turns.append, turn)
        runtime.call_later(0.002, runtime.stop)
        runtime.run()
        assert not runtime.running
    assert turns == [0, 1]
    runtime.stop()
    ticked: list[int] = []
    runtime.call_later(0.02, ticked.append, 1)
    assert runtime.run_until(lambda: bool(ticked), 5)


def test_stop_and_call_soon_threadsafe_from_another_thread(runtime: AsyncioRuntime) -> None:
    """Another thread can hand the loop a call (waking it from its sleep) and stop it."""
    ran: list[str] = []
    guard = runtime.call_later(10, ran.append, "guard: never woken")

    def elsewhere() -> None:
        runtime.call_soon_threadsafe(ran.append, "from the thread")
        runtime.stop()

    runtime.call_soon(threading.Thread(target=elsewhere).start)
    runtime.run()
    guard.cancel()
    assert ran == ["from the thread"]


def test_run_until_says_when_the_condition_never_held(runtime: AsyncioRuntime) -> None:
    """run_until returns False once its timeout passes, and True at once for a
    condition that already holds."""
    start = runtime.now()
    assert runtime.run_until(lambda: False, 0.05) is False
    assert runtime.now() - start >= 0.05
    assert runtime.run_until(lambda: True, 0) is True
    with pytest.raises(ArgumentError):
        runtime.run_until(lambda: False, float("nan"))


def test_signals_reach_the_loop_and_are_released_on_close(runtime: AsyncioRuntime) -> None:
    """A handler set with add_signal_handler runs in the loop when the signal comes:
    one that came while the runtime was stopped (uvloop's own handlers lose
    it), and one that wakes the loop from its sleep.  close() gives the
    signal back to the handler it had."""
    got: list[str] = []
    runtime.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
    os.kill(os.getpid(), signal.SIGUSR1)
    run(runtime, lambda: got == ["usr1"])

    guard = runtime.call_later(10, runtime.stop)
    runtime.add_signal_handler(signal.SIGUSR2, runtime.stop)
    idle = threading.Event()

    def kill_once_idle() -> None:
        # The loop has run its last callback and has nothing to do for 10 s;
        # the pause lets it reach its poll, so the signal has to wake it.
        # (Correct code passes however long the pause; it only makes a
        # broken wake-up show.)
        idle.wait(10)
        threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGUSR2)

    kill = threading.Thread(target=kill_once_idle)
    kill.start()
    runtime.call_soon(idle.set)
    runtime.run()
    kill.join()
    assert not guard.cancelled()
    assert runtime.now() < guard.when(), "the signal did not wake the loop"
    guard.cancel()
    assert not runtime.remove_signal_handler(signal.SIGHUP)
    runtime.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_the_loops_own_signal_handlers_keep_working_beside_the_runtimes() -> None:
    """On a loop the program also uses itself, a handler the program set with
    the loop's own add_signal_handler still runs after the runtime sets one:
    the runtime leaves the loop's wake-up fd, which the loop reads its signals from."""
    loop = asyncio.new_event_loop()
    runtime = AsyncioRuntime(loop)
    got: list[str] = []
    try:
        loop.add_signal_handler(signal.SIGUSR2, got.append, "the loop's")
        runtime.add_signal_handler(signal.SIGUSR1, got.append, "the runtime's")
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR1)
        run(runtime, lambda: sorted(got) == ["the loop's", "the runtime's"])
    finally:
        runtime.close()
        loop.remove_signal_handler(signal.SIGUSR2)
        loop.close()


def test_close_releases_everything_it_made(runtime: AsyncioRuntime) -> None:
    """close() aborts open connections (connection_lost follows), closes listeners,
    fails connects still pending, and closes the loop it made; afterwards the
    runtime refuses work."""
    server, client = RecordingProtocol(), RecordingProtocol()
    listener, _ = connected(runtime, server, client)
    pending = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", listener.port)
    runtime.close()
    assert server.lost
    assert client.lost
    assert listener.closed
    assert isinstance(pending.exception(), ClosedResourceError)
    assert runtime.loop.is_closed()
    with pytest.raises(ClosedResourceError):
        runtime.listen_tcp(EchoProtocol)
    with pytest.raises(ClosedResourceError):
        runtime.run()
    runtime.close()  # harmless


def test_close_refuses_while_running(runtime: AsyncioRuntime) -> None:
    """close() from inside run() raises RuntimeError, and the runtime stays usable."""
    caught: list[BaseException] = []

    def close_now() -> None:
        try:
            runtime.close()
        except RuntimeError as exc:
            caught.append(exc)

    runtime.call_soon(close_now)
    run(runtime, lambda: bool(caught))
    assert not runtime.loop.is_closed()


def test_a_given_loop_is_left_open_unless_asked() -> None:
    """A runtime on a loop it was given never closes it, unless close_loop=True."""
    loop = asyncio.new_event_loop()
    AsyncioRuntime(loop).close()
    assert not loop.is_closed()
    AsyncioRuntime(loop, close_loop=True).close()
    assert loop.is_closed()


# ------------------------------------------------------------------ clock


def test_timers_due_together_run_in_scheduling_order() -> None:
    """weft's timers on asyncio keep weft's order: earlier deadlines first, equal
    deadlines in scheduling order (asyncio's heap does not promise that)."""
    runtime = AsyncioRuntime()
    now = [100.0]
    timers = LoopTimers(runtime.loop, monotonic=lambda: now[0])
    ran: list[str] = []
    for name in "abcdefgh":
        timers.call_later(0.01, ran.append, name)
    timers.call_later(0.005, ran.append, "first")
    timers.call_later(-1, ran.append, "negative counts as zero")
    now[0] = 100.02
    run(runtime, lambda: len(ran) == 10)
    assert ran == ["negative counts as zero", "first", *"abcdefgh"]
    with pytest.raises(ArgumentError):
        timers.call_later(float("nan"), ran.append, "never")
    runtime.close()


def test_a_timer_never_runs_early(runtime: AsyncioRuntime) -> None:
    """However the loop rounds its timers (uvloop: to milliseconds), a call runs
    once its full delay has passed on the runtime's clock."""
    lateness: list[float] = []
    delays = [0.0004, 0.0015, 0.0049, 0.0104, 0.02] * 4

    def record(due: float) -> None:
        lateness.append(runtime.now() - due)

    for delay in delays:
        runtime.call_later(delay, record, runtime.now() + delay)
    run(runtime, lambda: len(lateness) == len(delays))
    assert min(lateness) >= 0


def test_a_raising_timer_goes_to_the_loops_exception_handler(runtime: AsyncioRuntime) -> None:
    """A runtime timer that raises is reported to the loop's exception handler (the
    asyncio way) and the timers due with it still run."""
    reported: list[dict[str, Any]] = []
    runtime.loop.set_exception_handler(lambda _loop, context: reported.append(context))
    ran: list[str] = []

    def boom() -> None:
        raise ValueError("boom")

    runtime.call_later(0, boom)
    runtime.call_later(0, ran.append, "still runs")
    run(runtime, lambda: bool(ran) and bool(reported))
    assert isinstance(reported[0]["exception"], ValueError)


def test_a_transport_offers_the_runtimes_clock(runtime: AsyncioRuntime) -> None:
    """The clock a transport offers tells the runtime's time and runs calls."""
    server, client = RecordingProtocol(), RecordingProtocol()
    connected(runtime, server, client)
    clock = clock_of(client.transport)
    assert abs(clock.now() - runtime.now()) < 1
    ran: list[float] = []
    start = clock.now()
    clock.call_later(0.01, lambda: ran.append(clock.now()))
    run(runtime, lambda: bool(ran))
    assert ran[0] - start >= 0.01


# ------------------------------------------------------------- connecting


def test_a_refused_connection_names_the_address(runtime: AsyncioRuntime) -> None:
    """Connecting to a port nobody listens on fails the future with
    ConnectionRefusedError, the address in its message."""
    holder, port = unused_port()
    with holder:
        connecting = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", port)
        run(runtime, connecting.done)
    error = connecting.exception()
    assert isinstance(error, ConnectionRefusedError)
    assert f"127.0.0.1:{port}" in str(error)


def test_a_connect_nobody_answers_times_out(runtime: AsyncioRuntime) -> None:
    """A connect the peer never completes (its accept queue is full, so the kernel
    drops the SYN) fails with TimeoutError once the timeout passes."""
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
        connecting = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", port, timeout=0.2)
        run(runtime, connecting.done)
    finally:
        for sock in [full, *fillers]:
            sock.close()
    error = connecting.exception()
    assert isinstance(error, TimeoutError)
    assert error.errno == errno.ETIMEDOUT
    assert f"cannot connect to 127.0.0.1:{port}: no answer in 0.2 s" in str(error)


def test_a_missing_unix_socket_names_its_path(runtime: AsyncioRuntime, tmp_path: Path) -> None:
    """Connecting to a UNIX-domain path where nothing is fails with FileNotFoundError
    naming the path; a NaN timeout is refused at once."""
    path = str(tmp_path / "nobody")
    connecting = runtime.connect_unix(RecordingProtocol, path)
    run(runtime, connecting.done)
    assert isinstance(connecting.exception(), FileNotFoundError)
    assert path in str(connecting.exception())
    with pytest.raises(ArgumentError):
        runtime.connect_unix(RecordingProtocol, path, timeout=float("nan"))


def test_a_factory_that_raises_fails_the_connect(runtime: AsyncioRuntime) -> None:
    """A protocol factory that raises when the connection is made fails the future
    with its exception; the connection is closed, and the server sees it end."""
    server = RecordingProtocol()
    listener = runtime.listen_tcp(lambda: server)

    def factory() -> RecordingProtocol:
        raise LookupError("no protocol for you")

    connecting = runtime.connect_tcp(factory, "127.0.0.1", listener.port)
    run(runtime, lambda: connecting.done() and server.lost)
    assert isinstance(connecting.exception(), LookupError)
    assert runtime._connections == set()


# --------------------------------------------------------------- listening


def test_a_listener_keeps_its_addresses_and_live_connections(runtime: AsyncioRuntime) -> None:
    """A listener reports what it is bound to and the transports of its open
    connections; closing it stops new connections and leaves open ones alone."""
    servers: list[RecordingProtocol] = []

    def factory() -> RecordingProtocol:
        servers.append(RecordingProtocol())
        return servers[-1]

    listener = runtime.listen_tcp(factory, "127.0.0.1", 0)
    assert listener.addresses == [("127.0.0.1", listener.port)]
    clients = [RecordingProtocol(), RecordingProtocol()]
    for client in clients:
        runtime.connect_tcp(factory_of(client), "127.0.0.1", listener.port)
    # Both ends: the server may accept before the client's connect completes
    # (asyncio's Happy Eyeballs takes a few more turns of the loop).
    run(runtime, lambda: len(listener.connections) == 2 and all(hasattr(c, "transport") for c in clients))
    assert {transport.get_protocol() for transport in listener.connections} == set(servers)

    clients[0].transport.close()
    run(runtime, lambda: len(listener.connections) == 1)
    listener.close()
    late = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", listener.port)
    run(runtime, late.done)
    assert isinstance(late.exception(), ConnectionRefusedError)
    clients[1].transport.write(b"still here")
    # Whichever server end is clients[1]'s: the two connects race (weft's
    # Happy Eyeballs on uvloop runs each in a task), so accept order need
    # not be connect order.
    run(runtime, lambda: [server.received for server in servers].count(b"still here") == 1)
    assert listener.addresses == [("127.0.0.1", listener.port)]


def test_a_port_in_use_raises_at_once(runtime: AsyncioRuntime) -> None:
    """Listening on a port already taken raises OSError(EADDRINUSE) from the call itself."""
    first = runtime.listen_tcp(EchoProtocol)
    with pytest.raises(OSError, match="in use") as caught:
        runtime.listen_tcp(EchoProtocol, "127.0.0.1", first.port)
    assert caught.value.errno == errno.EADDRINUSE


def test_every_interface_shares_one_port(runtime: AsyncioRuntime) -> None:
    """host None listens on every interface, on the same port for each family."""
    listener = runtime.listen_tcp(EchoProtocol, None, 0)
    assert listener.addresses
    assert {address[1] for address in listener.addresses} == {listener.port}
    client = RecordingProtocol()
    runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    run(runtime, lambda: client.made)
    listener.close()


def test_unix_listeners_replace_stale_files_and_remove_their_own(runtime: AsyncioRuntime) -> None:
    """A socket file left by a dead server is replaced; the listener's file is
    removed when it closes; a file that is not a socket is never overwritten."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "s")
        dead = socket.socket(socket.AF_UNIX)
        dead.bind(path)
        dead.close()
        listener = runtime.listen_unix(EchoProtocol, path)
        assert listener.addresses == [path]
        client = RecordingProtocol()
        runtime.connect_unix(lambda: client, path)
        run(runtime, lambda: client.made)
        client.transport.write(b"echo")
        run(runtime, lambda: client.received == b"echo")
        listener.close()
        assert not os.path.exists(path)
        Path(path).write_text("precious")
        with pytest.raises(FileExistsError):
            runtime.listen_unix(EchoProtocol, path)
        assert Path(path).read_text() == "precious"


# ------------------------------------------------- a weft server with asyncio


def test_a_pubsub_server_serves_weft_and_asyncio_clients(runtime: AsyncioRuntime) -> None:
    """weft's pub/sub server on asyncio: a weft client subscribes, a coroutine
    using asyncio's streams publishes on the same loop, and the message arrives."""
    hub = PubSubHub()
    listener = runtime.listen_tcp(lambda: PubSubServerProtocol(hub))
    messages: list[tuple[bytes, bytes]] = []
    subscriber = PubSubClientProtocol(on_message=lambda topic, message: messages.append((topic, message)))
    runtime.connect_tcp(lambda: subscriber, "127.0.0.1", listener.port)
    run(runtime, lambda: hasattr(subscriber, "transport"))
    subscriber.subscribe(b"news")
    run(runtime, lambda: not subscriber.pending)

    async def publish() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"PUB news hello from asyncio\n")
        reply = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return reply

    publishing = runtime.loop.create_task(publish())
    run(runtime, lambda: publishing.done() and bool(messages))
    assert publishing.result() == b"OK 1\r\n"
    assert messages == [(b"news", b"hello from asyncio")]


def test_weft_serves_inside_an_asyncio_program(runtime: AsyncioRuntime) -> None:
    """Inside a running asyncio program, a runtime on its loop serves weft protocols
    while coroutines run; a weft connect can be awaited; stop() leaves the
    program's loop alone, run() refuses it, and close() does not close it."""
    kind = runtime.name
    runtime.close()

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        weft = AsyncioRuntime(loop)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.create_task(ticker())
        listener = weft.listen_tcp(EchoProtocol)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"round trip")
        echoed = await asyncio.wait_for(reader.readexactly(10), 10)
        client = RecordingProtocol()
        transport = await asyncio.wait_for(
            weft.wrap_future(weft.connect_tcp(lambda: client, "127.0.0.1", listener.port)), 10
        )
        refused_holder, refused_port = unused_port()
        with refused_holder, pytest.raises(ConnectionRefusedError):
            await weft.wrap_future(weft.connect_tcp(RecordingProtocol, "127.0.0.1", refused_port))
        weft.stop()  # not weft's loop to stop
        with pytest.raises(RuntimeError):
            weft.run()
        writer.close()
        await writer.wait_closed()
        listener.close()
        weft.close()  # aborts the weft client, leaves the loop
        await asyncio.sleep(0.01)
        ticking.cancel()
        return {
            "echoed": echoed,
            "ticks": ticks,
            "same transport": transport is client.transport,
            "client lost": client.lost,
            "loop open": not loop.is_closed(),
        }

    if kind == "uvloop":
        import uvloop

        result = uvloop.run(main())
    else:
        result = asyncio.run(main())
    assert result["echoed"] == b"round trip"
    assert result["ticks"] > 0
    assert result["same transport"]
    assert result["client lost"]
    assert result["loop open"]


# ------------------------------------------- where the adapter changes asyncio


def test_a_pause_made_in_connection_made_holds(runtime: AsyncioRuntime) -> None:
    """A protocol that pauses reading inside connection_made gets nothing until it
    resumes (asyncio and uvloop start reading after connection_made anyway),
    so its peer's writes back up until the peer is told to pause."""

    class PausesAtOnce(RecordingProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.pause_reading()

    server, client = PausesAtOnce(), RecordingProtocol()
    connected(runtime, server, client)
    chunk = bytes(64 * KIB)
    sent = 0

    def client_paused() -> bool:
        nonlocal sent
        if not client.writing_paused:
            client.transport.write(chunk)
            sent += len(chunk)
        return client.writing_paused

    run(runtime, client_paused)
    assert server.received == b""
    assert not server.transport.is_reading()
    server.transport.resume_reading()
    run(runtime, lambda: len(server.received) == sent)
    assert server.received == bytes(sent)


def test_abort_resets_a_tcp_peer(runtime: AsyncioRuntime) -> None:
    """abort() sends a TCP reset, as on the reactor: a peer that only reads sees
    ConnectionResetError, not an EOF (asyncio's own abort sends a FIN)."""
    server, client = RecordingProtocol(keep_open_on_eof=True), RecordingProtocol()
    connected(runtime, server, client)
    client.transport.abort()
    run(runtime, lambda: server.lost)
    assert not server.got_eof
    assert isinstance(server.lost_exc, ConnectionResetError)


def test_eof_received_returning_false_closes_the_transport_at_once(runtime: AsyncioRuntime) -> None:
    """When eof_received returns a false value, the transport is closing as soon as
    it returns (so later writes are discarded, not left to asyncio)."""
    closing_after_eof: list[bool] = []

    class Watches(RecordingProtocol):
        def eof_received(self) -> bool:
            runtime.call_soon(lambda: closing_after_eof.append(self.transport.is_closing()))
            return super().eof_received()

    server, client = Watches(), RecordingProtocol()
    connected(runtime, server, client)
    client.transport.write_eof()
    run(runtime, lambda: bool(closing_after_eof) and server.lost)
    assert closing_after_eof == [True]


def test_a_written_bytearray_is_copied(runtime: AsyncioRuntime) -> None:
    """Changing a bytearray after writing it does not change what is sent: not a
    small one (uvloop sends those at the end of the loop's turn), nor a big one
    that waits in the buffer behind a peer that does not read (asyncio 3.12 on
    keeps a view of it)."""
    server, client = RecordingProtocol(), RecordingProtocol()
    connected(runtime, server, client)
    server.transport.pause_reading()
    sizes = (KIB, 16 * 1024 * KIB)
    for size in sizes:
        data = bytearray(b"a" * size)
        client.transport.write(data)
        data[:] = b"b" * size
    server.transport.resume_reading()
    run(runtime, lambda: len(server.received) >= sum(sizes))
    assert server.received == b"a" * sum(sizes)


# --------------------------------------------------- exceptions in callbacks


def test_an_exception_ends_only_its_own_connection(runtime: AsyncioRuntime, weft_log: Collecting) -> None:
    """A protocol whose data_received raises is logged and its connection ends with
    that exception (its TCP peer is reset); another connection on the same
    runtime goes on echoing."""

    class Explodes(EchoProtocol):
        def data_received(self, data: bytes) -> None:
            if data == b"boom":
                raise ValueError("boom")
            super().data_received(data)

    lost: list[BaseException | None] = []

    class Recorded(Explodes):
        def connection_lost(self, exc: BaseException | None) -> None:
            lost.append(exc)

    listener = runtime.listen_tcp(Recorded)
    victim, bystander = RecordingProtocol(), RecordingProtocol()
    for client in (victim, bystander):
        runtime.connect_tcp(factory_of(client), "127.0.0.1", listener.port)
    run(runtime, lambda: victim.made and bystander.made and len(listener.connections) == 2)
    victim.transport.write(b"boom")
    run(runtime, lambda: victim.lost and bool(lost))
    assert isinstance(lost[0], ValueError)
    assert any(exc is lost[0] for exc in weft_log.exceptions())
    assert isinstance(victim.lost_exc, ConnectionResetError)
    bystander.transport.write(b"still echoing")
    run(runtime, lambda: bystander.received == b"still echoing")
    assert len(listener.connections) == 1


@pytest.mark.parametrize("callback", ["connection_made", "eof_received", "pause_writing", "timer"])
def test_every_callback_that_raises_ends_its_connection(
    runtime: AsyncioRuntime, weft_log: Collecting, callback: str
) -> None:
    """Whichever protocol callback raises (asyncio would only log one from
    connection_made, pause_writing or a timer) ends that connection with the
    exception, logged."""
    error = RuntimeError(f"raised in {callback}")

    class Raises(RecordingProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if callback == "connection_made":
                raise error
            if callback == "timer":
                clock_of(transport).call_later(0, self.explode)
            if callback == "pause_writing":
                transport.set_write_buffer_limits(high=0)
                transport.write(bytes(16 * 1024 * KIB))  # more than the kernel takes at once

        def eof_received(self) -> bool:
            super().eof_received()
            if callback == "eof_received":
                raise error
            return False

        def pause_writing(self) -> None:
            super().pause_writing()
            if callback == "pause_writing":
                raise error

        def explode(self) -> None:
            raise error

    server, client = Raises(), RecordingProtocol()
    listener = runtime.listen_tcp(lambda: server)
    runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    run(runtime, lambda: client.made)
    if callback == "eof_received":
        client.transport.write_eof()
    run(runtime, lambda: server.lost and client.lost)
    assert server.lost_exc is error
    assert server.count("connection_lost") == 1
    assert any(exc is error for exc in weft_log.exceptions())


def test_a_raising_connection_lost_is_logged_and_forgotten(
    runtime: AsyncioRuntime, weft_log: Collecting
) -> None:
    """An exception from connection_lost is logged; the listener still forgets the
    connection."""

    class RaisesAtTheEnd(RecordingProtocol):
        def connection_lost(self, exc: BaseException | None) -> None:
            super().connection_lost(exc)
            raise KeyError("at the end")

    server, client = RaisesAtTheEnd(), RecordingProtocol()
    listener, _ = connected(runtime, server, client)
    client.transport.close()
    run(runtime, lambda: server.lost and not listener.connections)
    assert any(isinstance(exc, KeyError) for exc in weft_log.exceptions())


def test_a_server_factory_that_raises_is_logged(runtime: AsyncioRuntime, weft_log: Collecting) -> None:
    """A listener whose protocol factory raises logs it and closes that connection."""

    def factory() -> RecordingProtocol:
        raise LookupError("no protocol")

    listener = runtime.listen_tcp(factory)
    client = RecordingProtocol()
    runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    run(runtime, lambda: client.lost)
    assert any(isinstance(exc, LookupError) for exc in weft_log.exceptions())
    assert not listener.connections


# ------------------------------------------------------------------- pipes


class PipePeer:
    """The far ends of two pipes: what the test writes to and reads from."""

    def __init__(self) -> None:
        self.read_fd, self.to_protocol = os.pipe()  # the protocol reads read_fd
        self.from_protocol, self.write_fd = os.pipe()  # and writes write_fd
        os.set_blocking(self.from_protocol, False)
        # Closed at the end of the test: never a number closed (and perhaps
        # reused) since.
        self.owned = {self.read_fd, self.to_protocol, self.from_protocol, self.write_fd}
        self.received = b""
        self.eof = False

    def hand_over(self) -> tuple[int, int]:
        """The protocol's two ends, for connect_pipes to close."""
        self.owned -= {self.read_fd, self.write_fd}
        return self.read_fd, self.write_fd

    def close_end(self, fd: int) -> None:
        """Close one of the test's own ends now."""
        self.owned.discard(fd)
        os.close(fd)

    def read(self) -> bool:
        """Take what the protocol wrote; return whether its EOF has come."""
        while not self.eof:
            try:
                data = os.read(self.from_protocol, 65536)
            except BlockingIOError:
                break
            if not data:
                self.eof = True
            self.received += data
        return self.eof

    def close(self) -> None:
        for fd in self.owned:
            os.close(fd)


@pytest.fixture
def pipes() -> Iterator[PipePeer]:
    """Two pipes; the test plays the far end of both."""
    peer = PipePeer()
    yield peer
    peer.close()


def is_closed(fd: int, inode: int) -> bool:
    """Whether ``fd`` no longer refers to the file it did (closed, or reused since)."""
    try:
        return os.fstat(fd).st_ino != inode
    except OSError:
        return True


def test_a_protocol_runs_over_a_pair_of_pipes(runtime: AsyncioRuntime, pipes: PipePeer) -> None:
    """One duplex transport over two pipes: data both ways, the peer's EOF reaches
    eof_received, the echo closes after flushing, and with close_fds both
    descriptors are closed at the end."""
    inodes = {fd: os.fstat(fd).st_ino for fd in (pipes.read_fd, pipes.write_fd)}
    lost: list[bool] = []

    class Echo(EchoProtocol):
        def connection_lost(self, exc: BaseException | None) -> None:
            lost.append(exc is None)

    transport = runtime.connect_pipes(Echo, *pipes.hand_over())
    assert transport.get_extra_info("pipe") == (pipes.read_fd, pipes.write_fd)
    os.write(pipes.to_protocol, b"over pipes")
    pipes.close_end(pipes.to_protocol)
    run(runtime, lambda: pipes.read() and bool(lost))
    assert pipes.received == b"over pipes"
    assert lost == [True]
    assert all(is_closed(fd, inode) for fd, inode in inodes.items())


def test_pipes_left_open_keep_their_blocking_mode(runtime: AsyncioRuntime, pipes: PipePeer) -> None:
    """With close_fds=False the descriptors stay open after the connection, back in
    the blocking mode they had (O_NONBLOCK belongs to the open file, which a
    terminal shares with the shell)."""
    os.set_blocking(pipes.write_fd, False)
    protocol = RecordingProtocol()
    transport = runtime.connect_pipes(lambda: protocol, pipes.read_fd, pipes.write_fd, close_fds=False)
    run(runtime, lambda: protocol.made)
    assert not os.get_blocking(pipes.read_fd)
    transport.close()
    run(runtime, lambda: protocol.lost)
    assert os.get_blocking(pipes.read_fd)
    assert not os.get_blocking(pipes.write_fd)
    os.write(pipes.write_fd, b"still open")
    assert os.read(pipes.from_protocol, 100) == b"still open"


def test_write_eof_on_kept_pipes_points_them_at_dev_null(runtime: AsyncioRuntime, pipes: PipePeer) -> None:
    """write_eof on a pipe the caller keeps (close_fds=False) still reaches the peer
    as EOF: the descriptor is pointed at /dev/null, so its number stays taken."""
    protocol = RecordingProtocol()
    transport = runtime.connect_pipes(lambda: protocol, pipes.read_fd, pipes.write_fd, close_fds=False)
    run(runtime, lambda: protocol.made)
    transport.write(b"last words")
    transport.write_eof()
    run(runtime, pipes.read)
    assert pipes.received == b"last words"
    assert os.path.realpath(f"/proc/self/fd/{pipes.write_fd}") == os.devnull
    transport.close()
    run(runtime, lambda: protocol.lost)


def test_write_eof_on_pipes_half_closes(runtime: AsyncioRuntime, pipes: PipePeer) -> None:
    """write_eof closes the write pipe after flushing (the peer reads EOF) while
    the protocol goes on reading."""

    class SaysByeFirst(RecordingProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.write(b"bye")
            transport.write_eof()

    protocol = SaysByeFirst()
    transport = runtime.connect_pipes(lambda: protocol, *pipes.hand_over())
    run(runtime, pipes.read)
    assert pipes.received == b"bye"
    assert transport.can_write_eof()
    os.write(pipes.to_protocol, b"more")
    run(runtime, lambda: protocol.received == b"more")
    assert not protocol.lost
    pipes.close_end(pipes.to_protocol)
    run(runtime, lambda: protocol.lost)
    assert protocol.lost_exc is None


def test_writes_before_connection_made_go_first(runtime: AsyncioRuntime, pipes: PipePeer) -> None:
    """connect_pipes returns before asyncio has set the pipes up; what is written
    to the transport meanwhile is sent before what connection_made writes."""

    class Greets(RecordingProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.write(b" then connection_made")
            transport.close()

    protocol = Greets()
    transport = runtime.connect_pipes(lambda: protocol, *pipes.hand_over())
    assert not protocol.made
    transport.write(b"first the caller")
    assert transport.get_write_buffer_size() == len(b"first the caller")
    run(runtime, lambda: pipes.read() and protocol.lost)
    assert pipes.received == b"first the caller then connection_made"


def test_a_vanished_pipe_reader_fails_the_next_write(runtime: AsyncioRuntime, pipes: PipePeer) -> None:
    """When the reader of the write pipe goes away, reading goes on (what the peer
    sent is still delivered); the next write ends the connection with
    BrokenPipeError, as on the reactor."""
    protocol = RecordingProtocol()
    runtime.connect_pipes(lambda: protocol, *pipes.hand_over())
    run(runtime, lambda: protocol.made)
    pipes.close_end(pipes.from_protocol)
    os.write(pipes.to_protocol, b"still heard")
    run(runtime, lambda: protocol.received == b"still heard")
    assert not protocol.lost
    protocol.transport.write(b"anyone?")
    run(runtime, lambda: protocol.lost)
    assert isinstance(protocol.lost_exc, BrokenPipeError)


def test_files_are_always_ready_pipes(runtime: AsyncioRuntime, tmp_path: Path) -> None:
    """Regular files, which no poller watches, work as pipes do on the reactor
    (asyncio's pipe transports refuse them): echo copies a file of many reads
    to another file, then ends cleanly and closes both."""
    data = random.Random(3).randbytes(300 * KIB)
    (tmp_path / "in").write_bytes(data)
    read_fd = os.open(tmp_path / "in", os.O_RDONLY)
    write_fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    protocol = RecordingEcho()
    runtime.connect_pipes(lambda: protocol, read_fd, write_fd)
    run(runtime, lambda: protocol.lost)
    assert protocol.lost_exc is None
    assert (tmp_path / "out").read_bytes() == data
    assert protocol.count("data_received") > 1


def test_dev_null_reads_as_an_immediate_eof(runtime: AsyncioRuntime) -> None:
    """/dev/null (which epoll refuses) as input is an EOF at once; as output it
    takes everything."""
    read_fd = os.open(os.devnull, os.O_RDONLY)
    write_fd = os.open(os.devnull, os.O_WRONLY)
    protocol = RecordingProtocol(keep_open_on_eof=True)
    transport = runtime.connect_pipes(lambda: protocol, read_fd, write_fd)
    run(runtime, lambda: protocol.got_eof)
    transport.write(b"into the void")
    assert transport.get_write_buffer_size() == 0
    transport.close()
    run(runtime, lambda: protocol.lost)
    assert protocol.names == ["connection_made", "eof_received", "connection_lost"]


def test_a_paused_file_reader_delivers_nothing(runtime: AsyncioRuntime, tmp_path: Path) -> None:
    """A protocol that pauses after each chunk of a file gets nothing more until
    it resumes (a timer later), and in the end all of it, in order."""
    data = random.Random(4).randbytes(200 * KIB)
    (tmp_path / "in").write_bytes(data)
    read_fd = os.open(tmp_path / "in", os.O_RDONLY)
    null = os.open(os.devnull, os.O_WRONLY)

    early: list[bytes] = []

    class OneChunkAtATime(RecordingProtocol):
        paused = False

        def data_received(self, data: bytes) -> None:
            if self.paused:
                early.append(data)
            super().data_received(data)
            self.paused = True
            self.transport.pause_reading()
            clock_of(self.transport).call_later(0.001, self.resume)

        def resume(self) -> None:
            self.paused = False
            self.transport.resume_reading()

    protocol = OneChunkAtATime(keep_open_on_eof=True)
    runtime.connect_pipes(lambda: protocol, read_fd, null)
    run(runtime, lambda: protocol.got_eof)
    assert early == []
    assert protocol.received == data
    assert protocol.count("data_received") > 1
    protocol.transport.close()
    run(runtime, lambda: protocol.lost)


def test_what_cannot_stream_is_refused_at_once(runtime: AsyncioRuntime, tmp_path: Path) -> None:
    """A directory is an ArgumentError (a ValueError) from connect_pipes itself, and
    a socket may be written to only as the socket that is read."""
    directory = os.open(tmp_path, os.O_RDONLY)
    read_end, write_end = os.pipe()
    ours, theirs = socket.socketpair()
    try:
        with pytest.raises(ArgumentError, match="directory"):
            runtime.connect_pipes(RecordingProtocol, directory, write_end)
        with pytest.raises(ArgumentError, match="same socket"):
            runtime.connect_pipes(RecordingProtocol, read_end, ours.fileno())
    finally:
        for fd in (directory, read_end, write_end):
            os.close(fd)
        ours.close()
        theirs.close()


def test_a_socket_as_both_descriptors_runs_as_a_socket(runtime: AsyncioRuntime) -> None:
    """stdio that is a socket (inetd style) works both ways, half-close included
    (asyncio's write pipe would take the peer's data for a hang-up)."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    got = bytearray()
    try:
        protocol = RecordingProtocol()
        transport = runtime.connect_pipes(lambda: protocol, ours.fileno(), ours.fileno(), close_fds=False)
        run(runtime, lambda: protocol.made)
        theirs.sendall(b"ping")
        run(runtime, lambda: protocol.received == b"ping")
        transport.write(b"pong")
        transport.write_eof()

        def read_all() -> bool:
            try:
                data = theirs.recv(100)
            except BlockingIOError:
                return False
            got.extend(data)
            return not data

        run(runtime, read_all)
        assert bytes(got) == b"pong"
        theirs.shutdown(socket.SHUT_WR)
        run(runtime, lambda: protocol.lost)
        assert protocol.lost_exc is None
        assert os.get_blocking(ours.fileno())
    finally:
        ours.close()
        theirs.close()


def test_a_single_descriptor_cannot_half_close(runtime: AsyncioRuntime) -> None:
    """One descriptor for both directions (a PTY) reads and writes, but cannot
    half-close: write_eof raises NotImplementedError, as on the reactor."""
    master, replica = os.openpty()
    try:
        protocol = RecordingProtocol()
        transport = runtime.connect_pipes(lambda: protocol, master, master)
        run(runtime, lambda: protocol.made)
        assert not transport.can_write_eof()
        with pytest.raises(NotImplementedError):
            transport.write_eof()
        transport.close()
        run(runtime, lambda: protocol.lost)
    finally:
        os.close(replica)


def test_transports_are_weft_transports(runtime: AsyncioRuntime) -> None:
    """What protocols get is weft's adapter, never asyncio's own transport."""
    server, client = RecordingProtocol(), RecordingProtocol()
    connected(runtime, server, client)
    for protocol in (server, client):
        assert isinstance(protocol.transport, AsyncioTransport)
        assert protocol.transport.get_extra_info("socket") is not None


#: The checks whose endings asyncio's own transports would run twice if asked
#: to close what is already ending (a protocol raising in resume_writing
#: mid-flush; write_eof on a write pipe with nothing buffered, then an end).
ENDINGS_ASYNCIO_RUNS_TWICE = (
    "an_exception_from_resume_writing_ends_that_connection_with_it",
    "write_after_write_eof_raises_write_after_eof_error",
    "abort_empties_the_write_buffer_at_once",
)


@pytest.mark.parametrize("carrier", ["tcp", "pipes"])
def test_asyncio_is_never_asked_to_end_a_connection_twice(
    carrier: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Those endings leave asyncio quiet: no "Exception in callback
    _call_connection_lost" from a transport asyncio had already torn down."""
    harness = RuntimeHarness("asyncio", carrier)
    checks = [check for check in ALL_CHECKS if check.name in ENDINGS_ASYNCIO_RUNS_TWICE]
    assert len(checks) == len(ENDINGS_ASYNCIO_RUNS_TWICE)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        outcomes = [run_check(check, harness) for check in checks]
    assert [outcome.verdict for outcome in outcomes] == [Verdict.PASSED] * len(checks)
    assert [record.getMessage() for record in caplog.records if record.name == "asyncio"] == []
