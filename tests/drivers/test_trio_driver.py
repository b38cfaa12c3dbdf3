"""The trio driver's own mapping of weft onto Trio: what the shared suites do not show.

The conformance suite, the datagram checks and the driver matrix run on
trio like on every driver; these tests pin down how weft's runtime API maps
onto a Trio run (a guest run that lives as long as the runtime; runs that
can be entered and left; between runs nothing moves), the clock (Trio's,
``trio.current_time()``, with timers on one deadline), flow control (a
paused transport's task stops receiving, so the kernel pushes back), the
end of one connection leaving the others alone, and a runtime inside a Trio
program (``open_trio_runtime``), on Trio's clock, mock clock included.
Every wait is on a condition with a timeout; nothing sleeps.
"""

from __future__ import annotations

import fcntl
import logging
import select
import socket
import subprocess
import sys
import termios
import threading
from typing import Any

import pytest
import trio
import trio.testing

from tests.support import TIMEOUT
from weft.drivers import open_runtime
from weft.drivers._core.socket_defaults import READ_SIZE
from weft.drivers.coroutines import Cancelled, sleep
from weft.drivers.testing import RecordingProtocol
from weft.drivers.trio import TrioRuntime, TrioTransport, from_weft, open_trio_runtime
from weft.protocols import EchoProtocol
from weft.protocols.errors import ClosedResourceError, InvalidStateError


@pytest.fixture
def runtime() -> Any:
    made = TrioRuntime()
    try:
        yield made
    finally:
        made.close()


def connected(runtime: TrioRuntime, server: Any) -> tuple[RecordingProtocol, TrioTransport]:
    """A client (recording) connected over loopback TCP to ``server``; its
    transport, once both ends have had ``connection_made``."""
    client = RecordingProtocol()
    listener = runtime.listen_tcp(lambda: server, "127.0.0.1", 0)
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    assert runtime.run_until(lambda: connecting.done() and bool(listener.connections), TIMEOUT)
    listener.close()
    transport = connecting.result()
    assert isinstance(transport, TrioTransport)
    return client, transport


# ----------------------------------------------------------- running


def test_the_registry_opens_a_trio_runtime() -> None:
    """open_runtime("trio") is a TrioRuntime on a Trio run of its own, in this
    thread; closing it ends that run, so another can start."""
    runtime = open_runtime("trio")
    assert isinstance(runtime, TrioRuntime)
    assert trio.lowlevel.in_trio_run()
    runtime.close()
    assert not trio.lowlevel.in_trio_run()
    TrioRuntime().close()


def test_one_trio_runtime_per_thread_at_a_time(runtime: TrioRuntime) -> None:
    """Trio allows one run per thread: a second runtime is refused with a message
    saying what to do, and one in another thread is fine."""
    with pytest.raises(InvalidStateError, match="one per thread"):
        TrioRuntime()
    made: list[TrioRuntime] = []
    created, tried = threading.Event(), threading.Event()

    def another_thread() -> None:
        made.append(TrioRuntime())
        created.set()
        tried.wait(TIMEOUT)
        made[0].close()

    elsewhere = threading.Thread(target=another_thread)
    elsewhere.start()
    try:
        assert created.wait(TIMEOUT)
        # It belongs to its thread: running it from here is refused.
        with pytest.raises(InvalidStateError, match="thread that made it"):
            made[0].run_until(lambda: False, 0)
    finally:
        tried.set()
        elsewhere.join(TIMEOUT)


def test_connections_live_on_between_runs_and_nothing_moves_between_them(runtime: TrioRuntime) -> None:
    """A connection made in one run_until works in the next; between runs no
    protocol callback runs (Trio's run is paused, not ended): bytes written
    then reach the peer's protocol only on the next run."""
    server = RecordingProtocol()
    client, transport = connected(runtime, server)
    transport.write(b"first")
    assert runtime.run_until(lambda: server.received == b"first", TIMEOUT)
    transport.write(b" second")  # to the kernel at once (the sending task is idle), as on the reactor
    raw = server.transport.get_extra_info("socket")
    assert isinstance(raw, socket.socket)
    assert readable(raw)  # it has arrived, and waits: the server's task runs only when the runtime does
    assert server.received == b"first"
    assert runtime.run_until(lambda: server.received == b"first second", TIMEOUT)
    assert client.made
    assert not client.lost


def readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has bytes to read now (a poll that does not wait)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(TIMEOUT * 1000))


def test_run_returns_after_stop_and_a_stop_before_run_is_kept(runtime: TrioRuntime) -> None:
    """stop() from a callback makes run() return; run() again works; a stop()
    made before run() makes it do what is ready and return."""
    ran: list[str] = []

    def note_and_stop(name: str) -> None:
        ran.append(name)
        runtime.stop()

    runtime.call_soon(note_and_stop, "one")
    runtime.run()
    assert ran == ["one"]
    runtime.call_soon(note_and_stop, "two")
    runtime.run()
    assert ran == ["one", "two"]
    runtime.stop()
    runtime.run()  # returns at once
    assert not runtime.running


def test_call_soon_threadsafe_wakes_a_waiting_run(runtime: TrioRuntime) -> None:
    """Another thread's call_soon_threadsafe wakes a run that waits for nothing
    else (Trio's I/O thread is asleep), and the callback runs in the runtime's thread."""
    seen: list[int] = []

    def from_elsewhere() -> None:
        runtime.call_soon_threadsafe(lambda: seen.append(threading.get_ident()))

    threading.Thread(target=from_elsewhere).start()
    assert runtime.run_until(lambda: bool(seen), TIMEOUT)
    assert seen == [threading.get_ident()]


def test_close_ends_the_connections_and_the_trio_run() -> None:
    """close() aborts what is open (connection_lost runs), ends Trio's run, and
    refuses what comes after with ClosedResourceError."""
    runtime = TrioRuntime()
    server = RecordingProtocol()
    client, _transport = connected(runtime, server)
    runtime.close()
    assert client.lost
    assert server.lost
    assert not trio.lowlevel.in_trio_run()
    with pytest.raises(ClosedResourceError):
        runtime.listen_tcp(EchoProtocol)
    runtime.close()  # twice is harmless


def test_a_keyboard_interrupt_ends_the_trio_run_and_run_raises_it() -> None:
    """KeyboardInterrupt is no error of one connection: raised in a callback, it
    ends Trio's run, run_until raises it, the runtime is closed, and the
    thread is free for another runtime."""
    runtime = TrioRuntime()

    def interrupt() -> None:
        raise KeyboardInterrupt

    runtime.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        runtime.run_until(lambda: False, TIMEOUT)
    assert not trio.lowlevel.in_trio_run()
    with pytest.raises(ClosedResourceError):
        runtime.listen_tcp(EchoProtocol)
    runtime.close()
    TrioRuntime().close()


# ------------------------------------------------------------- the clock


def test_now_is_trio_current_time(runtime: TrioRuntime) -> None:
    """The runtime's clock is Trio's: trio.current_time() in one of its tasks
    lies between two readings of runtime.now() around it."""

    async def read() -> float:
        return trio.current_time()

    before = runtime.now()
    inside = runtime.run_trio(read, timeout=TIMEOUT)
    assert before <= inside <= runtime.now()


def test_timers_run_in_deadline_order_and_never_when_cancelled(runtime: TrioRuntime) -> None:
    """Timers on one deadline-driven task: earlier deadlines first, equal ones
    in scheduling order, a cancelled one never, and one scheduled earlier than
    the task's current deadline wakes it sooner."""
    fired: list[str] = []
    runtime.call_later(0.05, fired.append, "late")
    runtime.call_later(0.01, fired.append, "a")
    runtime.call_later(0.01, fired.append, "b")
    runtime.call_later(0.01, fired.append, "cancelled").cancel()
    runtime.call_later(0.0, fired.append, "first")
    assert runtime.run_until(lambda: "late" in fired, TIMEOUT)
    assert fired == ["first", "a", "b", "late"]


def test_a_failing_callback_is_logged_and_the_others_run(
    runtime: TrioRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """A call_soon callback that raises is logged on weft.drivers.trio; the next one runs."""
    ran: list[str] = []

    def fail() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="weft.drivers.trio"):
        runtime.call_soon(fail)
        runtime.call_soon(ran.append, "after")
        assert runtime.run_until(lambda: ran == ["after"], TIMEOUT)
    assert any(isinstance(record.exc_info and record.exc_info[1], ValueError) for record in caplog.records)


def test_timers_use_the_trio_programs_clock() -> None:
    """Inside a Trio program the runtime's clock is the program's: under
    trio.testing.MockClock with autojump, a connection's 1000-second timer
    fires at once, because it sleeps on Trio's deadlines, not on the wall."""
    fired: list[float] = []

    async def main() -> None:
        async with open_trio_runtime() as runtime:
            server = RecordingProtocol()
            listener = runtime.listen_tcp(lambda: server, "127.0.0.1", 0)
            client = await trio.open_tcp_stream("127.0.0.1", listener.port)
            while not server.made:
                await trio.sleep(0)  # virtual time: the connection arrives in the next steps
            clock = server.transport.get_extra_info("clock")
            start = clock.now()
            assert start == trio.current_time()
            done = trio.Event()

            def fire() -> None:
                fired.append(clock.now() - start)
                done.set()

            clock.call_later(1000, fire)
            await done.wait()
            await client.aclose()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert fired
    assert fired[0] >= 1000


# --------------------------------------------------------- flow control


class Counting(RecordingProtocol):
    """Records, and counts the bytes received (a condition asked after every
    step must not copy megabytes)."""

    total = 0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.total += len(data)


def test_pause_reading_stops_the_task_receiving_so_the_peer_is_pushed_back(runtime: TrioRuntime) -> None:
    """While the server's transport is paused its task receives nothing: what
    the client sends piles up unread in the server's kernel buffer, the
    kernel stops taking more, and the client's transport keeps the rest,
    past its high-water mark (its protocol paused).  Resumed, every byte
    arrives, in order."""
    server = Counting()
    client, transport = connected(runtime, server)
    server.transport.pause_reading()
    payload = bytes(range(256)) * (32 * 1024 * 4)  # 32 MiB: far more than loopback's buffers hold
    transport.write(payload)
    server_socket = server.transport.get_extra_info("socket")

    def unread_at_server() -> int:
        return int.from_bytes(fcntl.ioctl(server_socket, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)

    # More than one read's worth waits in the kernel, and nothing was delivered.
    assert runtime.run_until(lambda: unread_at_server() > READ_SIZE, TIMEOUT)
    assert server.received == b""
    assert client.writing_paused
    assert transport.get_write_buffer_size() > len(payload) // 2  # the kernel cannot have taken it
    server.transport.resume_reading()
    assert runtime.run_until(lambda: server.total == len(payload), TIMEOUT)
    assert server.received == payload
    assert runtime.run_until(lambda: not client.writing_paused, TIMEOUT)


def test_data_received_while_a_receive_was_under_way_is_held_until_resumed(runtime: TrioRuntime) -> None:
    """A pause from outside the connection's task (here, between runs) cannot
    stop a receive already waiting: what it brings is held, not delivered,
    and comes first after resume_reading."""
    server = RecordingProtocol()
    _client, transport = connected(runtime, server)
    server_transport = server.transport
    assert isinstance(server_transport, TrioTransport)
    # Once "a" is delivered, the task has gone back into receive_some (it
    # yields only there), where the pause finds it.
    transport.write(b"a")
    assert runtime.run_until(lambda: server.received == b"a", TIMEOUT)
    server_transport.pause_reading()
    transport.write(b"in flight")
    assert runtime.run_until(lambda: bool(server_transport._held), TIMEOUT)
    assert server.received == b"a"
    server_transport.resume_reading()
    assert runtime.run_until(lambda: server.received == b"ain flight", TIMEOUT)


def test_writelines_pauses_the_writer_as_write_does(runtime: TrioRuntime) -> None:
    """writelines counts in the buffer and calls pause_writing past the
    high-water mark at once, before the task has sent anything."""
    server = RecordingProtocol()
    client, transport = connected(runtime, server)
    transport.writelines([b"x" * 40_000, b"y" * 40_000])
    assert client.writing_paused
    assert transport.get_write_buffer_size() == 80_000
    assert runtime.run_until(lambda: len(server.received) == 80_000 and not client.writing_paused, TIMEOUT)


# ------------------------------------------------------------- endings


class Failing(EchoProtocol):
    """An echo that raises on a poison line."""

    def data_received(self, data: bytes) -> None:
        if b"poison" in data:
            raise ValueError("poisoned")
        super().data_received(data)


def test_an_error_in_one_connection_ends_only_it(runtime: TrioRuntime) -> None:
    """A server protocol that raises ends its connection with that exception;
    a second connection to the same listener goes on echoing."""
    servers: list[Failing] = []

    def make() -> Failing:
        servers.append(Failing())
        return servers[-1]

    listener = runtime.listen_tcp(make, "127.0.0.1", 0)
    clients = [RecordingProtocol() for _ in range(2)]
    for client in clients:
        connecting = runtime.connect_tcp(lambda client=client: client, "127.0.0.1", listener.port)  # type: ignore[misc]
        assert runtime.run_until(connecting.done, TIMEOUT)
    clients[0].transport.write(b"poison")
    assert runtime.run_until(lambda: clients[0].lost, TIMEOUT)
    assert isinstance(clients[0].lost_exc, ConnectionResetError)  # the failed side reset its peer
    clients[1].transport.write(b"still here")
    assert runtime.run_until(lambda: clients[1].received == b"still here", TIMEOUT)
    assert not clients[1].lost


def test_close_flushes_and_abort_resets(runtime: TrioRuntime) -> None:
    """close() sends everything then EOF, and the protocol hears connection_lost(None);
    abort() resets a TCP peer, whose connection_lost gets ConnectionResetError."""
    server = RecordingProtocol(keep_open_on_eof=True)
    client, transport = connected(runtime, server)
    payload = b"z" * (3 * 1024 * 1024)
    transport.write(payload)
    transport.close()
    assert runtime.run_until(lambda: client.lost and server.got_eof, TIMEOUT)
    assert server.received == payload
    assert client.lost_exc is None

    server = RecordingProtocol()
    client, transport = connected(runtime, server)
    transport.write(b"x" * (8 * 1024 * 1024))  # more than the kernel takes: bytes are left to drop
    transport.abort()
    assert transport.get_write_buffer_size() == 0
    assert runtime.run_until(lambda: client.lost and server.lost, TIMEOUT)
    assert client.lost_exc is None
    assert isinstance(server.lost_exc, ConnectionResetError)


# ----------------------------------------------------- inside a Trio program


def test_a_trio_program_serves_weft_protocols_beside_its_own_tasks() -> None:
    """open_trio_runtime in trio.run: a weft echo server answers a Trio client
    (trio.open_tcp_stream), run() is refused (the program runs it), and
    leaving the block ends the connections."""
    seen: list[bytes] = []
    servers: list[Echo] = []

    class Echo(RecordingProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.transport.write(data)

    def make() -> Echo:
        servers.append(Echo())
        return servers[-1]

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            async with open_trio_runtime() as runtime:
                listener = runtime.listen_tcp(make, "127.0.0.1", 0)
                stream = await trio.open_tcp_stream("127.0.0.1", listener.port)
                await stream.send_all(b"ping")
                seen.append(await stream.receive_some(4))
                with pytest.raises(InvalidStateError, match="Trio program"):
                    runtime.run()
            assert servers[0].lost
            await stream.aclose()

    trio.run(main)
    assert seen == [b"ping"]


def test_from_weft_waits_for_weft_futures_and_coroutines_and_cancels_them(runtime: TrioRuntime) -> None:
    """from_weft gives a weft coroutine's result to a Trio task; a Trio task
    cancelled while it waits cancels the weft task, whose finally runs."""
    cleaned: list[str] = []

    async def weft_side(value: int) -> int:
        try:
            await sleep(0.0)
            return value * 2
        except Cancelled:
            cleaned.append("cancelled")
            raise

    async def slow() -> None:
        try:
            await sleep(3600)
        finally:
            cleaned.append("finally")

    async def trio_side() -> int:
        doubled = await from_weft(runtime, weft_side(21))
        with trio.move_on_after(0.01):
            await from_weft(runtime, slow())
        return doubled

    assert runtime.run_trio(trio_side, timeout=TIMEOUT) == 42
    assert cleaned == ["finally"]


def test_without_trio_the_package_names_the_extra() -> None:
    """Importing weft.drivers.trio where Trio cannot be imported fails with one
    line naming the extra that installs it (the registry says the same for --driver trio)."""
    code = "import sys; sys.modules['trio'] = None; import weft.drivers.trio"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: weft.drivers.trio needs Trio, which is not installed: pip install 'weft[trio]'"
    )
