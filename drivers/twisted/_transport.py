"""The weft transport over a Twisted transport.

Twisted talks to a small protocol of the driver's, :class:`TwistedSide`,
which forwards to a :class:`TwistedTransport`, what the weft protocol is
handed.  How weft's contract maps onto Twisted's:

* **Writing, and flow control.**  The side is registered with the Twisted
  transport as a *pull* producer (``registerProducer(side, False)``), so
  Twisted calls its ``resumeProducing`` every time its own buffer has
  emptied.  The driver hands Twisted at most :data:`CHUNK` bytes between two
  such calls and keeps the rest in a queue of its own; it therefore knows at
  every moment how much is waiting (``get_write_buffer_size()``: its queue
  plus what Twisted holds, to within one chunk of what Twisted has sent
  meanwhile), and calls ``pause_writing`` as a write takes that over the
  high-water mark and ``resume_writing`` as Twisted's calls take it to the
  low one, from ``write``, ``writelines`` and ``write_file`` alike.  (A
  *streaming* producer would hear ``pauseProducing`` only past Twisted's own
  ``bufferSize`` and ``resumeProducing`` only once its buffer is empty,
  never at a low-water mark, and Twisted says how much it holds only
  through private attributes.)  A write that finds nothing queued and
  Twisted holding less than a chunk goes straight to Twisted: the echo of a
  small message costs one comparison more than Twisted's own ``write``.
* **Reading.**  ``pause_reading``/``resume_reading`` are the Twisted
  transport's ``pauseProducing``/``resumeProducing`` (it stops watching the
  descriptor).  Data Twisted hands over while the weft protocol is paused
  is held and delivered on a later turn after ``resume_reading``.
* **Half-close** through ``IHalfCloseableProtocol``: ``readConnectionLost``
  is ``eof_received`` (whose false return closes the transport, as in
  asyncio), ``write_eof`` is ``loseWriteConnection`` once the queue is
  handed over, and ``writeConnectionLost`` says the EOF went out.
* **Endings.**  ``close`` hands the rest of the queue to Twisted as it asks
  for it, then calls ``loseConnection`` (Twisted flushes, then closes);
  ``abort`` drops the queue and calls ``abortConnection`` (a TCP peer gets a
  reset).  ``connection_lost`` gets ``None`` for a clean end, the close and
  the abort included, the exception a protocol callback raised, or a
  ``ConnectionError`` for a connection Twisted saw end badly; always on a
  later turn, never from inside ``close``/``abort``.
* **Errors.**  An exception from any protocol callback (``connection_made``,
  ``data_received``, ``pause_writing``, a timer...) is logged on the
  ``weft.drivers.twisted`` logger and ends that connection alone with it: Twisted
  never sees it.
* ``get_extra_info("clock")`` is a weft clock bound to the connection;
  ``"peername"``, ``"sockname"`` and ``"socket"`` are taken when the
  connection is made and kept after it ends.
* ``write_file`` sends a region with ``os.sendfile`` straight to the
  descriptor once Twisted's buffer is empty, then asks Twisted to watch for
  writability (``startWriting``: with nothing of its own to send, Twisted
  calls its producer when the descriptor is writable) and sends on from
  there.  Where the kernel refuses ``sendfile`` the region is read a chunk
  at a time as Twisted asks for more.
"""

from __future__ import annotations

import enum
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from twisted.internet import error as twisted_error
from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocol, IPullProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from weft.drivers._core.connection_clock import ConnectionClock, DriverClock
from weft.drivers._core.connection_log import log_closed, log_opened
from weft.drivers._core.file_sending import send_from_file, sendfile_refused
from weft.drivers._core.held_delivery import HeldDelivery
from weft.drivers._core.lifecycle import Event, TransportLifecycle, WriteState
from weft.drivers._core.socket_defaults import name_or_none
from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import FileRegion
from weft.protocols.errors import WriteAfterEofError

__all__ = ["CHUNK", "Carrier", "Link", "TwistedSide", "TwistedTransport"]

logger = logging.getLogger("weft.drivers.twisted")

#: The most the driver hands Twisted between two of its ``resumeProducing``
#: calls (Twisted's own read size and default ``bufferSize``).
CHUNK = 64 * 1024


class Link(enum.Enum):
    """Where a :class:`TwistedTransport` stands with the Twisted transport under it."""

    #: Twisted has not made the connection yet.
    UNMADE = "unmade"
    #: Made: the side is the Twisted transport's pull producer, and the queue
    #: goes to Twisted as it asks for more.
    PRODUCING = "producing"
    #: ``loseWriteConnection`` was asked (the producer let go first, or Twisted
    #: would never end its output); reading goes on.
    OUTPUT_ENDED = "output ended"
    #: ``loseConnection`` or ``abortConnection`` was asked: Twisted ends the connection.
    LET_GO = "let go"


class _Sendfile(enum.Enum):
    """What one ``sendfile`` of a region came to (see ``TwistedTransport._send_file``)."""

    #: The region is all out: on to what follows it.
    SENT = "sent"
    #: The kernel took what it could: on once the descriptor is writable.
    WAIT = "wait"
    #: The kernel cannot sendfile here: the region is read instead.
    REFUSED = "refused"
    #: Sending failed: the connection ends with the error.
    FAILED = "failed"


#: What the Twisted transport is over: a socket, or pipes.  Twisted reports a
#: connection that ended badly without its errno; this picks the error.
Carrier = Literal["socket", "pipes"]


@implementer(IProtocol, IHalfCloseableProtocol, IPullProducer)
class TwistedSide:
    """The Twisted protocol (and pull producer) of one connection: forwards to its weft transport.

    ``dataReceived`` is the hot path: one check, one call.
    """

    __slots__ = ("_owner", "connected", "transport")

    def __init__(self, owner: TwistedTransport) -> None:
        self._owner = owner
        self.connected = False
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        """Twisted made the connection: the weft protocol is made now."""
        self.connected = True
        self.transport = transport
        self._owner._start(transport)

    def connectionMade(self) -> None:
        """Part of IProtocol; :meth:`makeConnection` did the work."""

    def dataReceived(self, data: bytes) -> None:
        """Hand ``data`` to the weft protocol (or hold it, while reading is paused)."""
        owner = self._owner
        if not owner._lifecycle.reading:  # paused, or closing
            owner._hold(data)
            return
        try:
            owner._protocol.data_received(data)
        except Exception as exc:
            owner._callback_failed(exc)

    def readConnectionLost(self) -> None:
        """The peer sent EOF."""
        self._owner._eof()

    def writeConnectionLost(self) -> None:
        """Our EOF went out (``loseWriteConnection`` is done)."""
        self._owner._eof_sent()

    def connectionLost(self, reason: Failure) -> None:
        """The connection is over."""
        self.connected = False
        self._owner._twisted_lost(reason)

    def resumeProducing(self) -> None:
        """Twisted's buffer is empty: hand it more, and see whether writing may resume."""
        self._owner._drained()

    def stopProducing(self) -> None:
        """Twisted's transport is going away; its connectionLost says the rest."""

    def logPrefix(self) -> str:
        """What Twisted's log lines about this connection start with."""
        return "weft"


class TwistedTransport(HeldDelivery):
    """A :class:`weft.protocols.contract.Transport` over a Twisted transport
    (see the module docstring): TCP, UNIX sockets, pipes, a child's stdio.

    Made by :class:`~weft.drivers.twisted.TwistedRuntime` (listening,
    connecting, ``connect_pipes``, ``spawn_process``), never by
    applications.  The protocol factory is called when Twisted makes the
    connection, as on the reactor.  ``write_file`` sends a region with
    ``os.sendfile`` (Twisted has none), or reads it a chunk at a time where
    the kernel refuses that: nothing of it is held in memory beyond one chunk.
    """

    __slots__ = (
        "_can_write_eof",
        "_carrier",
        "_delivery",
        "_error",
        "_extra",
        "_factory",
        "_flow",
        "_held",
        "_in_twisted",
        "_link",
        "_lifecycle",
        "_log_factory_errors",
        "_made",
        "_protocol",
        "_queue",
        "_queued",
        "_out_fd",
        "_sendfile_refused",
        "_side",
        "_soon",
        "_twisted",
        "_writable",
        "on_lost",
        "on_made",
        "on_started",
    )

    def __init__(
        self,
        clock: DriverClock,
        soon: Callable[..., object],
        factory: Callable[[], Any],
        *,
        carrier: Carrier = "socket",
        extra: dict[str, Any] | None = None,
        can_write_eof: bool = True,
        log_factory_errors: bool = True,
    ) -> None:
        self._soon = soon
        self._factory = factory
        self._carrier = carrier
        self._protocol: Any = None
        self._extra: dict[str, Any] = {**(extra or {}), "clock": ConnectionClock(clock, self._run_callback)}
        self._flow = WriteFlowControl()
        self._lifecycle = TransportLifecycle()
        self._side = TwistedSide(self)
        self._twisted: Any = None  # the Twisted transport, once made
        self._can_write_eof = can_write_eof
        self._log_factory_errors = log_factory_errors
        self._link = Link.UNMADE
        self._made = False  # the protocol's connection_made was called
        # The fast path of write() (when nothing is queued): the protocol is
        # made and the lifecycle writable (no close, abort or write_eof).
        self._writable = False
        # What waits to be handed to Twisted (bytes, views, file regions),
        # and how many bytes that is.
        self._queue: deque[bytes | memoryview | FileRegion] = deque()
        self._queued = 0
        # Bytes handed to Twisted since it last said its buffer was empty.
        self._in_twisted = 0
        # The descriptor write_file's sendfile writes to (Twisted's buffer
        # empty), and whether the kernel refused it there once.
        self._out_fd = -1
        self._sendfile_refused = False
        # Received while reading was paused: data, or None for EOF.
        self._held: deque[bytes | None] = deque()
        self._delivery: Any = None
        # The first error: a protocol callback's exception, or an I/O error.
        self._error: BaseException | None = None
        #: Called with this transport once its protocol has had connection_made.
        self.on_made: list[Callable[[TwistedTransport], object]] = []
        #: Called with this transport once Twisted made the connection, whether
        #: the protocol could be made or not (``_made`` says).
        self.on_started: list[Callable[[TwistedTransport], object]] = []
        #: Called with this transport once the connection has ended.
        self.on_lost: list[Callable[[TwistedTransport], object]] = []

    @property
    def side(self) -> TwistedSide:
        """The Twisted protocol to hand Twisted for this connection."""
        return self._side

    @property
    def twisted_transport(self) -> Any:
        """The Twisted transport underneath (None until Twisted made the connection)."""
        return self._twisted

    # ------------------------------------------------------- BaseTransport

    def close(self) -> None:
        """Flush, then close; ``connection_lost(None)`` follows on a later turn."""
        lifecycle = self._lifecycle
        if lifecycle.closing:
            return
        lifecycle.apply(Event.CLOSE)
        self._writable = False
        self._stop_delivering()
        if self._link is not Link.UNMADE and not self._queue:  # else once the queue is handed over
            self._lose_connection()

    # ------------------------------------------------------- ReadTransport

    def _pause_source(self) -> None:
        # Twisted stops reading, and the peer is slowed by the kernel.
        if self._twisted is not None:
            self._twisted.pauseProducing()

    def _resume_source(self) -> None:
        if self._twisted is not None and self._lifecycle.wants_data:  # not at EOF
            self._twisted.resumeProducing()

    def _soon_deliver(self, callback: Callable[[], object]) -> Any:
        return self._soon(callback)

    def _hand_over(self, data: bytes) -> None:
        self._protocol.data_received(data)

    # ------------------------------------------------------ WriteTransport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; Twisted sends it once the descriptor is writable."""
        if self._writable and type(data) is bytes and not self._queue:
            held = self._in_twisted + len(data)
            if held <= CHUNK:
                self._in_twisted = held
                self._twisted.write(data)
                if held > self._flow.high:
                    self._check_pause()
                return
        self._write_slowly(data)

    def write_eof(self) -> None:
        """Half-close once what was written is sent; reading goes on."""
        lifecycle = self._lifecycle
        if not lifecycle.writable:  # EOF asked already, or closing
            return
        if not self._can_write_eof:
            raise NotImplementedError("this transport cannot half-close (see can_write_eof)")
        lifecycle.apply(Event.WRITE_EOF)
        self._writable = False
        if self._link is not Link.UNMADE and not self._queue:  # else once the queue is handed over
            self._send_eof()

    def can_write_eof(self) -> bool:
        """Sockets and pipe pairs can half-close; a single descriptor (a PTY) cannot."""
        return self._can_write_eof

    def abort(self) -> None:
        """Drop what is queued and end now; a TCP peer gets a reset."""
        if self._lifecycle.lost:
            return
        # A close() whose bytes Twisted has all sent is as good as done:
        # resetting now could destroy data the peer has not read yet.
        flushed = self._link is Link.LET_GO and self.get_write_buffer_size() == 0
        self._drop()
        if self._link is not Link.UNMADE and not flushed:
            self._abort_twisted()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules, weft's ArgumentError)."""
        self._flow.set_limits(high, low)
        if self._made:
            self._check_pause()

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet sent: the driver's queue and what Twisted holds
        (to within one chunk of what it has sent since it last asked for more)."""
        if self._lifecycle.dropped:
            return 0
        return self._queued + self._in_twisted

    def write_file(self, region: FileRegion) -> None:
        """Queue ``region`` after what was written (see the contract); it is read a
        chunk at a time as Twisted asks for more, and closed once sent."""
        lifecycle = self._lifecycle
        if lifecycle.eof_written:
            region.close()
            raise WriteAfterEofError("write_file() after write_eof()")
        if lifecycle.closing or not len(region):
            region.close()
            return
        self._queue.append(region)
        self._queued += len(region)
        self._check_pause()
        self._feed()

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<TwistedTransport {self._extra.get('peername')!r} {state}>"

    # --------------------------------------------------------- writing

    def _write_slowly(self, data: bytes | bytearray | memoryview) -> None:
        admitted = self._admit(data)  # TypeError, WriteAfterEofError; None when closing
        if admitted is None:
            return
        self._queue.append(admitted)
        self._queued += len(admitted)
        if self._link is Link.PRODUCING:
            self._feed()
        self._check_pause()

    def _feed(self, *, writable: bool = False) -> None:
        """Hand Twisted what is queued, up to :data:`CHUNK` since it last asked
        (``writable``: Twisted asked, its descriptor is writable); once all is
        handed over, end the output if that was asked for."""
        if self._link is not Link.PRODUCING or self._lifecycle.dropped:
            return
        queue, write = self._queue, self._twisted.write
        while queue and self._in_twisted < CHUNK:
            room = CHUNK - self._in_twisted
            head = queue[0]
            if isinstance(head, (bytes, memoryview)):
                if len(head) <= room:
                    queue.popleft()
                    piece = head if type(head) is bytes else bytes(head)
                else:
                    view = head if isinstance(head, memoryview) else memoryview(head)
                    piece = bytes(view[:room])
                    queue[0] = view[room:]
            elif not self._sendfile_refused:
                if self._in_twisted:
                    return  # the region waits for what Twisted holds before it to go out
                if not writable:
                    # Sent when the descriptor is writable, as on weft's reactor
                    # (write_file itself only queues, and counts): Twisted's
                    # doWrite, with nothing of its own to send, asks its producer.
                    self._twisted.startWriting()
                    return
                outcome = self._send_file(head)
                if outcome is _Sendfile.WAIT:
                    self._twisted.startWriting()  # on from _drained, once writable
                    return
                if outcome is _Sendfile.FAILED:
                    return
                continue  # sent: on to what follows; refused: read it instead
            else:
                try:
                    piece = head.read(room)
                except OSError as exc:
                    self._fail(exc)
                    return
                if not len(head):
                    queue.popleft()
                    head.close()
            self._queued -= len(piece)
            self._in_twisted += len(piece)
            write(piece)
        if queue:
            return
        lifecycle = self._lifecycle
        if lifecycle.closing:
            self._lose_connection()
        elif lifecycle.write_state is WriteState.EOF_PENDING:
            self._send_eof()

    def _send_file(self, region: FileRegion) -> _Sendfile:
        """One ``sendfile`` from ``region`` (at the head of the queue, Twisted's
        buffer empty) straight to the descriptor."""
        try:
            sent = send_from_file(self._out_fd, region)
        except (BlockingIOError, InterruptedError):
            return _Sendfile.WAIT
        except OSError as exc:
            if sendfile_refused(exc):
                self._sendfile_refused = True
                return _Sendfile.REFUSED
            self._fail(exc)
            return _Sendfile.FAILED
        self._queued -= sent
        if len(region):
            return _Sendfile.WAIT
        self._queue.popleft()
        region.close()
        return _Sendfile.SENT

    def _send_eof(self) -> None:
        self._lifecycle.apply(Event.EOF_SENT)
        self._unregister()
        self._link = Link.OUTPUT_ENDED
        self._twisted.loseWriteConnection()

    def _lose_connection(self) -> None:
        if self._link is Link.LET_GO:
            return
        self._unregister()
        self._link = Link.LET_GO
        self._twisted.loseConnection()

    def _unregister(self) -> None:
        """Stop being Twisted's producer: it would never end the connection while one is registered."""
        if self._link is Link.PRODUCING:
            self._twisted.unregisterProducer()

    def _abort_twisted(self) -> None:
        self._link = Link.LET_GO
        twisted = self._twisted
        if twisted is not None and self._side.connected:
            twisted.abortConnection()

    # ------------------------------------------------- Twisted's events

    def _start(self, twisted: Any) -> None:
        """Twisted made the connection: make the protocol, then connection_made."""
        self._twisted = twisted
        self._take_names(twisted)
        fileno = getattr(twisted, "fileno", None)
        self._out_fd = fileno() if callable(fileno) else -1
        self._sendfile_refused = self._out_fd < 0
        try:
            protocol = self._factory()
        except Exception as exc:
            if self._log_factory_errors:
                logger.error("the protocol factory raised; closing the connection", exc_info=exc)
            self._error = exc
            self._drop()
            self._abort_twisted()
            self._started_hooks()
            return
        self._protocol = protocol
        self._link = Link.PRODUCING
        twisted.registerProducer(self._side, False)
        if self._extra.get("socket") is not None and hasattr(twisted, "setTcpNoDelay"):
            sock = self._extra["socket"]
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                twisted.setTcpNoDelay(True)  # as every weft driver's TCP
        self._writable = self._lifecycle.writable
        self._made = True
        for hook in self.on_made:
            hook(self)
        log_opened(logger, self)
        try:
            protocol.connection_made(self)
        except Exception as exc:
            self._callback_failed(exc)
        self._started_hooks()

    def _started_hooks(self) -> None:
        hooks, self.on_started = self.on_started, []
        for hook in hooks:
            hook(self)

    def _take_names(self, twisted: Any) -> None:
        """The socket and its names, kept for after the end (Twisted forgets the socket)."""
        get_handle = getattr(twisted, "getHandle", None)
        sock = get_handle() if callable(get_handle) else None
        if not isinstance(sock, socket.socket):
            return
        self._extra.setdefault("socket", sock)
        self._extra.setdefault("sockname", name_or_none(sock.getsockname))
        self._extra.setdefault("peername", name_or_none(sock.getpeername))

    def _hold(self, data: bytes) -> None:
        """Data came while reading was paused: keep it for resume_reading."""
        if self._lifecycle.closing:
            return
        self._held.append(data)
        if self._twisted is not None and self._lifecycle.paused:
            self._twisted.pauseProducing()  # a pause Twisted had not applied yet

    def _eof_sent(self) -> None:
        """Twisted sent the EOF: everything before it went out."""
        self._in_twisted = 0
        self._check_resume()

    def _drained(self) -> None:
        """Twisted's buffer is empty (its pull producer's resumeProducing)."""
        self._in_twisted = 0
        if self._queue:
            self._feed(writable=True)
        if self._flow.paused and self._made:
            self._check_resume()

    def _twisted_lost(self, reason: Failure) -> None:
        """Twisted's connectionLost: the connection is over; connection_lost follows on a later turn."""
        lifecycle = self._lifecycle
        if lifecycle.lost:
            return
        exc = self._error if self._error is not None else self._exception_for(reason)
        self._clear()
        lifecycle.apply(Event.LOST)
        self._writable = False
        self._soon(self._connection_lost, exc)

    def _exception_for(self, reason: Failure) -> BaseException | None:
        """What connection_lost gets for Twisted's ``reason``: None for a clean
        end (a close or an abort on either side), a weft-style error otherwise."""
        value = reason.value
        if isinstance(value, (twisted_error.ConnectionDone, twisted_error.ConnectionAborted)):
            return None
        if isinstance(value, twisted_error.ConnectionLost):
            # Twisted drops the errno (a reset, a broken pipe) on the way.
            if self._carrier == "pipes":
                return BrokenPipeError(errno.EPIPE, f"the pipe broke: {value}")
            return ConnectionResetError(errno.ECONNRESET, f"the connection was lost: {value}")
        return value if isinstance(value, BaseException) else None

    def _connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._made:
                log_closed(logger, self, exc)
                try:
                    self._protocol.connection_lost(exc)
                except Exception as failure:
                    logger.error("exception in connection_lost of %r", self._protocol, exc_info=failure)
        finally:
            hooks, self.on_lost = self.on_lost, []
            for hook in hooks:
                hook(self)

    # -------------------------------------------------------- flow control

    def _check_pause(self) -> None:
        if not self._made or not self._flow.should_pause(self.get_write_buffer_size()):
            return
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._callback_failed(exc)

    def _check_resume(self) -> None:
        if not self._flow.should_resume(self.get_write_buffer_size()):
            return
        try:
            self._protocol.resume_writing()
        except Exception as exc:
            self._callback_failed(exc)

    # ------------------------------------------------------------- endings

    def _callback_failed(self, exc: Exception) -> None:
        """A protocol callback raised: log it and end this connection with it."""
        logger.error("exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc)
        if self._lifecycle.lost:
            return
        if self._error is None:
            self._error = exc
        self._drop()
        if self._link is not Link.UNMADE:
            self._abort_twisted()

    def _fail(self, exc: BaseException) -> None:
        """An I/O error of the driver's own (a file region that cannot be read): end with it."""
        if self._error is None:
            self._error = exc
        if not self._lifecycle.dropped:
            self._drop()
            self._abort_twisted()

    def _drop(self) -> None:
        """Mark the connection as going away at once: nothing queued, nothing delivered."""
        if not self._lifecycle.dropped:
            self._lifecycle.apply(Event.ABORT)
        self._clear()

    def _clear(self) -> None:
        self._writable = False
        queue = self._queue
        while queue:
            item = queue.popleft()
            if not isinstance(item, (bytes, memoryview)):
                item.close()
        self._queued = 0
        self._in_twisted = 0
        self._stop_delivering()
