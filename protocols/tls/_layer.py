"""The TLS layer: a TLS session put on a weft transport, both faces in one module.

The session (:class:`~weft.protocols.tls._session.TLSSession`) is TLS alone:
bytes and events in and out.  This module is the adapter that runs it
between two protocols, and has the two faces of that job:

* :class:`TLSProtocol` is a protocol to the transport below (a socket, a
  pipe, the memory driver): it feeds the session the ciphertext that
  arrives and writes the ciphertext the session makes;
* :class:`TLSTransport` is the transport the application protocol above
  gets: its calls come back to the :class:`TLSProtocol` that made it.

What the session leaves to its user lives here: the application's writes
held until the handshake completes, flow control both ways, and the
handshake and close deadlines, on the clock of the transport below.

The layer's life is :class:`LayerState`, moving only along
:data:`LAYER_TRANSITIONS` (anything else raises
:class:`~weft.protocols.tls._errors.TLSStateError`: a bug, never a peer's
doing)::

    HANDSHAKING --handshake done--> OPEN --close()--> CLOSING --peer's close_notify
         |                            |                  |     or close_timeout--> CLOSED
         |                            +------------------+--error, abort(), the layer
         +--error, timeout, close(), abort()-------------+  closes the transport below--> CLOSED
                                                                      connection_lost--> LOST

A half-close (``write_eof()``) keeps the layer OPEN: the session's own state
says which side has sent ``close_notify``.

The application protocol hears ``connection_made`` at once, as in Twisted,
so it may write before the handshake completes: those writes are held and
encrypted, in order, when it does.  A handshake failure or timeout reaches it
as ``connection_lost(TLSHandshakeError)``; ``on_handshake`` (optional) is
called when the session is up, when the peer certificate and ALPN choice
are known.
"""

from __future__ import annotations

import enum
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import Clock, Protocol, TimerHandle, Transport, clock_of
from weft.protocols.errors import ArgumentError, NoClockError, WriteAfterEofError
from weft.protocols.tls._errors import (
    TLSError,
    TLSHandshakeError,
    TLSHandshakeTimeoutError,
    TLSStateError,
)
from weft.protocols.tls._session import (
    ApplicationData,
    CloseNotifyReceived,
    HandshakeComplete,
    SendData,
    SessionFailed,
    SessionState,
    StreamTruncated,
    TLSSession,
)

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "LAYER_TRANSITIONS",
    "MAX_HELD_CIPHERTEXT",
    "LayerState",
    "TLSProtocol",
    "TLSTransport",
]

logger = logging.getLogger("weft.protocols.tls")

#: asyncio's default (``ssl_handshake_timeout``).
DEFAULT_HANDSHAKE_TIMEOUT = 60.0
#: How long close() waits for the peer's close_notify before closing anyway.
DEFAULT_CLOSE_TIMEOUT = 5.0
#: Undecrypted bytes held while the application has paused reading before
#: the transport below is told to pause too.
MAX_HELD_CIPHERTEXT = 256 * 1024


class LayerState(enum.Enum):
    """Where a TLS layer is in its life."""

    #: The session's handshake runs; the application's writes are held.
    HANDSHAKING = "handshaking"
    #: The session is up (one side may have sent ``close_notify``: see the session's state).
    OPEN = "open"
    #: ``close()``: our ``close_notify`` is out; waiting, for at most
    #: ``close_timeout``, for the peer's.
    CLOSING = "closing"
    #: The layer closed or aborted the transport below (or was told to):
    #: nothing more moves; ``connection_lost`` is on its way.
    CLOSED = "closed"
    #: The application has heard ``connection_lost``.
    LOST = "lost"


_HANDSHAKING, _OPEN, _CLOSING = LayerState.HANDSHAKING, LayerState.OPEN, LayerState.CLOSING
_CLOSED, _LOST = LayerState.CLOSED, LayerState.LOST

#: The states each state may move to.
LAYER_TRANSITIONS: dict[LayerState, frozenset[LayerState]] = {
    _HANDSHAKING: frozenset({_OPEN, _CLOSED, _LOST}),
    _OPEN: frozenset({_CLOSING, _CLOSED, _LOST}),
    _CLOSING: frozenset({_CLOSED, _LOST}),
    # An abort() after close() closes the transport below again, harder.
    _CLOSED: frozenset({_CLOSED, _LOST}),
    _LOST: frozenset(),
}

# The session's states in which the peer's side has ended.
_READ_ENDED = frozenset({SessionState.READ_CLOSED, SessionState.CLOSED})


class TLSProtocol(Protocol):
    """TLS between the transport below and ``app_protocol`` above; see the module docstring.

    ``server_hostname`` (client side) is the name the peer's certificate
    must carry, and the SNI sent; required when the context checks hostnames.
    ``truncation_is_eof=True`` reports a stream that ends without
    ``close_notify`` as a plain end of file instead of
    :class:`~weft.protocols.tls._errors.TLSTruncatedError` (HTTPS clients do
    this, since servers often skip ``close_notify``).
    """

    def __init__(
        self,
        app_protocol: Any,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        truncation_is_eof: bool = False,
        on_handshake: Callable[[TLSTransport], object] | None = None,
    ) -> None:
        if not server_side and context.check_hostname and not server_hostname:
            raise ArgumentError("a client whose context checks hostnames needs server_hostname")
        if server_side and server_hostname is not None:
            raise ArgumentError("server_hostname is for the client side")
        if handshake_timeout <= 0 or close_timeout < 0:
            raise ArgumentError("handshake_timeout must be > 0 and close_timeout >= 0")
        self._app = app_protocol
        self._server_side = server_side
        self._handshake_timeout = handshake_timeout
        self._close_timeout = close_timeout
        self._truncation_is_eof = truncation_is_eof
        self._on_handshake = on_handshake
        self._session = TLSSession(context, server_side=server_side, server_hostname=server_hostname)
        self._state = _HANDSHAKING
        self._transport: Transport | None = None
        self._clock: Clock | None = None
        self._timer: TimerHandle | None = None  # the handshake's deadline, then close()'s
        # Plaintext the application wrote that the session cannot take yet.
        self._held: list[bytes] = []
        self._held_size = 0
        self._eof_requested = False  # write_eof() called (close_notify maybe not out yet)
        # Flow control: the application's pauses of each direction, and the
        # transport below's of writing (the held plaintext's is self._flow's).
        self._app_reading_paused = False
        self._app_writing_paused = False
        self._lower_writing_paused = False
        self._flow = WriteFlowControl()
        self._processing = False  # re-entry guard for _process
        self._lost_exc: BaseException | None = None  # what the application will hear
        #: The transport the application protocol talks to.
        self.app_transport = TLSTransport(self)

    # ------------------------------------------------- facts, for the transport

    @property
    def state(self) -> LayerState:
        """Where the layer is in its life."""
        return self._state

    @property
    def session(self) -> TLSSession:
        """The sans-I/O session the layer runs."""
        return self._session

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The session's :class:`ssl.SSLObject`."""
        return self._session.ssl_object

    @property
    def context(self) -> ssl.SSLContext:
        """The context the session was made from."""
        return self._session.context

    @property
    def handshake_complete(self) -> bool:
        """Whether the handshake has completed (and not failed)."""
        return self._session.handshake_complete

    @property
    def transport(self) -> Transport | None:
        """The transport below, once connected (a protocol's usual attribute)."""
        return self._transport

    @property
    def lower_transport(self) -> Transport:
        """The transport below (the socket, pipe or memory transport)."""
        if self._transport is None:
            raise TLSError(
                "the TLS layer has no transport yet: connect it first (hand it to a driver, "
                "or attach() it to a transport for start_tls)"
            )
        return self._transport

    # --------------------------------------------------- the transport below

    def connection_made(self, transport: Any) -> None:
        """Start the handshake, then tell the application it is connected."""
        try:
            self.attach(transport)
        except NoClockError:
            # The application never heard of this connection: it hears
            # nothing of its end either.
            self._enter(_LOST)
            raise
        self._app.connection_made(self.app_transport)

    def attach(self, transport: Transport, *, reading_paused: bool = False) -> None:
        """Start on ``transport`` without announcing the connection (start_tls does this).

        ``reading_paused``: the application had paused the transport's
        reading before the switch.  That pause becomes the application's
        pause of the TLS transport: the plaintext waits for its
        ``resume_reading`` there, but the handshake does not (the layer
        reads the transport below until the session is up).
        """
        self._transport = transport
        self._app_reading_paused = reading_paused
        if reading_paused:
            # The transport below is the layer's now, and the handshake
            # must read it; the pause is the application's, on plaintext.
            transport.resume_reading()
        try:
            self._clock = clock_of(transport)
        except NoClockError as exc:
            # No clock (no weft clock, no running asyncio loop): no deadline
            # could be kept, the handshake's included.  The connection ends
            # now, and the error is raised on to the driver, which reports it.
            self._lost_exc = exc
            self._enter(_CLOSED)
            transport.abort()
            raise
        self._timer = self._clock.call_later(self._handshake_timeout, self._handshake_timed_out)
        self._process()

    def data_received(self, data: bytes | bytearray | memoryview) -> None:
        """Ciphertext from the peer."""
        if self._state is _CLOSED or self._state is _LOST:
            return
        session = self._session
        session.receive_data(data)
        if self._app_reading_paused and self._state is not _HANDSHAKING:
            if session.pending_ciphertext > MAX_HELD_CIPHERTEXT:
                self.lower_transport.pause_reading()
            return
        self._process()

    def buffer_received(self, data: memoryview) -> None:
        """Ciphertext from the peer in a buffer the driver lends for this call only.

        weft's reactor reads sockets into one of its own, 256 KiB at a time,
        for a protocol that has this method.  The layer copies the bytes into
        the session's MemoryBIO first thing, as :meth:`data_received` does,
        so this hands them there (through ``data_received``, so a subclass
        that overrides it sees every byte whichever way they came).
        """
        self.data_received(data)

    def eof_received(self) -> bool:
        """The peer ended the byte stream; with or without close_notify?"""
        state = self._state
        if state is _CLOSED or state is _LOST:
            return False
        events = self._session.receive_eof()
        if state is _CLOSING or not events:
            # Closing: the end is all we waited for.  No event: its
            # close_notify came first, and the layer has acted on it.
            return False
        event = events[0]
        if isinstance(event, SessionFailed):  # during the handshake
            self._fail(event.error)
            return False
        if isinstance(event, StreamTruncated) and not self._truncation_is_eof:
            self._lost_exc = event.error
            self._enter(_CLOSED)
            return False
        return bool(self._app.eof_received())  # taken as a close_notify, by request

    def server_stopping(self) -> None:
        """A graceful stop of the server (see ``weft.drivers.Server``): passed
        on to the application protocol, if it listens for it."""
        stopping = getattr(self._app, "server_stopping", None)
        if callable(stopping):
            stopping()

    def connection_lost(self, exc: BaseException | None) -> None:
        """The transport below is gone: tell the application, once."""
        self._cancel_timer()
        state = self._state
        if state is _LOST:
            return
        if self._lost_exc is not None:
            exc = self._lost_exc
        elif state is _HANDSHAKING:
            message = "the connection was lost during the TLS handshake"
            if exc is None:
                exc = TLSHandshakeError(message)
            else:
                cause, exc = exc, TLSHandshakeError(f"{message}: {exc}")
                exc.__cause__ = cause
        self._enter(_LOST)
        self._drop_held()
        self._app.connection_lost(exc)

    def pause_writing(self) -> None:
        """The transport below is full: so is the application's."""
        self._lower_writing_paused = True
        if not self._app_writing_paused:
            self._app_writing_paused = True
            self._app.pause_writing()

    def resume_writing(self) -> None:
        """The transport below drained."""
        self._lower_writing_paused = False
        self._maybe_resume_app()

    # ------------------------------------------------ the application's calls

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send ``data``; held until the handshake completes."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be a bytes-like object, not {type(data).__name__}")
        if self._eof_requested:
            raise WriteAfterEofError("write() after write_eof()")
        state = self._state
        if not data or (state is not _OPEN and state is not _HANDSHAKING):
            return
        if state is _HANDSHAKING or self._held:
            # (Held writes pending in OPEN: on_handshake wrote; keep the order.)
            piece = bytes(data)
            self._held.append(piece)
            self._held_size += len(piece)
            if self._flow.should_pause(self._held_size) and not self._app_writing_paused:
                self._app_writing_paused = True
                self._app.pause_writing()
            return
        # The write path: _encrypt's work, inline.
        try:
            ciphertext = self._session.send(data)
        except TLSError as exc:
            self._fail(exc)
            return
        if ciphertext and self._transport is not None:
            self._transport.write(ciphertext)

    def write_eof(self) -> None:
        """Send close_notify once the held writes are out; keep reading."""
        if self._eof_requested or self.is_closing():
            return
        self._eof_requested = True
        if self._state is _OPEN and not self._held:
            self._send_close_notify()

    def close(self) -> None:
        """close_notify, then wait a bounded time for the peer's; before the
        handshake completes, abort."""
        state = self._state
        if state is _HANDSHAKING:
            self.abort()
            return
        if state is not _OPEN:
            return
        self._enter(_CLOSING)
        self._drop_held()
        session = self._session
        if session.state is SessionState.OPEN or session.state is SessionState.READ_CLOSED:
            self._write_below(session.close())
        if session.state in _READ_ENDED:
            self._close_below()
            return
        # Keep reading: the peer's close_notify is what we wait for.
        self._app_reading_paused = False
        self.lower_transport.resume_reading()
        self._timer = self._clock_().call_later(self._close_timeout, self._close_timed_out)

    def abort(self) -> None:
        """Drop the session and the transport below at once."""
        if self._state is _LOST:
            return
        self._enter(_CLOSED)
        self._drop_held()
        self._cancel_timer()
        if self._transport is not None:
            self._transport.abort()

    def is_closing(self) -> bool:
        """Whether close() or abort() was called, or the session ended."""
        state = self._state
        return state is not _OPEN and state is not _HANDSHAKING

    def pause_reading(self) -> None:
        """Deliver no plaintext until resume_reading; pause the transport below.

        During the handshake the transport below goes on reading: the pause
        is on plaintext, and a handshake held by it would only end at its
        deadline.  The transport below pauses once the session is up.
        """
        if self._app_reading_paused or self._state is _CLOSED or self._state is _LOST:
            return
        self._app_reading_paused = True
        if self._state is not _HANDSHAKING:
            self.lower_transport.pause_reading()

    def resume_reading(self) -> None:
        """Deliver what was held, soon, and read on."""
        if not self._app_reading_paused:
            return
        self._app_reading_paused = False
        if self._state is _CLOSED or self._state is _LOST:
            return
        self.lower_transport.resume_reading()
        # Not from inside this call: the application may be in data_received.
        self._clock_().call_later(0, self._process)

    def is_reading(self) -> bool:
        """Whether plaintext is being delivered."""
        return not self._app_reading_paused and not self.is_closing()

    def get_write_buffer_size(self) -> int:
        """Plaintext held for the handshake plus ciphertext the transport below holds."""
        lower = self._transport.get_write_buffer_size() if self._transport is not None else 0
        return self._held_size + lower

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Water marks for the held plaintext and the transport below alike."""
        self._flow.set_limits(high, low)
        if self._transport is not None:
            self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``."""
        return self._flow.limits()

    def set_app_protocol(self, protocol: Any) -> None:
        """Hand the plaintext side to another protocol."""
        self._app = protocol

    def get_app_protocol(self) -> Any:
        """The protocol above."""
        return self._app

    # --------------------------------------------------------------- inside

    def _enter(self, state: LayerState) -> None:
        """Move to ``state``, or raise if the move is not in the table."""
        if state not in LAYER_TRANSITIONS[self._state]:
            raise TLSStateError(f"a TLS layer cannot go from {self._state.value} to {state.value}")
        self._state = state

    def _clock_(self) -> Clock:
        if self._clock is None:
            raise TLSError(
                "the TLS layer has no transport yet: connect it first (hand it to a driver, "
                "or attach() it to a transport for start_tls)"
            )
        return self._clock

    def _process(self) -> None:
        """Advance the session with what it has received: the handshake, then
        the plaintext, unless the application paused reading."""
        if self._processing:
            return
        self._processing = True
        session = self._session
        try:
            # At most two rounds: a step of the handshake, then (once it is
            # done) the plaintext that came with it.  This is the read path:
            # the events are carried out here, not in a helper.
            while True:
                before = self._state
                if before is not _HANDSHAKING and (
                    (before is not _OPEN and before is not _CLOSING) or self._app_reading_paused
                ):
                    return
                for event in session.next_events():
                    # The events are final classes: an identity test of the
                    # type is enough, and cheaper than isinstance.
                    if type(event) is ApplicationData:
                        if self._state is _OPEN:  # after close(), the plaintext is dropped
                            self._app.data_received(event.data)
                    elif type(event) is SendData:
                        self._write_below(event.data)
                    elif type(event) is HandshakeComplete:
                        self._handshake_completed()
                    elif type(event) is CloseNotifyReceived:
                        self._peer_closed()
                    elif type(event) is SessionFailed:
                        self._fail(event.error)
                if before is not _HANDSHAKING or self._state is _HANDSHAKING:
                    return  # read all there was, or the handshake waits for more
        finally:
            self._processing = False

    def _handshake_completed(self) -> None:
        self._cancel_timer()
        self._enter(_OPEN)
        if self._on_handshake is not None:
            self._on_handshake(self.app_transport)
        # What was held goes out in one piece, in order (on_handshake's writes included).
        held, self._held = self._held, []
        self._held_size = 0
        if held and self._state is _OPEN:
            self._encrypt(held[0] if len(held) == 1 else b"".join(held))
        if self._state is _OPEN and self._eof_requested:
            self._send_close_notify()
        if self._app_reading_paused and self._state is _OPEN and self._transport is not None:
            # Paused during the handshake: the transport below, which went on
            # reading for the handshake's sake, pauses now.
            self._transport.pause_reading()
        self._maybe_resume_app()

    def _peer_closed(self) -> None:
        """The peer's close_notify arrived."""
        state = self._state
        if state is _CLOSING:
            self._cancel_timer()
            self._close_below()
        elif state is _OPEN:
            if self._session.state is SessionState.CLOSED:  # ours went first (write_eof)
                self._app.eof_received()
                self._close_below()
            elif not self._app.eof_received():
                self.close()

    def _encrypt(self, data: bytes | bytearray | memoryview) -> None:
        try:
            ciphertext = self._session.send(data)
        except TLSError as exc:
            self._fail(exc)
            return
        self._write_below(ciphertext)

    def _send_close_notify(self) -> None:
        """The half-close: our close_notify goes out; if the peer's came
        already, the session is over and so is the transport below."""
        session = self._session
        self._write_below(session.close())
        if session.state is SessionState.CLOSED:
            self._close_below()

    def _write_below(self, data: bytes) -> None:
        if data and self._transport is not None:
            self._transport.write(data)

    def _close_below(self) -> None:
        """Close the transport below (what was written goes first)."""
        self._enter(_CLOSED)
        if self._transport is not None:
            self._transport.close()

    def _drop_held(self) -> None:
        self._held.clear()
        self._held_size = 0

    def _maybe_resume_app(self) -> None:
        if self._app_writing_paused and not self._lower_writing_paused and not self._held:
            self._app_writing_paused = False
            self._flow.paused = False
            self._app.resume_writing()

    def _fail(self, exc: BaseException) -> None:
        """A fatal error: the application hears ``exc``; the transport closes
        (sending any alert the session queued)."""
        if self._lost_exc is None:
            self._lost_exc = exc
            self._log_failure(exc)
        self._cancel_timer()
        self._drop_held()
        self._close_below()

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if self._state is not _HANDSHAKING:
            return
        self._lost_exc = TLSHandshakeTimeoutError(
            f"the TLS handshake did not complete within {self._handshake_timeout:g} s"
        )
        self._log_failure(self._lost_exc)
        self.abort()

    def _close_timed_out(self) -> None:
        # The peer never answered our close_notify: close anyway (a peer that
        # never answers must not hold the connection open forever).
        self._timer = None
        if self._state is _CLOSING:
            self._close_below()

    def _log_failure(self, exc: BaseException) -> None:
        # One line for whoever runs a server: why did that client fail?  A
        # client's application hears the error itself, so only in debug.
        level = logging.INFO if self._server_side else logging.DEBUG
        logger.log(level, "TLS with %s: %s", self._peer(), exc)

    def _peer(self) -> str:
        peer = self._transport.get_extra_info("peername") if self._transport is not None else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return str(peer) if peer else "the peer"

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class TLSTransport:
    """A TLS session seen as a transport; made by the TLS layer, never by applications.

    It has the full :class:`~weft.protocols.contract.Transport` interface;
    every call goes to the :class:`TLSProtocol` that made it.
    ``get_extra_info`` answers asyncio's TLS names (``ssl_object``,
    ``peercert``, ``cipher``, ``compression``, ``sslcontext``) plus
    ``version`` and ``alpn_protocol``, and passes every other name
    (``peername``, ``clock``, ...) to the transport below.
    """

    __slots__ = ("_layer",)

    def __init__(self, layer: TLSProtocol) -> None:
        self._layer = layer

    # ------------------------------------------------------- BaseTransport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """TLS facts (``None`` before the handshake completes), else the transport below's."""
        layer = self._layer
        session = layer.ssl_object
        if name == "ssl_object":
            return session
        if name == "sslcontext":
            return layer.context
        if name in ("peercert", "peercert_binary", "cipher", "version", "alpn_protocol", "compression"):
            if not layer.handshake_complete:
                return default
            value: Any
            if name == "peercert":
                value = session.getpeercert()
            elif name == "peercert_binary":
                value = session.getpeercert(binary_form=True)
            elif name == "cipher":
                value = session.cipher()
            elif name == "version":
                value = session.version()
            elif name == "alpn_protocol":
                value = session.selected_alpn_protocol()
            else:
                value = session.compression()
            return default if value is None else value
        return layer.lower_transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        """Whether close() or abort() was called, or the session ended."""
        return self._layer.is_closing()

    def close(self) -> None:
        """Send what is buffered, then close_notify; close below once the peer
        answers or ``close_timeout`` passes.  Before the handshake completes,
        abort instead."""
        self._layer.close()

    def set_protocol(self, protocol: Any) -> None:
        """Hand the plaintext to another protocol."""
        self._layer.set_app_protocol(protocol)

    def get_protocol(self) -> Any:
        """The protocol receiving the plaintext."""
        return self._layer.get_app_protocol()

    # ------------------------------------------------------- ReadTransport

    def is_reading(self) -> bool:
        """Whether plaintext is being delivered."""
        return self._layer.is_reading()

    def pause_reading(self) -> None:
        """Deliver nothing until :meth:`resume_reading` (the transport below pauses too)."""
        self._layer.pause_reading()

    def resume_reading(self) -> None:
        """Deliver what arrived while paused, then read on."""
        self._layer.resume_reading()

    # ------------------------------------------------------ WriteTransport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send ``data`` (held until the handshake completes)."""
        self._layer.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write the pieces in order, as one write."""
        self._layer.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Send close_notify after what is buffered, and go on reading until the peer's."""
        self._layer.write_eof()

    def can_write_eof(self) -> bool:
        """True: a TLS session half-closes with close_notify."""
        return True

    def abort(self) -> None:
        """Close at once; buffered data is lost and no close_notify is sent."""
        self._layer.abort()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Water marks for pause_writing/resume_writing (asyncio's rules)."""
        self._layer.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """``(low, high)``."""
        return self._layer.get_write_buffer_limits()

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the OS (plaintext held plus ciphertext queued)."""
        return self._layer.get_write_buffer_size()
