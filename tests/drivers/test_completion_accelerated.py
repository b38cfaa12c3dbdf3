"""The completion driver's turn in C (weft._speedups: RingCore, RingTurn).

What the C path does that the Python one does not, and where both must agree:
receives go straight into a bytes object that is then delivered (so the
buffer the kernel owns must be held until its completion, and never be
delivered while the kernel can still write into it); exceptions go to the
same hooks; the same table says which path runs.  Tests that hold on both
paths run twice in one process: on the C path (the default, where the
accelerator is built) and on the pure path (a runtime given a plain Ring).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft._cli import commands as cli
from weft.drivers._core import accelerator
from weft.drivers._core.socket_defaults import READ_SIZE
from weft.drivers.completion import CompletionRuntime, _ring_poller, _uring, unavailable_reason
from weft.drivers.completion._transport import FIRST_READ_SIZE, CompletionTransport
from weft.drivers.testing import RecordingProtocol
from weft.protocols.errors import WeftError

_REFUSED = unavailable_reason()
needs_ring = pytest.mark.skipif(_REFUSED is not None, reason=_REFUSED or "")
needs_c_turn = pytest.mark.skipif(
    _REFUSED is not None or accelerator.ring_core_type() is None,
    reason=_REFUSED or "the completion driver's C turn is not in use (WEFT_PURE_PYTHON, or not built)",
)

PATHS = ["c", "python"]


def make_runtime(path: str) -> CompletionRuntime:
    """A runtime on the C turn (the default) or on the pure-Python one (a plain Ring)."""
    if path == "c":
        if accelerator.ring_core_type() is None:
            pytest.skip("the completion driver's C turn is not in use")
        runtime = CompletionRuntime()
        assert runtime._ring_poller._turn is not None
        return runtime
    runtime = CompletionRuntime(_uring.Ring(256, 4096))
    assert runtime._ring_poller._turn is None
    return runtime


@pytest.fixture(params=PATHS)
def runtime(request: pytest.FixtureRequest) -> Iterator[CompletionRuntime]:
    if _REFUSED is not None:
        pytest.skip(_REFUSED)
    made = make_runtime(request.param)
    yield made
    made.close()


@pytest.fixture
def c_runtime() -> Iterator[CompletionRuntime]:
    if _REFUSED is not None:
        pytest.skip(_REFUSED)
    made = make_runtime("c")
    yield made
    made.close()


class Chunks(RecordingProtocol):
    """Keeps every bytes object data_received was given, as given."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        super().data_received(data)


def serve(runtime: CompletionRuntime, protocol: Any) -> tuple[Any, socket.socket]:
    """A plain blocking client socket connected to a server protocol on ``runtime``."""
    made: list[Any] = []

    def factory() -> Any:
        made.append(protocol())
        return made[-1]

    listener = runtime.listen_tcp(factory, "127.0.0.1", 0)
    client = socket.create_connection(("127.0.0.1", listener.port), timeout=TIMEOUT)
    assert runtime.run_until(lambda: bool(made) and made[0].transport is not None, TIMEOUT)
    return made[0], client


def arrived(protocol: RecordingProtocol, count: int) -> bool:
    return len(protocol.received) == count


def lost(protocol: RecordingProtocol) -> bool:
    return bool(protocol.events) and protocol.events[-1][0] == "connection_lost"


# ------------------------------------------------------------- receiving


def test_delivered_bytes_stay_as_received_while_later_receives_arrive(runtime: CompletionRuntime) -> None:
    """Each delivery is bytes of its own: later receives (into a new buffer on
    the C path, into the same bytearray on the pure one) never change what
    was delivered before, and the buffer armed now is none of them."""
    server, client = serve(runtime, Chunks)
    with client:
        messages = [bytes([65 + index]) * (100 + index) for index in range(20)]
        expected = 0
        for message in messages:
            client.sendall(message)
            expected += len(message)
            assert runtime.run_until(partial(arrived, server, expected), TIMEOUT)
        assert b"".join(server.chunks) == b"".join(messages)
        assert all(type(chunk) is bytes for chunk in server.chunks)
        assert b"".join(server.chunks) == b"".join(messages)  # still, after all the receives
        transport: CompletionTransport = server.transport
        assert not any(chunk is transport._recv_buffer for chunk in server.chunks)


@needs_c_turn
def test_the_c_path_receives_into_bytes_a_page_until_one_fills_it(c_runtime: CompletionRuntime) -> None:
    """On the C path each receive goes into a new bytes object of the
    transport's receive size: FIRST_READ_SIZE until a receive fills one, then
    READ_SIZE for good (a small receive after does not shrink it back)."""
    server, client = serve(c_runtime, Chunks)
    transport: CompletionTransport = server.transport
    with client:
        assert type(transport._recv_buffer) is bytes
        assert len(transport._recv_buffer) == FIRST_READ_SIZE
        client.sendall(b"small")
        assert c_runtime.run_until(lambda: server.received == b"small", TIMEOUT)
        assert transport._recv_size == FIRST_READ_SIZE
        assert len(transport._recv_buffer) == FIRST_READ_SIZE
        client.sendall(bytes(300_000))
        assert c_runtime.run_until(lambda: len(server.received) == 5 + 300_000, TIMEOUT)
        assert transport._recv_size == READ_SIZE
        client.sendall(b"small again")
        assert c_runtime.run_until(lambda: server.received.endswith(b"small again"), TIMEOUT)
        assert len(transport._recv_buffer) == READ_SIZE
        # Each delivery was shrunk to what arrived: no chunk larger than a buffer.
        assert max(map(len, server.chunks)) <= READ_SIZE


@needs_c_turn
@pytest.mark.parametrize("ending", ["close", "abort"])
def test_a_receive_buffer_is_held_until_its_completion(c_runtime: CompletionRuntime, ending: str) -> None:
    """close() or abort() with a receive armed: until the kernel gives the
    receive back, the transport still holds the very bytes object the kernel
    may write into; it lets go of it only with the completion."""
    server, client = serve(c_runtime, RecordingProtocol)
    transport: CompletionTransport = server.transport
    with client:
        armed = transport._recv_buffer
        assert transport._recv_pending
        assert type(armed) is bytes
        getattr(transport, ending)()
        assert transport._recv_pending
        assert transport._recv_buffer is armed
        assert c_runtime.run_until(lambda: lost(server), TIMEOUT)
        assert not transport._recv_pending
        assert transport._recv_buffer is None


@needs_c_turn
def test_a_closed_poller_keeps_a_receive_buffer_in_flight_for_good() -> None:
    """A ring closed with a receive still armed: the transport, and with it
    the bytes the kernel may still write into, is kept for the life of the
    process (RingPoller.close's _abandoned), never freed."""
    runtime = make_runtime("c")
    server, client = serve(runtime, RecordingProtocol)
    transport: CompletionTransport = server.transport
    armed = transport._recv_buffer
    assert transport._recv_pending
    assert type(armed) is bytes
    runtime._ring_poller.close()
    try:
        assert any(kept is transport for kept in _ring_poller._abandoned)
        assert transport._recv_buffer is armed
    finally:
        client.close()
        with contextlib.suppress(WeftError):
            runtime.close()


def test_a_peer_closing_after_data_delivers_both(runtime: CompletionRuntime) -> None:
    """Data then EOF in one turn: the data is delivered, then eof_received,
    then connection_lost (the C hot path hands the EOF to _recv_done)."""
    server, client = serve(runtime, RecordingProtocol)
    client.sendall(b"last words")
    client.close()
    assert runtime.run_until(lambda: lost(server), TIMEOUT)
    assert server.received == b"last words"
    names = [event[0] for event in server.events]
    assert names.index("eof_received") < names.index("connection_lost")


# ------------------------------------------------------------ exceptions


class Failing(RecordingProtocol):
    def data_received(self, data: bytes) -> None:
        raise ValueError(f"refused {data!r}")


def test_an_exception_in_data_received_goes_to_the_callback_hook(
    runtime: CompletionRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """data_received raising: logged as a protocol callback's failure, and the
    connection ends with that very exception, on either path."""
    server, client = serve(runtime, Failing)
    with client, caplog.at_level(logging.ERROR):
        client.sendall(b"boom")
        assert runtime.run_until(lambda: lost(server), TIMEOUT)
    exc = server.events[-1][1]
    assert isinstance(exc, ValueError)
    assert str(exc) == "refused b'boom'"
    assert any("exception in a callback of" in record.getMessage() for record in caplog.records)


class Interrupting(RecordingProtocol):
    def data_received(self, data: bytes) -> None:
        raise KeyboardInterrupt


def test_a_base_exception_in_data_received_leaves_the_turn(runtime: CompletionRuntime) -> None:
    """KeyboardInterrupt from data_received is no protocol failure: it leaves
    the turn at once, on either path, as from the reactor's loop, and the
    connection is left open (not ended through the callback hook)."""
    server, client = serve(runtime, Interrupting)
    with client:
        client.sendall(b"^C")
        with pytest.raises(KeyboardInterrupt):
            runtime.run_until(lambda: False, TIMEOUT)
        assert not lost(server)
        assert not server.transport.is_closing()


def test_a_driver_bug_in_a_completion_is_logged_and_the_loop_goes_on(
    runtime: CompletionRuntime, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transport's completion handler raising (a driver bug, forced here on
    an EOF) is logged and does not stop the loop: another connection still
    receives afterwards."""
    broken, broken_client = serve(runtime, RecordingProtocol)
    other, other_client = serve(runtime, RecordingProtocol)

    def failing(self: CompletionTransport, res: int, flags: int) -> None:
        raise RuntimeError("a driver bug")

    def logged() -> bool:
        wanted = "exception in the completion handler of"
        return any(wanted in record.getMessage() for record in caplog.records)

    with other_client, caplog.at_level(logging.ERROR):
        monkeypatch.setattr(CompletionTransport, "_recv_done", failing)
        broken_client.close()
        assert runtime.run_until(logged, TIMEOUT)
        monkeypatch.undo()
        other_client.sendall(b"still here")
        assert runtime.run_until(lambda: other.received == b"still here", TIMEOUT)
    # The failing handler left the receive's state as if still armed: put it
    # right (the kernel gave it back), or closing would wait for it.
    broken.transport._recv_pending = False
    broken.transport.abort()


# ---------------------------------------------------------------- the core


@needs_c_turn
def test_unfilled_bytes_are_new_objects_never_the_shared_singletons() -> None:
    """unfilled_bytes makes a new bytes object of the size asked; 0 and 1
    byte would be CPython's shared objects, which the kernel must never
    write into: refused."""
    buffer = accelerator.unfilled_bytes(4096)
    assert type(buffer) is bytes
    assert len(buffer) == 4096
    assert accelerator.unfilled_bytes(2) is not accelerator.unfilled_bytes(2)
    for size in (0, 1):
        with pytest.raises(ValueError, match="at least 2"):
            accelerator.unfilled_bytes(size)


@needs_c_turn
def test_an_accelerated_ring_refuses_pushes_once_closed_and_bad_entries() -> None:
    """The C push checks what the Python one did: a 64-byte entry, bytes to
    send, and an open ring (RingUnavailableError once closed)."""
    ring = _uring.new_ring(8, 16)
    assert isinstance(ring, _uring.AcceleratedRing)
    nop = _uring.Ring.entry(_uring.Op.NOP, -1, 1)
    with pytest.raises(ValueError, match="64 bytes"):
        ring.push(nop[:32])
    with pytest.raises(TypeError, match="bytes"):
        ring.push_bytes(_uring.Ring.send_entry(0, 1), bytearray(b"x"))  # type: ignore[arg-type]
    assert ring.push(nop) == ring.submitted
    ring.submit()
    assert ring.reap() == [(1, 0, 0)]
    ring.close()
    with pytest.raises(_uring.RingUnavailableError, match="closed"):
        ring.push(nop)


@needs_c_turn
def test_a_full_queue_is_handed_over_by_the_c_push() -> None:
    """More pushes than the queue has slots: the C push hands the batch over
    itself (through the ring's submit, which claims the ring), and every
    entry completes."""
    ring = _uring.new_ring(4, 64)
    try:
        for index in range(10):
            ring.push(_uring.Ring.entry(_uring.Op.NOP, -1, index + 1))
        ring.submit()
        assert sorted(user_data for user_data, _res, _flags in ring.reap()) == list(range(1, 11))
        assert ring.enters >= 3
    finally:
        ring.close()


def test_weft_drivers_says_which_loop_the_completion_driver_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """`weft drivers` says, on the completion driver's row, whether its loop
    is the C accelerator's or pure Python (and why)."""
    if _REFUSED is not None:
        pytest.skip(_REFUSED)
    assert cli.main(["drivers"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("completion ")]
    if accelerator.ring_core_type() is not None:
        assert row.endswith("its loop in C (weft._speedups)")
    else:
        assert "its loop in pure Python" in row
