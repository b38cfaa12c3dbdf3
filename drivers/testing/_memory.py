"""The in-memory driver: real weft transports with no sockets, for tests.

Two ways to run a protocol:

* :func:`connect` puts one protocol on a transport and lets the test play
  the peer: deliver data, EOF or a lost connection, read what was written,
  or stop reading to make the protocol's buffer fill.
* :func:`connect_pair` connects two protocols back to back through a
  :class:`Pump` that moves bytes only when the test says so, in the chunk
  sizes and direction it chooses.

Time is a :class:`~weft.drivers.testing._fake_clock.FakeClock`.  It is also the event
loop: what a transport defers (``connection_lost`` after ``close()``, data held
while reading was paused) is scheduled on it for "now", and every method of
:class:`MemoryConnection` and :class:`Pump` runs ``clock.advance(0)`` before
returning.  A test that calls a transport method directly can run the same
with ``clock.advance(0)``.

The transports behave as real ones do (the conformance suite checks them
against the same tests as every other driver): write buffering with
high/low-water marks and ``pause_writing``/``resume_writing``, ``pause_reading``
with data held until ``resume_reading``, half-close, ``close()`` that flushes
first, ``abort()`` that drops the buffer and resets the peer, and
``connection_lost`` never called from inside ``close()`` or ``abort()``.

One difference is deliberate: an exception raised by a protocol callback ends
that connection (the protocol gets ``connection_lost(exc)``) as on any driver,
*and* propagates to the test that caused it, so that a bug is never silent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Literal, Protocol

from weft.drivers._core.connection_clock import ConnectionClock
from weft.drivers._core.lifecycle import Event, TransportLifecycle, WriteState
from weft.drivers._core.transport_base import TransportBookkeeping
from weft.drivers.testing._fake_clock import FakeClock
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import FileRegion
from weft.protocols.errors import ClosedResourceError, NotSettledError, WriteAfterEofError

__all__ = ["End", "MemoryConnection", "MemoryTransport", "Pump", "connect", "connect_pair"]

#: The two ends of a :class:`Pump`.
End = Literal["client", "server"]


class _Link(Protocol):
    """Whatever sits at the far end of a memory transport."""

    def output_ready(self, transport: MemoryTransport) -> None:
        """``transport`` has something new to send (data, EOF, or a close)."""


class MemoryTransport(TransportBookkeeping):
    """A :class:`weft.protocols.contract.Transport` whose peer is in memory.

    Made by :func:`connect` and :func:`connect_pair`, never by hand.
    """

    def __init__(self, clock: FakeClock, protocol: Any, link: _Link, extra: dict[str, Any]) -> None:
        self._clock = clock
        self._protocol = protocol
        self._link = link
        self._extra = {**extra, "clock": ConnectionClock(clock, self._run_callback)}
        self._flow = WriteFlowControl()
        # Written and not yet taken by the peer; the head may be a memoryview
        # into a partly taken write.  A file region stays a region (counted
        # by its length, read only as the peer takes it) so that tests see
        # the same flow control as over sendfile.
        self._output: deque[bytes | memoryview | FileRegion] = deque()
        self._output_size = 0
        self._lifecycle = TransportLifecycle()
        # Received while reading was paused: data, or None for EOF.
        self._held: deque[bytes | None] = deque()
        # Whether the protocol has had connection_lost (the lifecycle's LOST
        # comes first, when it is scheduled).
        self._lost_called = False
        # What the simulated wire carried to the peer (the far end's view,
        # which the pump acts on): an EOF after the data (write_eof() or a
        # close() that flushed), or a reset.
        self._fin_sent = False
        self._reset_sent = False

    # ------------------------------------------------------- BaseTransport

    def close(self) -> None:
        """Flush, then send EOF and end the connection."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.CLOSE)
        self._held.clear()
        if not self._output:
            self._finish_close()
        self._link.output_ready(self)

    # ------------------------------------------------------- ReadTransport

    def pause_reading(self) -> None:
        """Hold incoming data until :meth:`resume_reading`."""
        if self._lifecycle.reading:  # else paused already, or closing
            self._lifecycle.apply(Event.PAUSE)

    def resume_reading(self) -> None:
        """Deliver again; data held meanwhile follows at the next clock step."""
        if not self._lifecycle.paused:  # not paused, or closing
            return
        self._lifecycle.apply(Event.RESUME)
        if self._held:
            self._clock.call_soon(self._deliver_held)

    # ------------------------------------------------------ WriteTransport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer ``data`` for the peer."""
        chunk = self._admit(data)
        if chunk is None:
            return
        self._output.append(chunk)
        self._output_size += len(chunk)
        self._link.output_ready(self)
        if self._flow.should_pause(self._output_size):
            self._protocol.pause_writing()

    def write_file(self, region: FileRegion) -> None:
        """Queue ``region`` for the peer (see the contract's ``write_file``); it
        is read only as the peer takes it, so it holds no memory meanwhile."""
        if self._lifecycle.eof_written:
            region.close()
            raise WriteAfterEofError("write_file() after write_eof()")
        if not len(region) or self._lifecycle.closing:
            region.close()
            return
        self._output.append(region)
        self._output_size += len(region)
        self._link.output_ready(self)
        if self._flow.should_pause(self._output_size):
            self._protocol.pause_writing()

    def write_eof(self) -> None:
        """Send EOF once the buffer is flushed."""
        if not self._lifecycle.writable:  # EOF asked already, or closing
            return
        self._lifecycle.apply(Event.WRITE_EOF)
        if not self._output:
            self._lifecycle.apply(Event.EOF_SENT)
            self._fin_sent = True
        self._link.output_ready(self)

    def can_write_eof(self) -> bool:
        """Always true."""
        return True

    def abort(self) -> None:
        """Drop the buffer, reset the peer, end the connection."""
        if self._lifecycle.lost:
            return
        self._lifecycle.apply(Event.ABORT)
        self._drop_output()
        self._reset_sent = True
        self._lose_later(None)
        self._link.output_ready(self)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules)."""
        self._flow.set_limits(high, low)
        if self._flow.should_pause(self._output_size):
            self._protocol.pause_writing()

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the peer."""
        return self._output_size

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<MemoryTransport {self._extra.get('sockname')!r} {state} buffered={self._output_size}>"

    # ------------------------------------------------------------- its state

    @property
    def connection_lost_called(self) -> bool:
        """Whether the protocol has had ``connection_lost``."""
        return self._lost_called

    # --------------------------------- the far end's side (this module only)

    def _accepts_data(self) -> bool:
        """Whether data sent now would be read now (open and not paused)."""
        return self._lifecycle.reading

    def _take_output(self, max_bytes: int | None = None) -> bytes:
        """Remove and return up to ``max_bytes`` of what was written (all by default).

        This is the peer reading: flow control and a pending close follow.
        A file that cannot be read ends the connection with its ``OSError``.
        """
        output = self._output
        if not output:
            return b""
        pieces: list[bytes | memoryview] = []
        wanted = self._output_size if max_bytes is None else max_bytes
        taken = 0
        try:
            while wanted and output:
                head = output[0]
                if isinstance(head, bytes | memoryview):
                    if len(head) <= wanted:
                        piece: bytes | memoryview = output.popleft()  # type: ignore[assignment]
                    else:
                        view = memoryview(head)
                        piece, output[0] = view[:wanted], view[wanted:]
                else:
                    piece = head.read(wanted)
                    if not len(head):
                        output.popleft()
                        head.close()
                pieces.append(piece)
                wanted -= len(piece)
                taken += len(piece)
        except OSError as exc:
            self._output_size -= taken
            self._fail_output(exc)
            return b"".join(pieces)
        data = b"".join(pieces)
        self._output_size -= len(data)
        if self._flow.should_resume(self._output_size):
            self._run_callback(self._protocol.resume_writing, ())
        lifecycle = self._lifecycle
        if not self._output and not lifecycle.lost:
            if lifecycle.closing:
                self._finish_close()
            elif lifecycle.write_state is WriteState.EOF_PENDING:
                lifecycle.apply(Event.EOF_SENT)
                self._fin_sent = True
        return data

    def _fail_output(self, exc: OSError) -> None:
        """A file region could not be read: the connection ends with ``exc``, as after a failed send."""
        if self._lifecycle.lost:
            return
        self._lifecycle.apply(Event.ABORT)
        self._drop_output()
        self._reset_sent = True
        self._lose_later(exc)
        self._link.output_ready(self)

    def _start(self) -> None:
        """Call ``connection_made``."""
        self._run_callback(self._protocol.connection_made, (self,))

    def _receive(self, data: bytes) -> None:
        """Data from the peer: delivered now, or held while reading is paused."""
        if self._lifecycle.closing or not data:
            return
        if self._lifecycle.paused or self._held:
            self._held.append(data)
        else:
            self._run_callback(self._protocol.data_received, (data,))

    def _receive_eof(self) -> None:
        """EOF from the peer: delivered now, or after the data held."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.EOF_RECEIVED)
        if self._lifecycle.paused or self._held:
            self._held.append(None)
        else:
            self._deliver_eof()

    def _lose_now(self, exc: BaseException | None) -> None:
        """The connection is gone (reset, network failure): tell the protocol now."""
        if self._lifecycle.lost:
            return
        self._drop_output()
        self._lifecycle.apply(Event.LOST)
        self._held.clear()
        self._call_connection_lost(exc)

    # ------------------------------------------------------------ internals

    def _run_callback(self, callback: Callable[..., object], args: tuple[Any, ...]) -> Any:
        """Call into the protocol; if it raises, end the connection with the
        exception and let it propagate to the test."""
        try:
            return callback(*args)
        except Exception as exc:
            if not self._lifecycle.lost:
                self._lifecycle.apply(Event.ABORT)
                self._drop_output()
                self._reset_sent = True
                self._lose_now(exc)
                self._link.output_ready(self)
            raise

    def _deliver_eof(self) -> None:
        if not self._run_callback(self._protocol.eof_received, ()):
            self.close()

    def _deliver_held(self) -> None:
        held, lifecycle = self._held, self._lifecycle
        while held and lifecycle.reading:
            data = held.popleft()
            if data is None:
                self._deliver_eof()
            else:
                self._run_callback(self._protocol.data_received, (data,))

    def _finish_close(self) -> None:
        self._fin_sent = True
        self._lose_later(None)

    def _lose_later(self, exc: BaseException | None) -> None:
        self._lifecycle.apply(Event.LOST)
        self._held.clear()
        self._clock.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        if self._lost_called:
            return
        self._lost_called = True
        self._protocol.connection_lost(exc)

    def _drop_output(self) -> None:
        for piece in self._output:
            if not isinstance(piece, bytes | memoryview):
                piece.close()
        self._output.clear()
        self._output_size = 0


class MemoryConnection:
    """One protocol on a memory transport; the test plays the peer.

    Made by :func:`connect`.  ``written`` is what the peer has read of what
    the protocol wrote: all of it, at once, unless ``peer_reads`` is false, in
    which case writes stay in the transport's buffer (and drive its flow
    control) until :meth:`read`.
    """

    def __init__(
        self,
        protocol: Any,
        *,
        clock: FakeClock | None = None,
        peer_reads: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.clock = clock if clock is not None else FakeClock()
        self.protocol = protocol
        info = {"peername": ("memory", "peer"), "sockname": ("memory", "local"), **(extra or {})}
        self.transport = MemoryTransport(self.clock, protocol, self, info)
        self._written = bytearray()
        self._peer_reads = peer_reads
        # Inside a read: what the protocol writes meanwhile (from
        # resume_writing, say) waits until the bytes being read are recorded.
        self._taking = False
        self._peer_sent_eof = False
        self.transport._start()
        self.clock.advance(0)

    # ----------------------------------------------------- the peer talks

    def deliver(self, data: bytes) -> None:
        """The peer sends ``data``: the protocol's ``data_received`` runs
        (or, while it has paused reading, the data waits)."""
        self._check_can_send()
        self.transport._receive(data)
        self.clock.advance(0)

    def deliver_eof(self) -> None:
        """The peer half-closes: the protocol's ``eof_received`` runs."""
        self._check_can_send()
        self._peer_sent_eof = True
        self.transport._receive_eof()
        self.clock.advance(0)

    def lose_connection(self, exc: BaseException | None = None) -> None:
        """The connection is gone: ``connection_lost(exc)`` runs now."""
        self.transport._lose_now(exc)
        self.clock.advance(0)

    def reset(self) -> None:
        """The peer resets the connection (``ConnectionResetError``)."""
        self.lose_connection(ConnectionResetError("connection reset by peer"))

    # ----------------------------------------------------- the peer reads

    @property
    def written(self) -> bytes:
        """Everything the peer has read so far."""
        return bytes(self._written)

    def take_written(self) -> bytes:
        """What the peer has read since the last call."""
        data = bytes(self._written)
        self._written.clear()
        return data

    @property
    def peer_reads(self) -> bool:
        """Whether the peer reads everything as soon as it is written."""
        return self._peer_reads

    @peer_reads.setter
    def peer_reads(self, value: bool) -> None:
        self._peer_reads = value
        if value:
            self.read()

    def read(self, max_bytes: int | None = None) -> bytes:
        """The peer reads up to ``max_bytes`` (all by default) from the buffer."""
        data = self._take(max_bytes)
        if self._peer_reads:
            self._drain()
        self.clock.advance(0)
        return data

    @property
    def eof_written(self) -> bool:
        """Whether the protocol's EOF (``write_eof()`` or ``close()``) has reached the peer."""
        return self.transport._fin_sent

    @property
    def closed(self) -> bool:
        """Whether the protocol has had ``connection_lost``."""
        return self.transport.connection_lost_called

    # ------------------------------------------------------------ plumbing

    def output_ready(self, transport: MemoryTransport) -> None:
        """Read at once when the peer is reading."""
        if self._peer_reads and not self._taking:
            self._drain()

    def _drain(self) -> None:
        """Take everything, including what the protocol writes while it is taken."""
        while self._peer_reads and self.transport._output:
            self._take(None)

    def _take(self, max_bytes: int | None) -> bytes:
        """The peer reads, keeping order: bytes written while these are being
        taken (by a callback flow control runs) are taken after them."""
        self._taking = True
        try:
            data = self.transport._take_output(max_bytes)
        finally:
            self._taking = False
        self._written += data
        return data

    def _check_can_send(self) -> None:
        if self._peer_sent_eof:
            raise ClosedResourceError("the peer already sent EOF")


class Pump:
    """Two protocols back to back; bytes move only when the test steps the pump.

    Made by :func:`connect_pair`.  :meth:`deliver` moves what one end wrote
    to the other, as much or as little as the test wants; :meth:`run` goes
    back and forth until nothing moves.  An end that pauses reading gets
    nothing (so its peer's buffer fills and flow control engages, as over a
    real network); :meth:`stall` makes an end's host stop reading whatever
    its protocol does.  Bytes sent to an end that has closed are dropped and
    the sender is reset, as TCP does.
    """

    def __init__(
        self,
        client: Any,
        server: Any,
        *,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock if clock is not None else FakeClock()
        self.client = client
        self.server = server
        self._transports: dict[End, MemoryTransport] = {
            "client": MemoryTransport(
                self.clock, client, self, {"peername": ("memory", "server"), "sockname": ("memory", "client")}
            ),
            "server": MemoryTransport(
                self.clock, server, self, {"peername": ("memory", "client"), "sockname": ("memory", "server")}
            ),
        }
        self._stalled: set[End] = set()
        # What has reached each end from the other: an EOF, a reset.
        self._fin_delivered: set[End] = set()
        self._reset_delivered: set[End] = set()
        self._transports["server"]._start()
        self._transports["client"]._start()
        self.clock.advance(0)

    @property
    def client_transport(self) -> MemoryTransport:
        """The client protocol's transport."""
        return self._transports["client"]

    @property
    def server_transport(self) -> MemoryTransport:
        """The server protocol's transport."""
        return self._transports["server"]

    def transport(self, end: End) -> MemoryTransport:
        """The transport of ``end``."""
        return self._transports[end]

    def deliver(self, sender: End, max_bytes: int | None = None) -> bool:
        """Move up to ``max_bytes`` that ``sender`` wrote (all by default) to the
        other end, then its EOF or reset if that is next.  Return whether
        anything moved."""
        receiver: End = "server" if sender == "client" else "client"
        source, target = self._transports[sender], self._transports[receiver]
        moved = False
        if source._reset_sent and sender not in self._reset_delivered:
            self._reset_delivered.add(sender)
            target._lose_now(ConnectionResetError("connection reset by peer"))
            moved = True
        elif target._lifecycle.lost:
            if source.get_write_buffer_size():
                source._take_output()
                source._lose_now(ConnectionResetError("connection reset by peer"))
                moved = True
        elif receiver not in self._stalled and target._accepts_data():
            data = source._take_output(max_bytes)
            if data:
                target._receive(data)
                moved = True
            if (
                source._fin_sent
                and not source.get_write_buffer_size()
                and sender not in self._fin_delivered
                and target._accepts_data()
            ):
                self._fin_delivered.add(sender)
                target._receive_eof()
                moved = True
        self.clock.advance(0)
        return moved

    def run(self, *, max_bytes: int | None = None, first: End = "client", max_rounds: int = 100_000) -> None:
        """Deliver back and forth, ``first`` first, until nothing moves.

        ``max_bytes`` caps each move (1 sends one byte at a time).  Raises
        :class:`~weft.protocols.errors.NotSettledError` after ``max_rounds``
        rounds that all moved something (two protocols that talk forever).
        """
        second: End = "server" if first == "client" else "client"
        for _ in range(max_rounds):
            moved = self.deliver(first, max_bytes)
            moved = self.deliver(second, max_bytes) or moved
            if not moved:
                return
        raise NotSettledError(f"the pump still moved data after {max_rounds} rounds")

    def stall(self, end: End) -> None:
        """``end``'s host stops reading from the network (its protocol is not told)."""
        self._stalled.add(end)

    def unstall(self, end: End) -> None:
        """``end``'s host reads again."""
        self._stalled.discard(end)

    def reset(self) -> None:
        """The network breaks: both ends lose the connection with ``ConnectionResetError``."""
        for end in ("client", "server"):
            self._transports[end]._lose_now(ConnectionResetError("connection reset"))
        self.clock.advance(0)

    def output_ready(self, transport: MemoryTransport) -> None:
        """Nothing moves until the test says so."""


def connect(
    protocol: Any,
    *,
    clock: FakeClock | None = None,
    peer_reads: bool = True,
    extra: dict[str, Any] | None = None,
) -> MemoryConnection:
    """Put ``protocol`` on a memory transport (``connection_made`` runs now)
    and return the handle through which the test plays its peer."""
    return MemoryConnection(protocol, clock=clock, peer_reads=peer_reads, extra=extra)


def connect_pair(client: Any, server: Any, *, clock: FakeClock | None = None) -> Pump:
    """Connect two protocols back to back (``connection_made`` runs on both,
    server first) and return the pump that moves their bytes."""
    return Pump(client, server, clock=clock)
