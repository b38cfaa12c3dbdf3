"""The protocol/transport contract: the one module to read first.

A *protocol* turns bytes into meaning and meaning into bytes.  It never does
I/O itself.  A *transport* is handed to it by a driver and moves its bytes to
and from the world: a socket, a pipe, a PTY, a TLS session, or a test's memory.

The names are asyncio's, on purpose, so that

* a weft protocol runs on an asyncio transport unchanged, and
* an ``asyncio.Protocol`` runs on a weft transport unchanged.

Call order, guaranteed by every driver::

    connection_made  (data_received)*  [eof_received]  connection_lost

``pause_writing`` and ``resume_writing`` may come at any point between
``connection_made`` and ``connection_lost``, always in alternation, starting
with ``pause_writing``.

Datagrams have a contract of their own, with asyncio's names too: a
:class:`DatagramProtocol` on a :class:`DatagramTransport` hears::

    connection_made  (datagram_received | error_received)*  connection_lost

Time reaches a protocol only through a :class:`Clock`, which the transport
offers as ``transport.get_extra_info("clock")``; :func:`clock_of` fetches it.
Every weft driver's clock is also a :class:`WallClock`: it tells the time of
day (``wall_time()``) as well as measuring time, for an HTTP ``Date``.
A plain asyncio or uvloop transport offers none, so there :func:`clock_of`
gives the clock of the asyncio loop running the connection (see
:mod:`weft.protocols._loop_clock`), and raises a clear error only where
there is neither.  Nothing else may tell a protocol the time, so every
timeout can be tested with a fake clock.

The transport classes here are :class:`typing.Protocol` classes: anything
with the right methods conforms, whoever wrote it (asyncio's transports do).
The protocol classes, :class:`BaseProtocol` and :class:`Protocol`, are the
bases a protocol subclasses, for their do-nothing defaults::

    class Hello(Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport: Transport = transport
            transport.write(b"hello\\n")

To a type checker they *are* asyncio's ``BaseProtocol`` and ``Protocol``
(subclasses of them), so a weft protocol's factory fits
``loop.create_server``, ``create_connection`` and the rest under ``mypy
--strict``; at run time they import nothing of asyncio.  asyncio's
``connection_made`` takes an ``asyncio.BaseTransport``, and an override may
not narrow that, so a protocol takes ``transport: Any`` (every driver's
transport and asyncio's fit) and keeps it as a :class:`Transport`, as above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVarTuple, Unpack, runtime_checkable
from typing import Protocol as _TypingProtocol

from weft.protocols._loop_clock import running_loop_clock
from weft.protocols.errors import NoClockError

if TYPE_CHECKING:
    # For the type checker only (nothing is imported at run time: protocols
    # never import asyncio).  asyncio's loop methods take a protocol factory
    # typed ``Callable[[], asyncio.BaseProtocol]``, a nominal class, so a weft
    # protocol fits them only if the checker sees it as a subclass; at run
    # time the bases are plain classes with the same do-nothing methods.
    from asyncio import BaseProtocol as _AsyncioBaseProtocol
    from asyncio import DatagramProtocol as _AsyncioDatagramProtocol
    from asyncio import Protocol as _AsyncioProtocol
else:
    _AsyncioBaseProtocol = _AsyncioProtocol = _AsyncioDatagramProtocol = object

__all__ = [
    "BaseProtocol",
    "BaseTransport",
    "Clock",
    "DatagramProtocol",
    "DatagramTransport",
    "FileRegion",
    "FileWriteTransport",
    "Protocol",
    "ReadTransport",
    "TimerHandle",
    "Transport",
    "WallClock",
    "WriteTransport",
    "clock_of",
    "file_writer_of",
]

_Ts = TypeVarTuple("_Ts")


# --------------------------------------------------------------------- time


@runtime_checkable
class TimerHandle(_TypingProtocol):
    """A scheduled call that can still be called off."""

    def cancel(self) -> None:
        """Call it off; harmless if it already ran or was cancelled."""

    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        ...


@runtime_checkable
class Clock(_TypingProtocol):
    """The only source of time a protocol has.

    ``now()`` is monotonic seconds (its zero means nothing; only differences
    do).  ``call_later`` runs ``callback(*args)`` once, ``delay`` seconds from
    now, on the driver's thread; calls due at the same moment run in the order
    they were scheduled.  A negative delay counts as zero.
    """

    def now(self) -> float:
        """Monotonic time in seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds; return its handle."""
        ...


@runtime_checkable
class WallClock(Clock, _TypingProtocol):
    """A :class:`Clock` that also reads the wall clock: what every weft
    driver's transports offer.

    ``wall_time()`` is seconds since the Unix epoch, UTC (what
    ``time.time()`` says, on a real driver; what the test set, on the memory
    driver's FakeClock).  It may jump when the system's time is set, so it
    is for *telling* the time (an HTTP ``Date``, a log line), never for
    measuring it: deadlines are on :meth:`Clock.now`.  A plain asyncio
    transport's clock (:func:`clock_of`'s fallback) is not a WallClock:
    asyncio's loop keeps no wall time, and protocols may not read one
    themselves, so a protocol asks with ``getattr(clock, "wall_time",
    None)`` and does without (an HTTP server then sends no ``Date``, as
    RFC 9110 asks of a server without a clock).
    """

    def wall_time(self) -> float:
        """Seconds since the Unix epoch (UTC), as ``time.time()``."""
        ...


# --------------------------------------------------------------- protocols


class BaseProtocol(_AsyncioBaseProtocol):
    """What every protocol hears from its transport (asyncio's ``BaseProtocol``, to a type checker)."""

    __slots__ = ()

    def connection_made(self, transport: Any) -> None:
        """The connection is up; ``transport`` is how to talk on it.

        ``transport`` is typed ``Any`` so that asyncio's transports and weft's
        both fit; subclasses narrow it (to :class:`Transport`, usually).
        """
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        """The connection is gone, and nothing more will be called.

        ``exc`` is ``None`` for a clean end (a close or abort on either side
        after which the stream ended normally) and the exception otherwise: a
        reset by the peer, an I/O error, or an exception one of this protocol's
        own callbacks raised.
        """
        return None

    def pause_writing(self) -> None:
        """The transport's write buffer went over its high-water mark.

        Stop producing until :meth:`resume_writing`.  Writing anyway is allowed
        and loses nothing; it only uses memory.
        """
        return None

    def resume_writing(self) -> None:
        """The write buffer drained to its low-water mark; produce again."""
        return None


class Protocol(BaseProtocol, _AsyncioProtocol):
    """A protocol for a byte stream (asyncio's ``Protocol``, to a type checker)."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        """Some bytes arrived.  Never empty; chunk boundaries mean nothing."""
        return None

    def eof_received(self) -> bool | None:
        """The peer will send nothing more (it half-closed or closed).

        Return a false value to let the transport close itself (after flushing
        what was written), or true to keep the connection half-open and close
        it yourself later.
        """
        return None


# --------------------------------------------------------------- transports


class BaseTransport(_TypingProtocol):
    """What every transport offers."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Optional facts about the connection, by name.

        Common names: ``"peername"``, ``"sockname"``, ``"socket"``, and
        ``"clock"`` (the :class:`Clock` this transport offers its protocol).
        """
        ...

    def is_closing(self) -> bool:
        """True once :meth:`close` or ``abort`` was called or the connection was lost."""
        ...

    def close(self) -> None:
        """Close after flushing: every byte already written is sent first.

        The protocol's ``connection_lost(None)`` follows, never from inside
        this call.  Calling it again does nothing.
        """

    def set_protocol(self, protocol: Any) -> None:
        """Hand the connection to another protocol."""

    def get_protocol(self) -> Any:
        """The protocol currently attached."""
        ...


class ReadTransport(BaseTransport, _TypingProtocol):
    """The reading half: flow control towards the peer."""

    def is_reading(self) -> bool:
        """Whether data is being delivered (not paused, not closing)."""
        ...

    def pause_reading(self) -> None:
        """Stop calling ``data_received`` until :meth:`resume_reading`.

        The peer is slowed by the operating system's own flow control.  Harmless
        if already paused or closing.
        """

    def resume_reading(self) -> None:
        """Deliver data again.  Harmless if not paused or closing."""


class WriteTransport(BaseTransport, _TypingProtocol):
    """The writing half: buffering, flow control, half-close, abort."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` to be sent, in order; never blocks, never interleaves.

        After ``close()``, ``abort()`` or a lost connection the data is
        discarded (the protocol learns of the end from ``connection_lost``).
        After :meth:`write_eof` it raises :class:`~weft.protocols.errors.WriteAfterEofError`.
        """

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write each piece in order, as one write (flow control included)."""

    def write_eof(self) -> None:
        """Half-close: send EOF once the buffer is flushed; reading goes on."""

    def can_write_eof(self) -> bool:
        """Whether :meth:`write_eof` is supported by this transport."""
        ...

    def abort(self) -> None:
        """Close at once, dropping whatever is still buffered.

        The protocol's ``connection_lost(None)`` follows, never from inside
        this call.
        """

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the high- and low-water marks that drive pause/resume_writing.

        Defaults as asyncio: ``high`` 64 KiB (or ``4 * low`` when only ``low``
        is given), ``low`` ``high // 4``.  Raises
        :class:`~weft.protocols.errors.ArgumentError` unless
        ``high >= low >= 0``.
        """

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``, in asyncio's order."""
        ...

    def get_write_buffer_size(self) -> int:
        """How many written bytes are still waiting to be sent."""
        ...


class Transport(ReadTransport, WriteTransport, _TypingProtocol):
    """A bidirectional byte stream: what a stream protocol is handed."""


# ---------------------------------------------------------------- datagrams


class DatagramProtocol(BaseProtocol, _AsyncioDatagramProtocol):
    """A protocol for datagrams (UDP, UNIX datagram sockets): whole messages
    from and to addresses, each delivered at most once and in no promised
    order.

    ``connection_made`` comes first, with a :class:`DatagramTransport`, and
    ``connection_lost`` last: ``None`` after ``close()`` or ``abort()``, the
    exception when one of this protocol's callbacks raised.  An error the
    network reports (ICMP's "port unreachable" as ``ConnectionRefusedError``
    on a connected endpoint, a datagram the kernel refused) comes to
    :meth:`error_received`, and the endpoint goes on.  ``pause_writing`` and
    ``resume_writing`` are the stream contract's: datagrams the kernel could
    not take yet wait in the transport, and count.
    """

    __slots__ = ()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """A datagram came from ``addr``: a ``(host, port, ...)`` tuple for UDP,
        a path (or ``None``, from an unbound sender) for a UNIX socket.

        ``data`` is one whole datagram, possibly empty.
        """
        return None

    def error_received(self, exc: Exception) -> None:
        """The network reported an error, usually an ``OSError``: a peer's port
        closed (``ConnectionRefusedError``, on a connected endpoint), a
        datagram too large for the kernel
        (:class:`~weft.protocols.errors.DatagramTooLargeError`).  The
        endpoint goes on; the datagram concerned is lost."""
        return None


class DatagramTransport(BaseTransport, _TypingProtocol):
    """A datagram endpoint: what a :class:`DatagramProtocol` is handed.

    ``get_extra_info`` answers ``"sockname"`` (the local address),
    ``"peername"`` (the peer of a connected endpoint, else ``None``),
    ``"socket"`` (where there is one) and ``"clock"``.  ``close()`` sends
    what is queued first, then ``connection_lost(None)``; ``abort()`` drops
    it.  Neither calls ``connection_lost`` from inside the call.
    """

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Send ``data`` as one datagram to ``addr``; never blocks.

        On a connected endpoint ``addr`` is ``None`` or the peer's address;
        on an unconnected one it is required, a numeric address of the
        endpoint's family (names are not looked up: that would block).
        Anything else raises
        :class:`~weft.protocols.errors.DatagramAddressError`; a datagram
        over the size one can have raises
        :class:`~weft.protocols.errors.DatagramTooLargeError`; a type that
        is not bytes-like raises ``TypeError``.  What the kernel cannot
        take at once waits, in order, and counts in
        :meth:`get_write_buffer_size`.  After ``close()`` or ``abort()`` the
        datagram is discarded.  An empty ``data`` is sent as an empty
        datagram.
        """

    def abort(self) -> None:
        """Close at once, dropping the datagrams still queued."""

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """The water marks of ``pause_writing``/``resume_writing`` (as
        :meth:`WriteTransport.set_write_buffer_limits`)."""

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``, in asyncio's order."""
        ...

    def get_write_buffer_size(self) -> int:
        """How many bytes of datagrams wait to be sent."""
        ...


# ------------------------------------------------------------ sending files


@runtime_checkable
class FileRegion(_TypingProtocol):
    """A stretch of an open file, to be sent as it is: what ``write_file`` takes.

    Protocols never open files.  Code that may (a driver, or a handler such
    as :class:`weft._cli.file_server.FileServer`) opens one with
    :class:`weft.drivers._core.file_region.FileSlice`, and a protocol only passes
    the region on.  ``len(region)`` is the number of bytes still to send.

    A transport that can send straight from the file (``os.sendfile``: no
    copy through Python, nothing held in memory) uses :meth:`fileno`,
    :attr:`offset` and :meth:`consumed`; anything else takes the bytes with
    :meth:`read`, a small piece at a time.
    """

    @property
    def offset(self) -> int:
        """Where in the file the next byte to send is."""
        ...

    def __len__(self) -> int:
        """Bytes still to send."""
        ...

    def fileno(self) -> int:
        """The open file's descriptor."""
        ...

    def read(self, size: int) -> bytes:
        """The next bytes, at most ``size`` of them, and past them.

        Raises ``OSError`` when the file ends before the region does (it was
        truncated while being sent) or cannot be read.
        """
        ...

    def consumed(self, count: int) -> None:
        """``count`` bytes were sent straight from the file: move past them.

        ``count`` 0 on a region not yet empty means the file ended early (a
        ``sendfile`` that sends nothing has reached the end of the file): it
        raises ``OSError``, which the transport treats as a failed send.
        """

    def close(self) -> None:
        """Release the file.  Harmless if called again."""


class FileWriteTransport(Transport, _TypingProtocol):
    """A transport that can also send a :class:`FileRegion`.

    Every weft driver's socket and pipe transports can (with ``os.sendfile``
    where the kernel allows it); a TLS layer, the memory driver's
    transports... may or may not: ask with :func:`file_writer_of`.
    """

    def write_file(self, region: FileRegion) -> None:
        """Queue ``region``'s bytes after everything written so far.

        The transport owns the region from now on: it sends the bytes in
        order with whatever is written before and after, and closes the
        region once it is sent, or at once when the connection is closing or
        lost (the bytes are then dropped, as ``write`` drops data).  The
        bytes not yet sent count in ``get_write_buffer_size()`` and drive
        ``pause_writing``/``resume_writing`` as written bytes do, but cost
        no memory: a 2 GiB file to a peer that never reads holds nothing in
        Python.  If the file cannot be read, or ends before the region does,
        the connection ends with that ``OSError``, as after a failed send.
        After ``write_eof()`` it raises
        :class:`~weft.protocols.errors.WriteAfterEofError` (and closes the
        region).
        """


def file_writer_of(transport: object) -> Callable[[FileRegion], None] | None:
    """``transport.write_file`` if the transport can send a :class:`FileRegion`, else ``None``.

    A protocol that sends files asks once, in ``connection_made``, and reads
    the region itself (in small pieces, as flow control allows) when the
    answer is ``None``: a TLS layer, or a plain asyncio transport.
    """
    writer = getattr(transport, "write_file", None)
    return writer if callable(writer) else None


# ------------------------------------------------------------------ helpers


def clock_of(transport: BaseTransport) -> Clock:
    """The :class:`Clock` for a protocol on ``transport``, for protocols that need time.

    The transport's own (``get_extra_info("clock")``: every weft driver's
    transports offer one) or, when it offers none, the clock of the asyncio
    event loop running in this thread (a plain asyncio or uvloop transport:
    see :class:`weft.protocols._loop_clock.LoopClock`).  Raises
    :class:`~weft.protocols.errors.NoClockError` when there is neither.
    Call it from a protocol callback (``connection_made``), where the
    transport's loop is the running one.
    """
    clock = transport.get_extra_info("clock")
    if clock is not None:
        return clock  # type: ignore[no-any-return]
    loop_clock = running_loop_clock(transport)
    if loop_clock is None:
        raise NoClockError(
            f"{type(transport).__name__} offers no clock (get_extra_info('clock') is None) "
            "and no asyncio event loop is running in this thread; "
            "run this protocol on a weft driver or an asyncio loop"
        )
    return loop_clock
