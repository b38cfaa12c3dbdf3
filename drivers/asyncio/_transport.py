"""The weft transport over asyncio's (or uvloop's) transports.

asyncio's transports use weft's names but not all of weft's promises, so a
weft protocol is never handed one directly.  It gets an
:class:`AsyncioTransport`, which keeps the promises; asyncio talks to a
small :class:`_Side` protocol that forwards to it.  What the adapter
changes, and why:

* ``get_extra_info("clock")`` is a weft clock bound to the connection
  (asyncio has no such thing): a timer that raises ends this connection.
* Writes after ``close()``, ``abort()`` or the end of the connection are
  discarded.  asyncio appends them to its buffer and sends them when
  ``close()`` found the buffer non-empty; uvloop raises once the connection
  is gone.
* ``write()`` after ``write_eof()`` raises weft's ``WriteAfterEofError``.
* ``bytearray`` and ``memoryview`` writes are copied: asyncio (3.12 on) and
  uvloop keep a reference and would send whatever the caller changed later.
* An exception raised by any protocol callback (``connection_made``,
  ``pause_writing`` and timers included, which asyncio only logs) is logged
  and ends that connection with the exception, resetting a TCP peer.
* ``abort()`` resets a TCP peer (``SO_LINGER`` 0), as the reactor does;
  asyncio's abort sends a plain FIN.
* ``pause_reading()`` holds back data: asyncio and uvloop both ignore a
  pause made inside ``connection_made`` and start reading anyway; data that
  arrives while paused is kept (and the pause applied again) until
  ``resume_reading()``.
* ``set_write_buffer_limits`` raises weft's ``ArgumentError``; peer and
  socket names are kept after the end (uvloop forgets them).
* ``write_file`` sends a file region with ``os.sendfile`` (asyncio's
  ``loop.sendfile`` works on selector-loop sockets only, and uvloop has
  none): see :mod:`weft.drivers.asyncio._file_sender`.  Flow control then
  counts what waits there too, so ``pause_writing``/``resume_writing``
  come from the adapter's own water marks, fed by asyncio's events and by
  the sender.

* asyncio's own helpers take it as one of theirs: it is an
  ``asyncio.Transport`` (through asyncio's ``_FlowControlMixin``, which
  ``loop.sendfile``'s fallback insists on), says ``_start_tls_compatible``
  for ``loop.start_tls`` (and so ``StreamWriter.start_tls``), offers
  ``loop.sendfile`` its fallback mode (asyncio's native mode works only on
  its own selector transports), delivers to an ``asyncio.BufferedProtocol``
  (asyncio's TLS protocol is one) through ``get_buffer``/``buffer_updated``,
  and ends with ``_force_close(exc)`` when asyncio's TLS protocol asks.
  See :mod:`weft.drivers.asyncio._asyncio_helpers`.

One :class:`AsyncioTransport` may sit over one asyncio transport (a socket)
or two (a read pipe and a write pipe, see :mod:`weft.drivers.asyncio._pipes`):
each is a *side*, and the connection ends when every side has.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from weft.drivers._core.connection_clock import ConnectionClock
from weft.drivers._core.connection_log import log_closed, log_opened
from weft.drivers._core.held_delivery import HeldDelivery
from weft.drivers._core.lifecycle import Event, TransportLifecycle
from weft.drivers._core.socket_defaults import LINGER_ZERO
from weft.drivers.asyncio._asyncio_helpers import SENDFILE_FALLBACK, FlowControlMixin, receiver_for
from weft.drivers.asyncio._clock import LoopTimers
from weft.drivers.asyncio._file_sender import FileSender
from weft.protocols._flow_control import DEFAULT_HIGH_WATER, WriteFlowControl
from weft.protocols.contract import FileRegion
from weft.protocols.errors import WriteAfterEofError

__all__ = ["AsyncioTransport", "Role"]

logger = logging.getLogger("weft.drivers.asyncio")

#: What an asyncio transport does for a weft connection.
Role = Literal["both", "read", "write"]

_DEFAULT_LIMITS = (DEFAULT_HIGH_WATER // 4, DEFAULT_HIGH_WATER)


class _Side(asyncio.Protocol):
    """The asyncio protocol of one asyncio transport: forwards to its weft transport.

    ``data_received`` is the hot path: one check, one call.
    """

    __slots__ = ("_owner", "role")

    def __init__(self, owner: AsyncioTransport, role: Role) -> None:
        self._owner = owner
        self.role = role

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio made this side: the weft connection starts once every side is made."""
        self._owner._side_made(self, transport)

    def data_received(self, data: bytes) -> None:
        """Hand ``data`` to the weft protocol (or hold it, while reading is paused)."""
        owner = self._owner
        if not owner._lifecycle.reading:  # paused, or closing
            owner._hold(data)
            return
        try:
            owner._receiver.data_received(data)
        except Exception as exc:
            owner._callback_failed(exc)

    def eof_received(self) -> bool:
        """The peer sent EOF.  True: the weft transport closes itself, so that
        writes after that close are discarded, not flushed by asyncio.

        On a write pipe it means something else: uvloop says so when the
        pipe's reader went away.  That side then closes itself (false), and
        its connection_lost tells the weft transport.
        """
        if self.role == "write":
            return False
        self._owner._eof()
        return True

    def pause_writing(self) -> None:
        """Pass it on."""
        self._owner._pause_writing()

    def resume_writing(self) -> None:
        """Pass it on."""
        self._owner._resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        """This side is gone; the weft connection ends with its last side."""
        self._owner._side_lost(self, exc)


class AsyncioTransport(HeldDelivery, FlowControlMixin):
    """A :class:`weft.protocols.contract.Transport` over asyncio transports.

    Made by :class:`~weft.drivers.asyncio._runtime.AsyncioRuntime` (listening,
    connecting, ``connect_pipes``), never by applications.  The protocol
    factory is called when the connection is made, as on the reactor.

    It is also an ``asyncio.Transport``, which asyncio's ``loop.start_tls``
    and ``loop.sendfile`` accept (on asyncio's own loop: uvloop's
    ``start_tls`` takes only uvloop's transports, and uvloop has no
    ``sendfile``).  weft's methods come first; asyncio's base adds nothing
    but the class.
    """

    # Asked by asyncio's loop.start_tls (any transport with reading, writing
    # and set_protocol will do) and loop.sendfile (asyncio's native mode
    # works on its own selector transports alone: the fallback it is).
    _start_tls_compatible = True
    _sendfile_compatible = SENDFILE_FALLBACK

    # ``_extra`` and ``_loop`` are slots of asyncio's bases.
    __slots__ = (
        "_adopting_pause",
        "_can_write_eof",
        "_delivery",
        "_early",
        "_error",
        "_expected_sides",
        "_factory",
        "_files",
        "_flow",
        "_held",
        "_in_asyncio_resume",
        "_lifecycle",
        "_log_factory_errors",
        "_output_gone",
        "_made",
        "_pause_pending",
        "_protocol",
        "_reader",
        "_receiver",
        "_told_paused",
        "_sides",
        "_sides_lost",
        "_sides_made",
        "_snapshot",
        "_started",
        "_writable",
        "_write_eof_closes",
        "_writer",
        "on_lost",
        "on_made",
        "on_output_ended",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timers: LoopTimers,
        factory: Callable[[], Any],
        *,
        roles: tuple[Role, ...] = ("both",),
        extra: dict[str, Any] | None = None,
        snapshot: tuple[str, ...] = ("peername", "sockname", "socket"),
        write_eof_closes: bool = False,
        can_write_eof: bool = True,
        log_factory_errors: bool = True,
    ) -> None:
        self._loop = loop
        self._in_asyncio_resume = False
        self._factory = factory
        self._protocol: Any = None
        # What data_received is called on: the protocol, or a feed into an
        # asyncio.BufferedProtocol's buffers (set with the protocol).
        self._receiver: Any = None
        # The protocol that heard pause_writing and not yet resume_writing
        # (resume_writing goes to it alone), and whether someone just read
        # _protocol_paused as true, to take the pause over with set_protocol.
        self._told_paused: Any = None
        self._adopting_pause = False
        self._extra: dict[str, Any] = {**(extra or {}), "clock": ConnectionClock(timers, self._run_callback)}
        self._flow = WriteFlowControl()
        self._reader: Any = None  # the asyncio transport read from (None once gone)
        self._writer: Any = None  # the asyncio transport written to (None once gone)
        self._sides = [_Side(self, role) for role in roles]
        self._expected_sides = len(roles)
        self._sides_made = 0
        self._sides_lost = 0
        # Facts asked of asyncio once the connection is up, and kept after
        # it ends (uvloop forgets them with its socket).
        self._snapshot = snapshot
        # A pipe's write side half-closes by closing; a socket shuts down.
        self._write_eof_closes = write_eof_closes
        self._can_write_eof = can_write_eof
        self._log_factory_errors = log_factory_errors
        self._started = False  # every side is made (the factory was called)
        self._made = False  # the protocol's connection_made was called
        self._lifecycle = TransportLifecycle()
        # The fast path of write(): started, no file region waiting, and the
        # lifecycle writable (no close, abort or write_eof).
        self._writable = False
        # The reader of a write pipe went away: the next write fails.  (The
        # asyncio driver's own: a reactor's write meets EPIPE itself.)
        self._output_gone = False
        # Received while reading was paused: data, or None for EOF.
        self._held: deque[bytes | None] = deque()
        self._delivery: asyncio.Handle | None = None
        # Written before the connection was up (connect_pipes hands the
        # transport out at once, but asyncio sets pipes up on the loop).
        self._early: list[bytes] = []
        # pause_writing came while the protocol had not had connection_made.
        self._pause_pending = False
        # The first error: a protocol callback's exception, or an I/O error.
        self._error: BaseException | None = None
        # From the first file region queued until all is sent: the output's
        # detour past asyncio's transport (None otherwise).
        self._files: FileSender | None = None
        #: Called with this transport once its protocol has had connection_made.
        self.on_made: list[Callable[[AsyncioTransport], object]] = []
        #: Called with this transport once the connection has ended.
        self.on_lost: list[Callable[[AsyncioTransport], object]] = []
        #: Called once a write side that write_eof closed is gone (pipes).
        self.on_output_ended: list[Callable[[], object]] = []

    def side(self, role: Role) -> asyncio.Protocol:
        """The asyncio protocol to hand asyncio for the side that plays ``role``."""
        for side in self._sides:
            if side.role == role:
                return side
        raise LookupError(role)

    @property
    def started(self) -> bool:
        """Whether every side is up and the protocol factory was called."""
        return self._started

    # ------------------------------------------------------- BaseTransport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"clock"``, ``"peername"``, ``"sockname"``, ``"socket"``, ``"pipe"``, or asyncio's own."""
        try:
            return self._extra[name]
        except KeyError:
            pass
        underlying = self._reader if self._reader is not None else self._writer
        if underlying is None:
            return default
        try:
            return underlying.get_extra_info(name, default)
        except OSError:  # uvloop asks the socket, which may not be one (a pipe)
            return default

    def close(self) -> None:
        """Flush, then close; ``connection_lost(None)`` follows on a later turn."""
        if self._lifecycle.closing:
            return
        self._lifecycle.apply(Event.CLOSE)
        self._writable = False
        self._stop_delivering()
        if self._started and self._files is None:  # else once the files are sent
            self._close_sides()

    def set_protocol(self, protocol: Any) -> None:
        """Hand the connection to ``protocol`` (an ``asyncio.BufferedProtocol``
        too: it gets its data through ``get_buffer``/``buffer_updated``).

        Flow control stays in pairs for each protocol: a protocol set while
        writing is paused does not hear ``resume_writing`` for a pause it
        never heard, unless it takes the pause over as asyncio's own helpers
        do, by reading ``_protocol_paused`` first (``loop.sendfile``'s
        fallback does).
        """
        if self._adopting_pause:
            self._adopting_pause = False
            if self._flow.paused:
                self._told_paused = protocol
        self._protocol = protocol
        self._receiver = receiver_for(protocol, feeds=self._feeds, rest=self._receive_rest)

    @property
    def _protocol_paused(self) -> bool:
        """asyncio's name for whether writing is paused (``loop.sendfile``'s
        fallback asks before it takes the connection over)."""
        paused = self._flow.paused
        self._adopting_pause = paused
        return paused

    def _force_close(self, exc: BaseException | None) -> None:
        """asyncio's TLS protocol ends the connection this way: at once, with ``exc``."""
        if exc is None:
            self.abort()
        else:
            self._fail(exc)

    def _feeds(self, protocol: Any) -> bool:
        """Whether data still goes to ``protocol`` (a BufferedProtocol, midway through a chunk)."""
        return self._lifecycle.reading and self._protocol is protocol

    def _receive_rest(self, data: bytes) -> None:
        """What a BufferedProtocol paused or handed on midway through a chunk:
        first in line for when reading resumes, or the new protocol's now."""
        if self._lifecycle.reading:
            self._receiver.data_received(data)
        elif not self._lifecycle.closing:
            self._held.appendleft(data)

    # ------------------------------------------------------- ReadTransport

    def _pause_source(self) -> None:
        # The peer is slowed by the kernel's flow control.
        if self._reader is not None:
            self._reader.pause_reading()

    def _resume_source(self) -> None:
        if self._reader is not None and self._lifecycle.wants_data:  # not at EOF
            self._reader.resume_reading()

    def _soon_deliver(self, callback: Callable[[], object]) -> asyncio.Handle:
        return self._loop.call_soon(callback)

    def _hand_over(self, data: bytes) -> None:
        self._receiver.data_received(data)

    # ------------------------------------------------------ WriteTransport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; asyncio sends it now if the kernel takes it."""
        if self._writable and type(data) is bytes:
            self._writer.write(data)
        else:
            self._write_slowly(data)

    def write_eof(self) -> None:
        """Half-close once what was written is sent; reading goes on."""
        if not self._lifecycle.writable:  # EOF asked already, or closing
            return
        if not self._can_write_eof:
            raise NotImplementedError("this transport cannot half-close (see can_write_eof)")
        self._lifecycle.apply(Event.WRITE_EOF)
        self._writable = False
        if self._started and self._files is None:  # else once the files are sent
            self._send_eof()

    def can_write_eof(self) -> bool:
        """Sockets and pipe pairs can half-close; a single descriptor (a PTY) cannot."""
        return self._can_write_eof

    def abort(self) -> None:
        """Drop what is buffered and close now; a TCP peer gets a reset."""
        if self._lifecycle.lost:
            return
        # A close() that has flushed everything is as good as done: resetting
        # now could destroy data the peer has not read yet.
        flushed = self._lifecycle.closing and self.get_write_buffer_size() == 0
        self._drop()
        if self._started:
            if not flushed:
                self._reset_peer()
            self._abort_sides()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the water marks (asyncio's defaults and rules, weft's ArgumentError)."""
        self._flow.set_limits(high, low)
        if self._writer is not None:
            low, high = self._flow.limits()
            self._writer.set_write_buffer_limits(high=high, low=low)
        if self._files is not None:  # asyncio does not know what waits there
            self._check_pause()

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the kernel (what is left of file regions included)."""
        if self._lifecycle.dropped:
            return 0
        if self._writer is None:
            size = sum(map(len, self._early))
        else:
            size = int(self._writer.get_write_buffer_size())
        if self._files is not None:
            size += self._files.size
        return size

    def write_file(self, region: FileRegion) -> None:
        """Queue ``region`` after what was written (see the contract); it is sent
        with ``os.sendfile`` once asyncio's buffer is empty (see
        :mod:`weft.drivers.asyncio._file_sender`)."""
        if self._lifecycle.eof_written:
            region.close()
            raise WriteAfterEofError("write_file() after write_eof()")
        if self._lifecycle.closing or not len(region):
            region.close()
            return
        if self._output_gone:
            region.close()
            self._fail(BrokenPipeError(errno.EPIPE, "the reader of the write pipe is gone"))
            return
        files = self._files
        if files is None:
            # The detour starts: writes queue behind the region from now on.
            files = self._files = FileSender(self._loop, self)
            self._writable = False
        files.add(region)
        self._check_pause()
        if self._started and self._files is files and not files.started:
            files.start(self._writer, at_once=not self._flow.paused)

    def __repr__(self) -> str:
        lifecycle = self._lifecycle
        state = "lost" if lifecycle.lost else "closing" if lifecycle.closing else "open"
        return f"<AsyncioTransport {self._extra.get('peername', self._extra.get('pipe'))!r} {state}>"

    # --------------------------------------------------------- writing

    def _write_slowly(self, data: bytes | bytearray | memoryview) -> None:
        admitted = self._admit(data)
        if admitted is None:
            return
        if self._output_gone:
            self._fail(BrokenPipeError(errno.EPIPE, "the reader of the write pipe is gone"))
            return
        data = admitted
        if self._files is not None:  # behind a file region
            self._files.add(data)
            self._check_pause()
        elif self._started:
            self._writer.write(data)
        else:
            self._early.append(data)

    def _send_eof(self) -> None:
        if self._writer is None:
            return
        # Handed to asyncio, which sends it after what it holds.
        self._lifecycle.apply(Event.EOF_SENT)
        if self._write_eof_closes:
            self._writer.close()  # a pipe says EOF by closing: asyncio flushes first
        else:
            self._writer.write_eof()

    # ------------------------------------------------- asyncio's side events

    def _side_made(self, side: _Side, transport: asyncio.BaseTransport) -> None:
        if side.role != "write":
            self._reader = transport
        if side.role != "read":
            self._writer = transport
        self._sides_made += 1
        if self._sides_made == self._expected_sides:
            self._start()

    def _start(self) -> None:
        """Every side is up: make the protocol, then connection_made."""
        self._started = True
        underlying = self._reader if self._reader is not None else self._writer
        for name in self._snapshot:
            if name not in self._extra:
                self._extra[name] = underlying.get_extra_info(name)
        try:
            self.set_protocol(self._factory())
        except Exception as exc:
            if self._log_factory_errors:
                logger.error("the protocol factory raised; closing the connection", exc_info=exc)
            self._error = exc
            self._drop()
            self._abort_sides()
            return
        if self._flow.limits() != _DEFAULT_LIMITS and self._writer is not None:
            low, high = self._flow.limits()
            self._writer.set_write_buffer_limits(high=high, low=low)
        early, self._early = self._early, []
        for data in early:  # written before: they go first
            self._writer.write(data)
        # What was asked before the connection was up is done once the
        # protocol has had connection_made.
        lifecycle = self._lifecycle
        asked = (
            "abort"
            if lifecycle.dropped
            else "close"
            if lifecycle.closing
            else "eof"
            if lifecycle.eof_written
            else None
        )
        self._writable = asked is None and self._files is None
        self._made = True
        for hook in self.on_made:
            hook(self)
        log_opened(logger, self)
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._callback_failed(exc)
            return
        if self._pause_pending and not lifecycle.lost:
            self._pause_pending = False
            self._told_paused = self._protocol
            try:
                self._protocol.pause_writing()
            except Exception as exc:
                self._callback_failed(exc)
        if asked == "abort":
            self._abort_sides()
        elif self._files is not None:
            # A region written before: it goes now (a close or EOF asked
            # for follows it).  One written in connection_made has started.
            if not self._files.started:
                self._files.start(self._writer, at_once=not self._flow.paused)
        elif asked == "close":
            self._close_sides()
        elif asked == "eof":
            self._send_eof()

    def _hold(self, data: bytes) -> None:
        """Data came while reading was paused: keep it for resume_reading."""
        if self._lifecycle.closing:
            return
        self._held.append(data)
        # Only a pause asyncio did not apply gets here: one made inside
        # connection_made, or before a pipe was set up (asyncio and uvloop
        # start reading after connection_made regardless).  Apply it now.
        reader = self._reader
        if reader is not None:
            reader.resume_reading()
            reader.pause_reading()

    def _pause_writing(self) -> None:
        """asyncio's buffer went over the high-water mark."""
        self._check_pause()

    def _resume_writing(self) -> None:
        """asyncio's buffer drained to the low-water mark.

        asyncio calls this from inside its write-ready handler, which goes on
        once it returns: with its buffer empty and a close pending, it ends
        the connection itself.  Aborting its transport from in here would
        have it end the connection twice, the second time on a transport
        already torn down (CPython 3.11's ``_write_ready`` does not look
        again after resuming the protocol), so a protocol that raises here
        has its sides aborted on the loop's next turn instead.
        """
        self._in_asyncio_resume = True
        try:
            self._check_resume()
        finally:
            self._in_asyncio_resume = False

    # Flow control is the adapter's own water marks over everything that
    # waits (asyncio's buffer and the file sender's queue); asyncio's events
    # and the sender's progress are when to look.  Without file regions it
    # agrees with asyncio's own events exactly: the marks are the same.

    def _check_pause(self) -> None:
        if not self._flow.should_pause(self.get_write_buffer_size()):
            return
        if not self._made:
            self._pause_pending = True
            return
        self._told_paused = self._protocol
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._callback_failed(exc)

    def _check_resume(self) -> None:
        if not self._flow.should_resume(self.get_write_buffer_size()):
            return
        if not self._made:
            self._pause_pending = False
            return
        told, self._told_paused = self._told_paused, None
        if told is not self._protocol:  # set since, and never heard this pause
            return
        try:
            self._protocol.resume_writing()
        except Exception as exc:
            self._callback_failed(exc)

    # ------------------------------------------------- the file sender's events

    def _file_progress(self) -> None:
        self._check_resume()

    def _file_failed(self, exc: OSError) -> None:
        self._fail(exc)

    def _files_sent(self) -> None:
        """The detour is over: writes go to asyncio again, and what was asked
        meanwhile (a close, an EOF) is done now."""
        self._files = None
        lifecycle = self._lifecycle
        self._writable = self._started and lifecycle.writable and not self._output_gone
        if lifecycle.closing:
            self._close_sides()
        elif lifecycle.eof_written:
            self._send_eof()
        self._check_resume()

    def _side_lost(self, side: _Side, exc: BaseException | None) -> None:
        if side.role != "write":
            self._reader = None
        if side.role != "read":
            self._writer = None
        self._sides_lost += 1
        if side.role == "write" and self._lifecycle.eof_written:
            for hook in self.on_output_ended:
                hook()
        if exc is None and side.role == "write" and self._lifecycle.writable:
            # A write pipe whose reader went away (asyncio watches for that).
            # Reading goes on, as on the reactor: what the peer sent before
            # it left is still to come.  The next write ends the connection.
            self._output_gone = True
            self._writable = False
        if exc is not None:
            self._fail(exc)
        if self._sides_lost == self._expected_sides:
            self._finish()

    # ------------------------------------------------------------- endings

    def _callback_failed(self, exc: Exception) -> None:
        """A protocol callback raised: log it and end this connection with it."""
        logger.error("exception in a callback of %r; closing %r", self._protocol, self, exc_info=exc)
        if self._lifecycle.lost:
            return
        if self._error is None:
            self._error = exc
        self._drop()
        if self._started:
            self._reset_peer()
            if self._in_asyncio_resume:
                self._loop.call_soon(self._abort_sides)
            else:
                self._abort_sides()

    def _fail(self, exc: BaseException) -> None:
        """An I/O error: end the connection with it (what is left is dropped)."""
        if self._error is None:
            self._error = exc
        if not self._lifecycle.dropped:
            self._drop()
            self._abort_sides()

    def _abandon(self) -> None:
        """Setting the connection up failed: close whatever side is up."""
        self._drop()
        self._abort_sides()

    def _drop(self) -> None:
        """Mark the connection as going away at once: nothing buffered, nothing delivered."""
        if not self._lifecycle.dropped:
            self._lifecycle.apply(Event.ABORT)
        self._writable = False
        self._early.clear()
        files, self._files = self._files, None
        if files is not None:
            files.drop()
        self._stop_delivering()

    def _close_sides(self) -> None:
        reader, writer = self._reader, self._writer
        if writer is not None and not _ending_by_itself(writer):
            writer.close()
        if reader is not None and reader is not writer:
            reader.close()

    def _abort_sides(self) -> None:
        writer = self._writer
        if writer is not None and not _ending_by_itself(writer):
            writer.abort()
        # A read pipe cannot abort; closing it is immediate anyway.
        if self._reader is not None and self._reader is not writer:
            self._reader.close()

    def _reset_peer(self) -> None:
        sock = self._extra.get("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
            except OSError:
                pass  # already closed: nothing left to reset

    def _finish(self) -> None:
        if self._lifecycle.lost:
            return
        self._lifecycle.apply(Event.LOST)
        self._drop()
        try:
            if self._made:
                log_closed(logger, self, self._error)
                try:
                    self._protocol.connection_lost(self._error)
                except Exception as exc:
                    logger.error("exception in connection_lost of %r", self._protocol, exc_info=exc)
        finally:
            for hook in self.on_lost:
                hook(self)
            self.on_lost.clear()


def _ending_by_itself(side: asyncio.WriteTransport) -> bool:
    """Whether asyncio's transport is closing with nothing left to write: it
    has ended the connection, or will on its own (its ``connection_lost`` is
    on the way), so there is nothing to drop and nothing to end.  Closing or
    aborting it again would have a write pipe (``write_eof()`` with an empty
    buffer already scheduled its end; CPython 3.11 has no guard against a
    second) end the connection twice, the second time on a torn-down
    transport."""
    return side.is_closing() and side.get_write_buffer_size() == 0
