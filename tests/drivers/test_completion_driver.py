"""The completion driver: what only it promises, and how it refuses where io_uring is refused.

The transport contract is checked by the conformance suite (``completion-*``
and ``tls-over-completion-*`` in ``tests/conformance/``), the loop, pipes,
processes and serving by the tests that run on every registered driver.
Here: batching (one ``io_uring_enter`` serves many connections), the
ownership of buffers around pause, close and abort, multishot accept,
level-triggered readiness through the ring, and the refusal path (the setup
call forced to fail).  Every wait is ``run_until`` with a bound.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.support import TIMEOUT
from weft._cli import commands as cli
from weft.drivers import DRIVERS, UnavailableDriverError, open_runtime
from weft.drivers import _registry as registry
from weft.drivers._core.socket_defaults import READ_SIZE
from weft.drivers.completion import (
    CompletionRuntime,
    CompletionTransport,
    RingThreadError,
    _uring,
    unavailable_reason,
)
from weft.drivers.completion._transport import FIRST_READ_SIZE
from weft.drivers.reactor import Reactor
from weft.drivers.testing import RecordingProtocol
from weft.protocols import EchoProtocol

_REFUSED = unavailable_reason()
needs_ring = pytest.mark.skipif(_REFUSED is not None, reason=_REFUSED or "")


@pytest.fixture
def runtime() -> Iterator[CompletionRuntime]:
    made = CompletionRuntime()
    yield made
    made.close()


def connected(
    runtime: CompletionRuntime, server: Any = EchoProtocol, client: RecordingProtocol | None = None
) -> tuple[RecordingProtocol, list[Any], Any]:
    """A client connected over TCP; the server's protocols as they are made."""
    servers: list[Any] = []

    def make_server() -> Any:
        servers.append(server())
        return servers[-1]

    listener = runtime.listen_tcp(make_server, "127.0.0.1", 0)
    client = client or RecordingProtocol()
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    assert runtime.run_until(lambda: connecting.done() and bool(servers), TIMEOUT)
    connecting.result()
    return client, servers, listener


def drain(sock: socket.socket) -> None:
    """Read until EOF (or the error that ends the connection)."""
    while sock.recv(1024 * 1024):
        pass


def lost(protocol: RecordingProtocol) -> bool:
    return bool(protocol.events) and protocol.events[-1][0] == "connection_lost"


# ------------------------------------------------------------------ the driver


@needs_ring
def test_it_is_the_driver_called_completion() -> None:
    """``--driver completion`` opens it: a reactor underneath, with completion transports."""
    made = open_runtime("completion")
    try:
        assert isinstance(made, CompletionRuntime)
        assert isinstance(made, Reactor)
        assert made.stream_transport_class is CompletionTransport
    finally:
        made.close()


@needs_ring
def test_one_enter_serves_many_connections(runtime: CompletionRuntime) -> None:
    """Twenty connections echo a message each: the submissions of a turn go
    to the kernel together, so there are far fewer io_uring_enter calls than
    operations (each message is a send, a receive, an echo and its receive)."""
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    clients = [RecordingProtocol() for _ in range(20)]
    connecting = [runtime.connect_tcp(lambda c=c: c, "127.0.0.1", listener.port) for c in clients]  # type: ignore[misc]
    assert runtime.run_until(lambda: all(f.done() for f in connecting), TIMEOUT)
    assert runtime.run_until(lambda: len(listener.connections) == 20, TIMEOUT)
    before = runtime.ring.enters
    for client in clients:
        client.transport.write(b"ping")
    assert runtime.run_until(lambda: all(c.received == b"ping" for c in clients), TIMEOUT)
    operations = 4 * len(clients)
    assert runtime.ring.enters - before < operations / 4


@needs_ring
def test_a_connection_receives_into_a_page_until_a_receive_fills_it(runtime: CompletionRuntime) -> None:
    """A connection starts receiving into FIRST_READ_SIZE bytes (an idle or
    chatty connection costs a page, not 64 KiB); a receive that fills it moves
    it to READ_SIZE for the receives after; every byte arrives, in order."""
    client, servers, _listener = connected(runtime, RecordingProtocol)
    receiving: CompletionTransport = servers[0].transport
    client.transport.write(b"small")
    assert runtime.run_until(lambda: servers[0].received == b"small", TIMEOUT)
    assert len(receiving._recv_buffer or b"") == FIRST_READ_SIZE
    big = bytes(index % 251 for index in range(300_000))
    client.transport.write(big)
    assert runtime.run_until(lambda: len(servers[0].received) == 5 + len(big), TIMEOUT)
    assert servers[0].received == b"small" + big
    assert len(receiving._recv_buffer or b"") == READ_SIZE


@needs_ring
def test_writes_never_interleave_one_send_in_flight(runtime: CompletionRuntime) -> None:
    """Writes made while a send is in flight queue behind it and go, together,
    as the next single send: the peer gets the bytes in order."""
    client, servers, _listener = connected(runtime, RecordingProtocol)
    transport: CompletionTransport = client.transport  # type: ignore[assignment]
    transport.write(b"first ")
    transport.write(b"second ")
    transport.write(b"third")
    assert transport._in_flight == b"first "
    assert list(transport._buffer) == [b"second ", b"third"]
    assert transport.get_write_buffer_size() == len(b"first second third")
    assert runtime.run_until(lambda: transport._in_flight == b"second third", TIMEOUT)
    assert runtime.run_until(lambda: servers[0].received == b"first second third", TIMEOUT)
    assert transport.get_write_buffer_size() == 0


@needs_ring
def test_data_completed_while_paused_is_held_until_resume(runtime: CompletionRuntime) -> None:
    """pause_reading arms no new receive, but the one the kernel holds still
    completes: its bytes are held, not delivered, and come after
    resume_reading, on a later turn, in order."""
    client, servers, _listener = connected(runtime, RecordingProtocol)
    server = servers[0]
    transport: CompletionTransport = server.transport
    assert transport._recv_pending
    transport.pause_reading()
    client.transport.write(b"sent while paused")
    assert runtime.run_until(lambda: bool(transport._held), TIMEOUT)
    assert server.received == b""
    assert not transport._recv_pending  # none armed again while paused
    transport.resume_reading()
    assert server.received == b""  # not from inside resume_reading
    assert runtime.run_until(lambda: server.received == b"sent while paused", TIMEOUT)
    client.transport.write(b"; then more")
    assert runtime.run_until(lambda: server.received == b"sent while paused; then more", TIMEOUT)


class PausesAtOnce(RecordingProtocol):
    """Pauses reading at its first bytes, as a protocol whose writes back up does."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.transport.pause_reading()


@needs_ring
def test_a_flooding_peer_of_a_paused_connection_leaves_at_most_a_buffer_held(
    runtime: CompletionRuntime,
) -> None:
    """A peer floods a connection that pauses at its first bytes: at most the
    one receive the kernel held completes meanwhile, so what is held until
    resume_reading is one buffer at most, and the rest waits in the kernel
    (a multishot receive, tried and dropped, took up to 32 buffers here)."""
    listener = runtime.listen_tcp(PausesAtOnce, "127.0.0.1", 0)
    peer = socket.create_connection(("127.0.0.1", listener.port), timeout=TIMEOUT)
    with peer:
        assert runtime.run_until(lambda: len(listener.connections) == 1, TIMEOUT)
        receiving = cast(CompletionTransport, next(iter(listener.connections)))
        peer.setblocking(False)
        flood = bytes(4 * 1024 * 1024)
        with contextlib.suppress(BlockingIOError):
            while True:
                peer.send(flood)  # until the kernel's buffers are full
        assert runtime.run_until(lambda: receiving._lifecycle.paused and not receiving._recv_pending, TIMEOUT)
        runtime.run_once(0.01)
        held = sum(len(data) for data in receiving._held if data is not None)
        assert held <= READ_SIZE
        assert not receiving._recv_pending


class CheckingEnd(RecordingProtocol):
    """Records, in connection_lost, whether the kernel still owned an
    operation and whether the descriptor was still open."""

    def connection_lost(self, exc: BaseException | None) -> None:
        transport: CompletionTransport = self.transport  # type: ignore[assignment]
        self.kernel_owned = transport._recv_pending or transport._in_flight is not None
        self.fd = transport.get_extra_info("socket").fileno()
        super().connection_lost(exc)


@needs_ring
def test_close_waits_for_every_operation_before_connection_lost(runtime: CompletionRuntime) -> None:
    """close() with a receive armed: connection_lost comes only once the
    kernel has given the receive back, and the descriptor is closed after it."""
    client, _servers, _listener = connected(runtime, client=CheckingEnd())
    transport: CompletionTransport = client.transport  # type: ignore[assignment]
    sock = transport.get_extra_info("socket")
    assert transport._recv_pending
    transport.close()
    assert not lost(client)
    assert runtime.run_until(lambda: lost(client), TIMEOUT)
    assert client.kernel_owned is False  # type: ignore[attr-defined]
    assert client.fd >= 0  # type: ignore[attr-defined]
    assert sock.fileno() == -1


@needs_ring
def test_abort_with_a_send_in_flight_resets_the_peer(runtime: CompletionRuntime) -> None:
    """abort() while a send waits on a peer that does not read: the send is
    cancelled, connection_lost(None) follows, and a TCP peer sees a reset."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = CheckingEnd()
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", listener.getsockname()[1])
    assert runtime.run_until(connecting.done, TIMEOUT)
    peer, _ = listener.accept()
    with listener, peer:
        transport: CompletionTransport = client.transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=64 * 1024 * 1024)
        for _ in range(64):
            transport.write(os.urandom(256 * 1024))
        # Turns that wait at most 50 ms each: once the socket is full, the
        # send the kernel holds never completes, so no turn would end.
        for _ in range(int(TIMEOUT / 0.05)):
            runtime.run_once(0.05)
            if transport._in_flight is not None and not transport._quick and runtime.ring.pending == 0:
                break
        assert runtime.ring.pending == 0
        assert transport._in_flight is not None
        assert not transport._quick, "the send left waiting in the kernel is an ordinary one"
        transport.abort()
        assert runtime.run_until(lambda: lost(client), TIMEOUT)
        assert client.events[-1] == ("connection_lost", None)
        assert client.kernel_owned is False
        peer.settimeout(TIMEOUT)
        with pytest.raises(ConnectionResetError):
            drain(peer)


def peer_of(runtime: CompletionRuntime) -> tuple[CompletionTransport, RecordingProtocol, socket.socket]:
    """A completion transport connected to a plain blocking socket the test reads."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with listener:
        client = RecordingProtocol()
        connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", listener.getsockname()[1])
        assert runtime.run_until(connecting.done, TIMEOUT)
        peer, _ = listener.accept()
    peer.settimeout(TIMEOUT)
    return client.transport, client, peer  # type: ignore[return-value]


def receive(sock: socket.socket, count: int) -> bytes:
    got = b""
    while len(got) < count:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    return got


needs_quick_sends = pytest.mark.skipif(
    _REFUSED is not None or not _uring.quick_sends_work(), reason="no quick sends on this kernel"
)


@needs_quick_sends
def test_a_send_on_a_socket_is_quick_and_over_after_the_enter(runtime: CompletionRuntime) -> None:
    """write() on a socket pushes a quick send: no completion comes for it, and
    the turn whose enter hands it over finds it sent (the transport idle, its
    buffer size back to 0), with the peer holding the bytes."""
    transport, _client, peer = peer_of(runtime)
    with peer:
        transport.write(b"quick")
        assert transport._quick
        assert transport.get_write_buffer_size() == 5
        runtime.run_once(0)
        assert transport._in_flight is None
        assert not transport._quick
        assert transport.get_write_buffer_size() == 0
        assert receive(peer, 5) == b"quick"


@needs_quick_sends
def test_what_a_full_socket_did_not_take_goes_next_and_in_order(runtime: CompletionRuntime) -> None:
    """A quick send the socket takes only in part reports it; the rest goes
    first, as an ordinary send that waits for room, and what was written
    meanwhile after it: the peer reads every byte, in order."""
    transport, _client, peer = peer_of(runtime)
    with peer:
        transport.set_write_buffer_limits(high=64 * 1024 * 1024)
        data = os.urandom(16 * 1024 * 1024)  # more than a socket's buffers hold
        transport.write(data)
        runtime.run_once(0)
        assert transport._in_flight is not None
        assert not transport._quick  # the rest waits in the kernel for room
        transport.write(b"and after it")
        expected = data + b"and after it"
        received = bytearray()
        peer.setblocking(False)
        for _ in range(100_000):
            try:
                while chunk := peer.recv(1 << 20):
                    received += chunk
            except BlockingIOError:
                pass
            if len(received) >= len(expected):
                break
            runtime.run_once(0.01)
        assert received == expected
        assert transport.get_write_buffer_size() == 0


@needs_quick_sends
def test_writes_behind_a_quick_send_go_without_waiting_for_an_event(
    runtime: CompletionRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quick send's end makes no completion to wake the loop, so the enter
    that hands over one with bytes queued behind it does not wait (here
    nothing else would ever happen): its turn ends at once and sends the
    queue; only then does a turn wait."""
    transport, _client, peer = peer_of(runtime)
    waits: list[float | None] = []
    real = runtime.ring.submit_and_wait

    def recording(timeout: float | None) -> int:
        waits.append(timeout)
        return real(timeout)

    monkeypatch.setattr(runtime.ring, "submit_and_wait", recording)
    core = getattr(runtime.ring, "core", None)  # the C turn enters from C: it records its timeout
    if core is not None:
        core.last_timeout = 99.0
    with peer:
        transport.write(b"one ")
        transport.write(b"two ")
        transport.write(b"three")
        enters = runtime.ring.enters
        runtime.run_once(TIMEOUT)
        if core is not None:
            waits.append(core.last_timeout)
            assert runtime.ring.enters == enters + 1
        assert waits == [0.0]  # it did not wait, though it was allowed to
        assert transport._in_flight == b"two three"
        runtime.run_once(0)
        assert receive(peer, 13) == b"one two three"


@needs_quick_sends
def test_close_after_a_quick_send_ends_the_connection(runtime: CompletionRuntime) -> None:
    """close() right after a write: the quick send goes, then the connection
    ends (connection_lost(None), the peer reads the bytes and then EOF),
    without any event from the peer."""
    transport, client, peer = peer_of(runtime)
    with peer:
        transport.write(b"last words")
        transport.close()
        assert runtime.run_until(lambda: lost(client), TIMEOUT)
        assert client.events[-1] == ("connection_lost", None)
        assert receive(peer, 11) == b"last words"
        assert peer.recv(10) == b""


@needs_quick_sends
def test_abort_before_the_enter_withdraws_a_quick_send(runtime: CompletionRuntime) -> None:
    """abort() right after a write: the quick send, not yet handed over, is
    withdrawn (no byte reaches the peer), connection_lost(None) follows and
    the peer sees a reset."""
    transport, client, peer = peer_of(runtime)
    with peer:
        transport.write(b"never sent")
        assert transport._quick
        transport.abort()
        assert runtime.run_until(lambda: lost(client), TIMEOUT)
        assert client.events[-1] == ("connection_lost", None)
        with pytest.raises(ConnectionResetError):
            peer.recv(100)


@needs_quick_sends
def test_a_quick_send_that_fails_ends_the_connection_with_the_error(runtime: CompletionRuntime) -> None:
    """A quick send that fails outright (here its socket was shut down for
    writing: EPIPE) ends the connection with the matching OSError, as the
    reactor's send would; the receive it had armed is given back first."""
    transport, client, peer = peer_of(runtime)
    with peer:
        transport.get_extra_info("socket").shutdown(socket.SHUT_WR)
        transport.write(b"into a closed pipe")
        assert runtime.run_until(lambda: lost(client), TIMEOUT)
        error = client.events[-1][1]
        assert isinstance(error, OSError)
        assert error.errno == errno.EPIPE
        assert not transport._recv_pending


@needs_ring
def test_without_quick_sends_every_send_reports_its_completion(
    runtime: CompletionRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the kernel does not finish quick sends in the enter (the probe
    says False), a socket's sends are ordinary ones, each completing; the
    echo still works."""
    runtime._ring_poller.quick_sends_work = False
    client, _servers, _listener = connected(runtime)
    server_end = next(iter(_listener.connections))
    assert server_end._quick_entry == b""
    client.transport.write(b"echo me")
    assert runtime.run_until(lambda: client.received == b"echo me", TIMEOUT)


@needs_ring
def test_closing_the_runtime_waits_for_the_kernel(runtime: CompletionRuntime) -> None:
    """Closing the runtime with connections open aborts them and turns the
    ring until every operation is back: each protocol hears connection_lost,
    and no handler is left waiting (no buffer left to the kernel)."""
    client, servers, _listener = connected(runtime, RecordingProtocol)
    poller = runtime._ring_poller
    runtime.close()
    assert lost(client)
    assert lost(servers[0])
    assert poller.completions == {}
    assert poller.streams == {}


@needs_ring
def test_one_multishot_accept_takes_every_connection(runtime: CompletionRuntime) -> None:
    """Ten connections are accepted by the one accept armed when listening."""
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    armed = dict(listener._armed)
    assert len(armed) == 1
    clients = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(10)]
    try:
        assert runtime.run_until(lambda: len(listener.connections) == 10, TIMEOUT)
        assert listener._armed == armed
    finally:
        for sock in clients:
            sock.close()


@needs_ring
def test_a_closed_listener_frees_its_address_at_once(runtime: CompletionRuntime, tmp_path: Path) -> None:
    """close() hands the accept's cancel to the kernel at once: the same UNIX
    path and the same TCP port can be listened on again straight away."""
    path = str(tmp_path / "socket")
    runtime.listen_unix(EchoProtocol, path).close()
    runtime.listen_unix(EchoProtocol, path).close()
    tcp = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    port = tcp.port
    tcp.close()
    runtime.listen_tcp(EchoProtocol, "127.0.0.1", port).close()


@needs_ring
def test_readiness_through_the_ring_is_level_triggered(runtime: CompletionRuntime) -> None:
    """add_reader on the ring's polls: a reader that takes one byte per call
    is called again while bytes remain, as with epoll's level triggering."""
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        got = bytearray()
        runtime.add_reader(left.fileno(), lambda: got.extend(left.recv(1)))
        right.send(b"abc")
        assert runtime.run_until(lambda: got == b"abc", TIMEOUT)
        runtime.remove_reader(left.fileno())


@needs_ring
def test_a_timer_and_a_call_from_another_thread_wake_the_ring(runtime: CompletionRuntime) -> None:
    """Timers bound the wait of io_uring_enter, and call_soon_threadsafe wakes it."""
    import threading

    fired: list[str] = []
    runtime.call_later(0.01, fired.append, "timer")
    threading.Thread(target=runtime.call_soon_threadsafe, args=(fired.append, "thread")).start()
    assert runtime.run_until(lambda: sorted(fired) == ["thread", "timer"], TIMEOUT)


# ---------------------------------------------------------------- refusal


@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """io_uring_setup fails as under kernel.io_uring_disabled or seccomp (EPERM)."""

    def refuse(entries: int, params: int) -> int:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(_uring.syscalls, "setup", refuse)
    unavailable_reason.cache_clear()
    try:
        yield
    finally:
        unavailable_reason.cache_clear()


@pytest.mark.usefixtures("refused")
def test_a_refused_ring_makes_the_driver_unavailable_with_the_reason() -> None:
    """The registry says why in one line, and opening the driver raises
    UnavailableDriverError with that line, never crashing the process."""
    info = DRIVERS["completion"]
    reason = info.unavailable_reason()
    assert reason is not None
    assert not info.available()
    assert "io_uring_disabled" in reason
    assert "\n" not in reason
    with pytest.raises(UnavailableDriverError) as raised:
        open_runtime("completion")
    assert str(raised.value) == reason


def test_a_ring_refused_after_the_probe_is_still_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """When setup fails at open though the probe passed (a limit reached
    since), opening still raises UnavailableDriverError, not RingUnavailableError's crash."""

    def refuse(entries: int, params: int) -> int:
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))

    monkeypatch.setattr(_uring.syscalls, "setup", refuse)
    monkeypatch.setattr(registry, "_completion_refusal", lambda: None)
    info = registry.DriverInfo(
        "completion", "test copy", (), None, registry._completion, DRIVERS["completion"].capabilities
    )
    with pytest.raises(UnavailableDriverError, match="ENOMEM"):
        info.open()


@pytest.mark.usefixtures("refused")
def test_auto_picks_the_reactor_when_io_uring_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even were the completion driver preferred, ``auto`` falls back to the reactor."""
    monkeypatch.setattr(registry, "AUTO_PREFERENCE", ("completion", "reactor"))
    assert registry.auto_driver() == "reactor"
    made = open_runtime("auto")
    try:
        assert type(made) is Reactor
    finally:
        made.close()


@needs_ring
def test_auto_picks_completion_when_preferred_and_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` follows AUTO_PREFERENCE where io_uring works."""
    monkeypatch.setattr(registry, "AUTO_PREFERENCE", ("completion", "reactor"))
    assert registry.auto_driver() == "completion"


@pytest.mark.usefixtures("refused")
def test_weft_drivers_shows_the_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    """`weft drivers` lists completion as unavailable, with the reason on its line."""
    assert cli.main(["drivers"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("completion ")]
    assert row.split()[:2] == ["completion", "no"]
    assert row.endswith("cannot run here: io_uring is unavailable: " + _refusal_text())


def _refusal_text() -> str:
    return _uring._explain(errno.EPERM)


@needs_ring
def test_a_runtime_made_on_one_thread_runs_on_another_and_is_closed_there() -> None:
    """A completion runtime belongs to the first thread that turns it (a
    single-issuer ring): made on the test's thread, it serves on another.
    While that one has stopped turning it, turning or closing it from the
    maker's thread raises RingThreadError and ends nothing: the owner goes
    on serving, then closes it."""
    runtime = CompletionRuntime()
    if not runtime.ring.single_issuer:
        runtime.close()
        pytest.skip("this kernel has no single-issuer rings (Linux 6.1)")
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)  # no kernel entry yet
    errors: list[BaseException] = []
    first_round, between, second_round = threading.Event(), threading.Event(), threading.Event()

    def serve() -> None:
        try:
            runtime.run_until(first_round.is_set, TIMEOUT)
            between.set()
            second_round.wait(TIMEOUT)
            runtime.run_until(lambda: not second_round.is_set(), TIMEOUT)
            runtime.close()
        except BaseException as exc:  # recorded for the test to check
            errors.append(exc)
            between.set()

    server = threading.Thread(target=serve)
    server.start()
    with socket.create_connection(("127.0.0.1", listener.port), timeout=TIMEOUT) as peer:
        peer.sendall(b"across threads")
        assert peer.recv(100) == b"across threads"
        runtime.call_soon_threadsafe(first_round.set)
        assert between.wait(TIMEOUT)
        assert runtime.ring.owner == server.ident
        with pytest.raises(RingThreadError, match="belongs to thread"):
            runtime.run_once(0)
        with pytest.raises(RingThreadError, match="belongs to thread"):
            runtime.close()
        second_round.set()
        peer.sendall(b"still served")
        assert peer.recv(100) == b"still served"
        runtime.call_soon_threadsafe(second_round.clear)
    server.join(TIMEOUT)
    assert not server.is_alive()
    assert errors == []
    assert runtime._closed
