"""The blocking driver: its script API with timeouts, bounded read-ahead, write
ordering under writes from several threads, and ``weft serve --driver blocking``
(the pool and the idle timeout: tests/drivers/test_blocking_limits.py).

Every wait is bounded and waits on an event, never on time.
"""

from __future__ import annotations

import gc
import hashlib
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.backlog import full_backlog
from tests.support.descriptors import no_new_fds
from tests.support.processes import Children, connect, receive_exactly, stop
from weft.drivers import DRIVERS, ListenerBacklogFullError, open_runtime
from weft.drivers.blocking import BlockingListener, BlockingRuntime, connect_tcp, connect_unix, spawn_process
from weft.drivers.blocking._transport import _MAX_UNDELIVERED, READ_SIZE, ThreadedTransport
from weft.drivers.testing import RecordingProtocol
from weft.protocols import EchoProtocol
from weft.protocols.errors import ArgumentError, ClosedResourceError
from weft.protocols.framing import LineProtocol


@contextmanager
def background_server(
    factory: Callable[[], Any], *, unix: str | None = None, max_connections: int = 256
) -> Iterator[tuple[BlockingRuntime, BlockingListener]]:
    """A blocking runtime serving ``factory`` on its own thread."""
    runtime = BlockingRuntime(max_connections=max_connections)
    if unix is None:
        listener = runtime.listen_tcp(factory, "127.0.0.1", 0)
    else:
        listener = runtime.listen_unix(factory, unix)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    try:
        yield runtime, listener
    finally:
        runtime.call_soon_threadsafe(runtime.stop)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        runtime.close()


def test_it_is_registered_and_available() -> None:
    """``--driver blocking`` and ``weft drivers`` know it; it needs nothing extra."""
    assert DRIVERS["blocking"].available()
    runtime = open_runtime("blocking")
    try:
        assert runtime.name == "blocking"
    finally:
        runtime.close()


def test_a_script_talks_to_a_server_with_no_event_loop() -> None:
    """connect_tcp returns after connection_made; wait_for runs the callbacks
    until the condition holds and returns its value; leaving the block closes."""
    with background_server(EchoProtocol) as (_runtime, listener):
        client = RecordingProtocol()
        with connect_tcp(client, "127.0.0.1", listener.port, timeout=TIMEOUT) as conn:
            assert client.names == ["connection_made"]
            client.transport.write(b"hello")
            assert conn.wait_for(lambda: client.received == b"hello", TIMEOUT) is True
        assert conn.closed
        assert client.lost
        assert client.lost_exc is None


def test_unix_sockets_too(tmp_path: Any) -> None:
    """connect_unix works as connect_tcp does."""
    path = str(tmp_path / "echo.sock")
    with background_server(EchoProtocol, unix=path):
        client = RecordingProtocol()
        with connect_unix(client, path, timeout=TIMEOUT) as conn:
            client.transport.write(b"over unix")
            conn.wait_for(lambda: client.received == b"over unix", TIMEOUT)


def test_connect_unix_waits_for_room_in_a_full_backlog_as_a_blocking_connect_does(tmp_path: Any) -> None:
    """connect_unix to a listener whose backlog is full does not fail with
    EAGAIN: it waits, and connects once the listener accepts; bytes then
    flow both ways."""
    with full_backlog(str(tmp_path / "s")) as backlog:
        client = RecordingProtocol()
        outcome: list[Any] = []

        def connect_in_a_thread() -> None:
            try:
                outcome.append(connect_unix(client, backlog.path, timeout=TIMEOUT))
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=connect_in_a_thread)
        thread.start()
        thread.join(0.05)
        assert thread.is_alive(), f"connect_unix returned while the backlog was full: {outcome}"
        backlog.drain()
        thread.join(TIMEOUT)
        [conn] = outcome
        assert not isinstance(conn, BaseException), conn
        with conn:
            peer = backlog.accept()
            client.transport.write(b"ping")
            assert receive_exactly(peer, b"ping") == b"ping"
            peer.sendall(b"pong")
            assert conn.wait_for(lambda: client.received == b"pong", TIMEOUT) is True


def test_connect_unix_to_a_backlog_that_stays_full_raises_at_its_timeout(tmp_path: Any) -> None:
    """A listener that never makes room: ListenerBacklogFullError (a TimeoutError)
    naming the path once the timeout has passed; no protocol made, no descriptor left."""
    with full_backlog(str(tmp_path / "s")) as backlog:
        client = RecordingProtocol()
        with no_new_fds(), pytest.raises(ListenerBacklogFullError, match="backlog stayed full") as raised:
            connect_unix(client, backlog.path, timeout=0.2)
        assert isinstance(raised.value, TimeoutError)
        assert backlog.path in str(raised.value)
        assert not client.made


def test_waits_time_out_with_timeout_error() -> None:
    """A condition that does not come true raises TimeoutError after the timeout;
    the connection is still usable afterwards."""
    with background_server(EchoProtocol) as (_runtime, listener):
        client = RecordingProtocol()
        with connect_tcp(client, "127.0.0.1", listener.port, timeout=TIMEOUT) as conn:
            with pytest.raises(TimeoutError):
                conn.wait_for(lambda: client.received == b"never sent", 0.1)
            with pytest.raises(TimeoutError):
                conn.wait_until_closed(0.1)
            client.transport.write(b"still fine")
            conn.wait_for(lambda: client.received == b"still fine", TIMEOUT)


def test_a_wait_the_end_makes_impossible_fails_at_once() -> None:
    """When the server closes, a wait for more data raises ClosedResourceError
    at once, rather than waiting for its timeout."""

    class CloseOnFirstData(RecordingProtocol):
        # The server closes from its own callback: connect_tcp returning does
        # not mean the server has accepted yet, so closing "every connection
        # the listener has" from outside could find none.
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.transport.close()

    with background_server(CloseOnFirstData) as (_runtime, listener):
        client = RecordingProtocol(keep_open_on_eof=False)
        with connect_tcp(client, "127.0.0.1", listener.port, timeout=TIMEOUT) as conn:
            client.transport.write(b"close, please")
            with pytest.raises(ClosedResourceError):
                conn.wait_for(lambda: client.received == b"more", TIMEOUT)
            assert conn.wait_until_closed(TIMEOUT) is None


class Lines(LineProtocol):
    """Keeps the lines it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)


def test_a_script_talks_to_a_child_process() -> None:
    """spawn_process gives a Connection to a child's stdin and stdout: lines go
    both ways, write_eof closes its stdin, and wait_for_exit gives the status."""
    upper = "import sys\nfor line in sys.stdin: print(line.strip().upper(), flush=True)\nsys.exit(3)"
    client = Lines()
    with spawn_process(client, [sys.executable, "-c", upper], timeout=TIMEOUT) as conn:
        assert conn.process is not None
        client.send_line(b"hello")
        client.send_line(b"weft")
        assert conn.wait_for(lambda: client.lines == [b"HELLO", b"WEFT"], TIMEOUT)
        client.transport.write_eof()
        assert conn.wait_for_exit(TIMEOUT) == 3
        assert conn.process.returncode == 3
    assert conn.closed


def test_spawning_what_cannot_run_fails_at_once_and_sockets_have_no_exit() -> None:
    """A missing program raises FileNotFoundError; wait_for_exit on a socket
    connection is an ArgumentError."""
    with pytest.raises(FileNotFoundError):
        spawn_process(RecordingProtocol(), ["/nonexistent/weft-test-program"])
    with (
        background_server(EchoProtocol) as (_runtime, listener),
        connect_tcp(RecordingProtocol(), "127.0.0.1", listener.port, timeout=TIMEOUT) as conn,
    ):
        assert conn.process is None
        with pytest.raises(ArgumentError):
            conn.wait_for_exit(TIMEOUT)


def test_closing_the_runtime_closes_an_accepted_socket_whose_start_is_still_queued() -> None:
    """An accept thread hands each socket to the scheduler thread, which
    starts it on its next turn; a runtime closed before that turn closes the
    socket (the client reads end-of-file) rather than dropping it with the
    scheduler's queue for the garbage collector (a ResourceWarning, which
    failed tests under load when a client connected just before the end)."""
    runtime = BlockingRuntime()
    listener = runtime.listen_tcp(RecordingProtocol, "127.0.0.1", 0)
    handed = threading.Event()
    hand_over = runtime._hand_over
    send = hand_over.send

    def send_and_tell(sock: socket.socket, start: Callable[[socket.socket], object]) -> None:
        send(sock, start)
        handed.set()

    hand_over.send = send_and_tell  # type: ignore[method-assign]
    with socket.create_connection(("127.0.0.1", listener.port), TIMEOUT) as client:
        assert handed.wait(TIMEOUT)  # accepted and queued; the scheduler never ran
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            runtime.close()
            gc.collect()
        assert [str(warning.message) for warning in caught] == []
        client.settimeout(TIMEOUT)
        assert client.recv(1) == b""
    assert runtime.connections == set()


def test_connect_errors_are_clear() -> None:
    """A refused connection raises ConnectionRefusedError naming the address;
    bad timeouts are ArgumentErrors."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(ConnectionRefusedError, match=f"127.0.0.1:{port}"):
        connect_tcp(RecordingProtocol(), "127.0.0.1", port, timeout=TIMEOUT)
    with pytest.raises(ArgumentError):
        connect_tcp(RecordingProtocol(), "127.0.0.1", port, timeout=-1)


class PausesAfterEachChunk(RecordingProtocol):
    """Pauses reading after every chunk and resumes on the next turn, as an
    echo behind TLS does when each chunk fills its write buffer; records the
    most bytes its transport ever held read and not yet delivered."""

    def __init__(self, runtime: BlockingRuntime) -> None:
        super().__init__()
        self.runtime = runtime
        self.most_held = 0
        self.total = 0

    def data_received(self, data: bytes) -> None:
        self.total += len(data)
        # White-box: the read-ahead the transport holds is what is bounded here.
        transport = self.transport
        assert isinstance(transport, ThreadedTransport)
        held = sum(len(chunk) for chunk in transport._pending)
        self.most_held = max(self.most_held, held)
        # Work that lets the reader thread run meanwhile, as decrypting does
        # (hashlib releases the GIL on large inputs).
        hashlib.sha256(data * 8).digest()
        self.transport.pause_reading()
        self.runtime.call_soon(self.transport.resume_reading)


def test_read_ahead_stays_bounded_when_reading_pauses_after_every_chunk() -> None:
    """A protocol that pauses after each chunk and resumes on the next turn
    takes one chunk per pause; the reader must not run further ahead than
    its few chunks meanwhile (it once counted chunks held for a paused
    protocol as delivered, and a TLS echo held hundreds of MiB)."""
    total = 16 * 1024 * 1024
    made: list[PausesAfterEachChunk] = []
    runtime_box: list[BlockingRuntime] = []

    def factory() -> PausesAfterEachChunk:
        made.append(PausesAfterEachChunk(runtime_box[0]))
        return made[-1]

    with background_server(factory) as (runtime, listener):
        runtime_box.append(runtime)
        with socket.create_connection(("127.0.0.1", listener.port), timeout=TIMEOUT) as client:
            client.sendall(bytes(total))
            client.shutdown(socket.SHUT_WR)
            assert client.recv(1) == b""  # the server closes at EOF, after taking every byte
        assert made[0].total == total
        assert made[0].most_held <= _MAX_UNDELIVERED * READ_SIZE


def test_writes_from_several_threads_never_interleave() -> None:
    """Eight threads write 200 frames each through one transport at once; the
    peer (an echo, read back) gets every frame whole, each thread's frames in its own order."""
    frame_size, per_thread, threads = 1000, 200, 8
    with background_server(EchoProtocol) as (_runtime, listener):
        client = RecordingProtocol()
        with connect_tcp(client, "127.0.0.1", listener.port, timeout=TIMEOUT) as conn:
            start = threading.Barrier(threads)

            def writer(tag: int) -> None:
                start.wait(TIMEOUT)
                for index in range(per_thread):
                    head = f"{tag}:{index}:".encode()
                    client.transport.write(head + bytes([65 + tag]) * (frame_size - len(head)))

            workers = [threading.Thread(target=writer, args=(tag,)) for tag in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(TIMEOUT)
            total = frame_size * per_thread * threads
            # The echo: wait_for wakes on this connection's own events, not on another thread's.
            conn.wait_for(lambda: len(client.received) >= total, TIMEOUT)
        received = client.received
        assert len(received) == total
        seen: dict[int, list[int]] = {tag: [] for tag in range(threads)}
        for offset in range(0, total, frame_size):
            frame = received[offset : offset + frame_size]
            tag, index, body = frame.split(b":", 2)
            assert body == bytes([65 + int(tag)]) * len(body)
            seen[int(tag)].append(int(index))
        assert all(indexes == list(range(per_thread)) for indexes in seen.values())


def test_weft_serve_echo_on_the_blocking_driver(children: Children) -> None:
    """``weft serve echo --driver blocking`` echoes every byte and stops on SIGTERM with status 0."""
    server = children.weft("serve", "echo", "--port", "0", "--driver", "blocking")
    with connect(server.port()) as client:
        data = bytes(range(256)) * 1024
        client.sendall(data)
        assert receive_exactly(client, data) == data
    assert stop(server) == 0


def test_the_docs_child_process_example_runs_as_written() -> None:
    """docs/drivers-blocking.md's spawn_process example runs and gets its answer."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "drivers-blocking.md").read_text()
    (block,) = [code for code in re.findall(r"```python\n(.*?)```", page, re.S) if "spawn_process" in code]
    scope: dict[str, Any] = {}
    exec(compile(block, "docs/drivers-blocking.md", "exec"), scope)
    assert scope["child"].lines == [b"HELLO"]
    assert scope["status"] == 0
