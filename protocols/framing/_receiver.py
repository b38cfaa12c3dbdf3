"""Protocol base classes that receive whole frames: lines, length-prefixed, netstrings.

:class:`FrameReceiver` drives a :class:`~weft.protocols.framing._parser.FrameParser`
and gives its subclasses:

* ``frame_received(frame)`` once per frame, in order;
* ``pause_reading()`` / ``resume_reading()`` on the protocol: while paused no
  frame is delivered, even one already buffered, and the buffered ones come
  out in order on resume.  (Pause through these, not through the transport:
  the protocol must know, to hold back what it has already read.)
* raw mode: ``set_raw_mode()`` sends the bytes after the current frame, and
  all later ones, to ``raw_data_received`` unparsed, until
  ``set_frame_mode(extra)`` hands back the unused part and framing resumes.
  Not a byte is lost or reordered across the switches.
* ``frame_error(exc)`` when the peer breaks the framing (a frame over the
  limit, a malformed header); by default the connection is closed.

Frames stop being delivered once the transport is closing.
"""

from __future__ import annotations

import ssl
from typing import Any, ClassVar

from weft.protocols._transport_slot import TransportSlot
from weft.protocols.contract import Protocol, Transport
from weft.protocols.errors import ProtocolError
from weft.protocols.framing._length_prefixed import LengthPrefixedParser, encode_length_prefixed
from weft.protocols.framing._lines import LineParser, encode_line
from weft.protocols.framing._netstring import NetstringParser, encode_netstring
from weft.protocols.framing._parser import DEFAULT_MAX_FRAME_LENGTH, FrameParser, ReadyFrames
from weft.protocols.tls._upgrade import start_tls

__all__ = ["FrameReceiver", "LengthPrefixedProtocol", "LineProtocol", "NetstringProtocol"]

#: The parsers whose frames FrameReceiver hands out through ReadyFrames.
_READY_PARSERS = (LineParser, LengthPrefixedParser, NetstringParser)


class FrameReceiver(Protocol):
    """Base class for protocols that receive frames; see the module docstring.

    Its sending and flow-control methods need the transport
    ``connection_made`` hands over: called before, they raise
    :class:`~weft.protocols.errors.NotConnectedError`, which says so.
    """

    #: The transport, from ``connection_made`` on (before: NotConnectedError).
    transport = TransportSlot()

    #: The method the fast delivery loop hands each frame to.
    _handler_name: ClassVar[str] = "frame_received"

    def __init__(self) -> None:
        self._parser: FrameParser = self.make_parser()
        self._paused = False
        self._raw = False
        # True while frames are being handed out, so that calls made from a
        # frame handler (resume_reading, set_frame_mode) do not recurse.
        self._delivering = False
        # True until connection_made, and again once the framing broke:
        # nothing is delivered while it holds.
        self._halted = True
        # weft's own parsers cut frames as they are fed and keep them behind
        # one iterator that is their position: data_received hands those out
        # in one tight loop (_deliver_ready).  Another parser (a subclass's
        # make_parser) goes through next_frame, one call per frame.
        parser = self._parser
        self._ready: ReadyFrames | None = parser if type(parser) in _READY_PARSERS else None  # type: ignore[assignment]

    # ---------------------------------------------------- for subclasses

    def make_parser(self) -> FrameParser:
        """Build the parser; called once, from ``__init__``."""
        raise NotImplementedError

    def frame_received(self, frame: bytes) -> None:
        """One whole frame arrived."""
        raise NotImplementedError

    def raw_data_received(self, data: bytes) -> None:
        """Bytes that arrived in raw mode (see :meth:`set_raw_mode`)."""
        raise NotImplementedError

    def frame_error(self, exc: ProtocolError) -> None:
        """The peer broke the framing; nothing more will be delivered.

        The default closes the connection (after flushing what was written).
        """
        self.transport.close()

    # ------------------------------------------------------------ control

    @property
    def parser(self) -> FrameParser:
        """The parser this protocol feeds."""
        return self._parser

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause_reading` is in effect."""
        return self._paused

    def pause_reading(self) -> None:
        """Deliver nothing more until :meth:`resume_reading`; pause the transport too."""
        self._paused = True
        self._stop_delivery()
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Deliver the frames held while paused, in order, then read on."""
        if not self._paused:
            return
        self._paused = False
        self.transport.resume_reading()
        self._deliver()

    def set_raw_mode(self) -> None:
        """From the end of the current frame on, deliver bytes unparsed."""
        self._raw = True
        self._stop_delivery()
        self._deliver()

    def set_frame_mode(self, extra: bytes = b"") -> None:
        """Parse frames again, starting with ``extra``.

        ``extra`` is the part of the last raw data the protocol did not use:
        it is parsed before anything received after it.
        """
        self._raw = False
        if extra:
            later = self._parser.take_buffer()
            self._parser.feed(extra)
            self._parser.feed(later)
        self._deliver()

    def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        **options: Any,
    ) -> Transport:
        """Switch this connection to TLS after the current frame; return the new transport.

        Call it from ``frame_received`` at the switch point (after a
        STARTTLS command, say).  Bytes already read past the current frame
        go to the TLS layer, not the parser, and frames go on being parsed
        from the decrypted stream.  ``options`` are
        :func:`~weft.protocols.tls._upgrade.start_tls`'s.
        """
        leftover = self._parser.take_buffer()
        self.transport = start_tls(
            self.transport,
            self,
            context,
            server_side=server_side,
            server_hostname=server_hostname,
            leftover=leftover,
            **options,
        )
        return self.transport

    # ------------------------------------------------ the Protocol contract

    def connection_made(self, transport: Any) -> None:
        """Keep the transport."""
        self.transport = transport
        self._halted = False

    def data_received(self, data: bytes) -> None:
        """Parse ``data`` and deliver what it completes."""
        if self._halted:
            return
        ready = self._ready
        if ready is not None and not (self._raw or self._paused or self._delivering):
            # _deliver_ready, inlined on the path every chunk takes.
            ready.feed(data)
            is_closing = self.transport.is_closing
            handler = getattr(self, self._handler_name)
            pending = ready._pending
            self._delivering = True
            try:
                for frame in pending:
                    if is_closing():
                        return
                    handler(frame)
            finally:
                self._delivering = False
            if ready._pending is not pending or ready._refused is not None or ready._error is not None:
                self._deliver_frames()
            return
        if self._raw and not self._paused and not self._delivering:
            held = self._parser.take_buffer()
            self.raw_data_received(held + data if held else data)
            return
        self._parser.feed(data)
        self._deliver()

    # ----------------------------------------------------------- internals

    def _stop_delivery(self) -> None:
        """Stop the fast loop after the frame being handled, if it is running.

        Pausing and raw mode end the parser's iterator, which the loop holds
        (``_hold``): the loop stops there with no test of its own per frame.
        """
        if self._delivering and self._ready is not None:
            self._ready._hold()

    def _deliver_ready(self, parser: ReadyFrames) -> None:
        """:meth:`_deliver_frames`'s loop for the common case, cut to what a frame needs.

        Per frame: a look at whether the transport is closing, and the
        handler.  Nothing else can change between two frames without this
        loop hearing of it: the parser checked each frame's length as it cut
        it; a pause or a switch to raw mode ends the parser's iterator,
        which is this loop's (:meth:`_stop_delivery`), and so does whatever
        takes frames from under it (the buffer taken for STARTTLS or by
        ``set_frame_mode``).  After the loop, anything left over (a switch
        of mode, a pause lifted in the same handler, frames queued anew,
        the error the parser holds) goes to the general loop.
        """
        is_closing = self.transport.is_closing
        handler = getattr(self, self._handler_name)
        pending = parser._pending
        self._delivering = True
        try:
            for frame in pending:
                if is_closing():
                    return
                handler(frame)
        finally:
            self._delivering = False
        if parser._pending is not pending or parser._refused is not None or parser._error is not None:
            self._deliver_frames()

    def _deliver(self) -> None:
        """Deliver what the parser holds, as far as the protocol's state allows."""
        if self._delivering or self._halted:
            return
        ready = self._ready
        if ready is not None and not (self._raw or self._paused):
            self._deliver_ready(ready)
        else:
            self._deliver_frames()

    def _deliver_frames(self) -> None:
        """The general loop: frames one by one, raw data, errors, pauses."""
        if self._delivering or self._halted:
            return
        self._delivering = True
        parser = self._parser
        is_closing = self.transport.is_closing
        try:
            while not self._paused and not is_closing():
                if self._raw:
                    data = parser.take_buffer()
                    if not data:
                        break
                    self.raw_data_received(data)
                    continue
                try:
                    frame = parser.next_frame()
                except ProtocolError as exc:
                    self._halted = True
                    self.frame_error(exc)
                    break
                if frame is None:
                    break
                self.frame_received(frame)
        finally:
            self._delivering = False


class LineProtocol(FrameReceiver):
    """Receives lines; sends them with :meth:`send_line`.

    Set ``delimiter`` and ``max_line_length`` on the subclass (or the
    instance, before ``super().__init__()``).  A line over the limit is a
    :class:`~weft.protocols.errors.LineTooLongError` handed to
    :meth:`frame_error`, which closes the connection unless overridden.
    """

    delimiter: bytes = b"\n"
    max_line_length: int = DEFAULT_MAX_FRAME_LENGTH

    _handler_name = "line_received"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Straight to line_received, unless a subclass handles frames itself.
        overridden = cls.frame_received is not LineProtocol.frame_received
        cls._handler_name = "frame_received" if overridden else "line_received"

    def make_parser(self) -> FrameParser:
        """A :class:`~weft.protocols.framing._lines.LineParser` with this class's settings."""
        return LineParser(self.delimiter, self.max_line_length)

    def frame_received(self, frame: bytes) -> None:
        """Hand the line to :meth:`line_received`."""
        self.line_received(frame)

    def line_received(self, line: bytes) -> None:
        """One line arrived, without its delimiter."""
        raise NotImplementedError

    def send_line(self, line: bytes) -> None:
        """Write ``line`` and the delimiter.

        Raises :class:`~weft.protocols.errors.UnencodableFrameError` if the
        line holds the delimiter.
        """
        self.transport.write(encode_line(line, self.delimiter))

    def set_line_mode(self, extra: bytes = b"") -> None:
        """Back to lines after raw mode; ``extra`` is parsed first."""
        self.set_frame_mode(extra)


class LengthPrefixedProtocol(FrameReceiver):
    """Receives and sends frames with a big-endian length prefix of 1, 2 or 4 bytes."""

    prefix_size: int = 4
    max_length: int = DEFAULT_MAX_FRAME_LENGTH

    def make_parser(self) -> FrameParser:
        """A :class:`~weft.protocols.framing._length_prefixed.LengthPrefixedParser`."""
        return LengthPrefixedParser(self.prefix_size, self.max_length)

    def send_frame(self, payload: bytes) -> None:
        """Write ``payload`` with its length prefix."""
        self.transport.write(encode_length_prefixed(payload, self.prefix_size))


class NetstringProtocol(FrameReceiver):
    """Receives and sends netstrings."""

    max_length: int = DEFAULT_MAX_FRAME_LENGTH

    def make_parser(self) -> FrameParser:
        """A :class:`~weft.protocols.framing._netstring.NetstringParser`."""
        return NetstringParser(self.max_length)

    def send_frame(self, payload: bytes) -> None:
        """Write ``payload`` as a netstring."""
        self.transport.write(encode_netstring(payload))
