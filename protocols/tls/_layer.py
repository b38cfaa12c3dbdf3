"""The TLS layer: a protocol to the transport below it, a transport to the protocol above.

:class:`TLSProtocol` runs an :class:`ssl.SSLObject` over two
:class:`ssl.MemoryBIO` buffers.  Ciphertext from the transport below goes into
one; plaintext comes out for the application protocol; what the application
writes is encrypted into the other and handed to the transport below.  It
never touches a socket, so TLS runs over anything weft can carry: TCP, UNIX
sockets, pipes, stdio, a subprocess, the memory driver.

The life of a session::

    HANDSHAKING --handshake done--> OPEN --close()--> CLOSING --peer's close_notify
         |                           |                   or close_timeout--> closed
         |                           +--write_eof()--> EOF_SENT (still reading)
         +--error, timeout, close()--> closed (abort)

The application protocol hears ``connection_made`` at once, as in Twisted,
so it may write before the handshake completes: those writes are held and
encrypted, in order, when it does.  A handshake failure or timeout reaches it
as ``connection_lost(TLSHandshakeError)``; ``on_handshake`` (optional) is
called when the session is up, when the peer certificate and ALPN choice
are known.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any

from weft.protocols._flow_control import WriteFlowControl
from weft.protocols.contract import Clock, Protocol, TimerHandle, Transport, clock_of
from weft.protocols.errors import ArgumentError, WriteAfterEofError
from weft.protocols.tls._errors import (
    TLSError,
    TLSHandshakeError,
    TLSHandshakeTimeoutError,
    TLSTruncatedError,
)
from weft.protocols.tls._transport import TLSTransport

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "DEFAULT_HANDSHAKE_TIMEOUT", "TLSProtocol"]

logger = logging.getLogger("weft.protocols.tls")

#: asyncio's default (``ssl_handshake_timeout``).
DEFAULT_HANDSHAKE_TIMEOUT = 60.0
#: How long close() waits for the peer's close_notify before closing anyway.
DEFAULT_CLOSE_TIMEOUT = 5.0
#: Undecrypted bytes held while the application has paused reading before
#: the transport below is told to pause too.
MAX_HELD_CIPHERTEXT = 256 * 1024
#: Plaintext taken from the session per ``SSLObject.read`` call.
READ_SIZE = 64 * 1024

_HANDSHAKING, _OPEN, _EOF_SENT, _CLOSING, _CLOSED = "handshaking", "open", "eof sent", "closing", "closed"


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
        self._context = context
        self._server_side = server_side
        self._server_hostname = server_hostname
        self._handshake_timeout = handshake_timeout
        self._close_timeout = close_timeout
        self._truncation_is_eof = truncation_is_eof
        self._on_handshake = on_handshake
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl: ssl.SSLObject = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._state = _HANDSHAKING
        self._handshake_done = False
        self._transport: Transport | None = None
        self._clock: Clock | None = None
        self._timer: TimerHandle | None = None
        # Plaintext the application wrote that the session cannot take yet.
        self._held: list[bytes] = []
        self._held_size = 0
        self._eof_requested = False  # write_eof() called, maybe not yet done
        self._close_notify_received = False
        self._app_reading_paused = False
        self._app_writing_paused = False
        self._lower_writing_paused = False
        self._flow = WriteFlowControl()
        self._processing = False  # re-entry guard for _process
        self._lost_exc: BaseException | None = None  # what the application will hear
        self._app_lost = False
        #: The transport the application protocol talks to.
        self.app_transport = TLSTransport(self)

    # ------------------------------------------------- facts, for the transport

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The session."""
        return self._ssl

    @property
    def context(self) -> ssl.SSLContext:
        """The context the session was made from."""
        return self._context

    @property
    def handshake_complete(self) -> bool:
        """Whether the handshake has completed (and not failed)."""
        return self._handshake_done

    @property
    def transport(self) -> Transport | None:
        """The transport below, once connected (a protocol's usual attribute)."""
        return self._transport

    @property
    def lower_transport(self) -> Transport:
        """The transport below (the socket, pipe or memory transport)."""
        if self._transport is None:
            raise TLSError("the TLS layer has no transport yet")
        return self._transport

    # --------------------------------------------------- the transport below

    def connection_made(self, transport: Transport) -> None:
        """Start the handshake, then tell the application it is connected."""
        self.attach(transport)
        self._app.connection_made(self.app_transport)

    def attach(self, transport: Transport, *, reading_paused: bool = False) -> None:
        """Start on ``transport`` without announcing the connection (start_tls does this).

        ``reading_paused``: the application had paused the transport's
        reading before the switch.  That pause becomes the application's
        pause of the TLS transport, so its ``resume_reading`` there resumes
        the transport below; until then the layer processes nothing (the
        handshake included).
        """
        self._transport = transport
        self._app_reading_paused = reading_paused
        self._clock = clock_of(transport)
        self._timer = self._clock.call_later(self._handshake_timeout, self._handshake_timed_out)
        self._process()

    def data_received(self, data: bytes) -> None:
        """Ciphertext from the peer."""
        if self._state == _CLOSED:
            return
        self._incoming.write(data)
        if self._app_reading_paused:
            if self._incoming.pending > MAX_HELD_CIPHERTEXT:
                self.lower_transport.pause_reading()
            return
        self._process()

    def eof_received(self) -> bool:
        """The peer ended the byte stream; with or without close_notify?"""
        if self._state == _CLOSED:
            return False
        if self._close_notify_received or self._state == _CLOSING:
            return False
        if self._state == _HANDSHAKING:
            self._fail(TLSHandshakeError("the peer closed the connection during the TLS handshake"))
            return False
        if not self._truncation_is_eof:
            self._lost_exc = TLSTruncatedError(
                "the peer closed the connection without a TLS close_notify: the data may be truncated"
            )
            self._state = _CLOSED
            return False
        self._close_notify_received = True  # treated as one, by request
        return bool(self._app.eof_received())

    def connection_lost(self, exc: BaseException | None) -> None:
        """The transport below is gone: tell the application, once."""
        self._cancel_timer()
        was_handshaking = self._state == _HANDSHAKING
        self._state = _CLOSED
        if self._lost_exc is not None:
            exc = self._lost_exc
        elif was_handshaking:
            message = "the connection was lost during the TLS handshake"
            if exc is None:
                exc = TLSHandshakeError(message)
            else:
                cause, exc = exc, TLSHandshakeError(f"{message}: {exc}")
                exc.__cause__ = cause
        if self._app_lost:
            return
        self._app_lost = True
        self._held.clear()
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
        if not data or self._state in (_CLOSING, _CLOSED):
            return
        if self._state == _HANDSHAKING or self._held:
            piece = bytes(data)
            self._held.append(piece)
            self._held_size += len(piece)
            if self._flow.should_pause(self._held_size) and not self._app_writing_paused:
                self._app_writing_paused = True
                self._app.pause_writing()
            return
        self._encrypt(data)
        self._flush()

    def write_eof(self) -> None:
        """Send close_notify once the held writes are out; keep reading."""
        if self._eof_requested or self._state in (_CLOSING, _CLOSED):
            return
        self._eof_requested = True
        if self._state == _OPEN and not self._held:
            self._send_close_notify()
            self._state = _EOF_SENT
            if self._close_notify_received:
                self.lower_transport.close()

    def close(self) -> None:
        """close_notify, then wait a bounded time for the peer's; before the
        handshake completes, abort."""
        if self._state in (_CLOSING, _CLOSED):
            return
        if self._state == _HANDSHAKING:
            self.abort()
            return
        self._state = _CLOSING
        self._held.clear()
        self._held_size = 0
        if not self._eof_requested:
            self._send_close_notify()
        if self._close_notify_received:
            self.lower_transport.close()
            return
        # Keep reading: the peer's close_notify is what we wait for.
        self._app_reading_paused = False
        self.lower_transport.resume_reading()
        self._timer = self._clock_().call_later(self._close_timeout, self._close_timed_out)

    def abort(self) -> None:
        """Drop the session and the transport below at once."""
        if self._state == _CLOSED and self._app_lost:
            return
        self._state = _CLOSED
        self._held.clear()
        self._held_size = 0
        self._cancel_timer()
        if self._transport is not None:
            self._transport.abort()

    def is_closing(self) -> bool:
        """Whether close() or abort() was called, or the session ended."""
        return self._state in (_CLOSING, _CLOSED)

    def pause_reading(self) -> None:
        """Deliver no plaintext until resume_reading; pause the transport below."""
        if self._app_reading_paused or self._state == _CLOSED:
            return
        self._app_reading_paused = True
        self.lower_transport.pause_reading()

    def resume_reading(self) -> None:
        """Deliver what was held, soon, and read on."""
        if not self._app_reading_paused:
            return
        self._app_reading_paused = False
        if self._state == _CLOSED:
            return
        self.lower_transport.resume_reading()
        # Not from inside this call: the application may be in data_received.
        self._clock_().call_later(0, self._process)

    def is_reading(self) -> bool:
        """Whether plaintext is being delivered."""
        return not self._app_reading_paused and self._state not in (_CLOSING, _CLOSED)

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

    def _clock_(self) -> Clock:
        if self._clock is None:
            raise TLSError("the TLS layer has no transport yet")
        return self._clock

    def _process(self) -> None:
        """Advance the session with what is in the incoming buffer."""
        if self._processing:
            return
        self._processing = True
        try:
            if self._state == _HANDSHAKING and not self._advance_handshake():
                return
            if self._state != _CLOSED and not self._app_reading_paused:
                self._read_plaintext()
        finally:
            self._processing = False

    def _advance_handshake(self) -> bool:
        """Step the handshake; True once it has completed."""
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self._flush()  # the alert that says why, for the peer
            failure = TLSHandshakeError(f"TLS handshake failed: {_describe(exc)}")
            failure.__cause__ = exc
            self._fail(failure)
            return False
        self._cancel_timer()
        self._state = _OPEN
        self._handshake_done = True
        self._flush()
        if self._on_handshake is not None:
            self._on_handshake(self.app_transport)
        self._release_held()
        return True

    def _release_held(self) -> None:
        held, self._held = self._held, []
        self._held_size = 0
        for piece in held:
            if self._state != _OPEN:
                return
            self._encrypt(piece)
        self._flush()
        if self._state == _OPEN and self._eof_requested:
            self._eof_requested = False
            self.write_eof()
        self._maybe_resume_app()

    def _read_plaintext(self) -> None:
        chunks = []
        while True:
            try:
                chunk = self._ssl.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._close_notify_received = True
                break
            except ssl.SSLError as exc:
                self._flush()
                failure = TLSError(f"TLS session failed: {_describe(exc)}")
                failure.__cause__ = exc
                self._fail(failure)
                return
            if not chunk:
                self._close_notify_received = True
                break
            chunks.append(chunk)
        # Reading may have produced records to send (session tickets, key updates).
        self._flush()
        if chunks and self._state in (_OPEN, _EOF_SENT):
            self._app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self._close_notify_received:
            self._peer_closed()

    def _peer_closed(self) -> None:
        """The peer's close_notify arrived."""
        if self._state == _CLOSING:
            self._cancel_timer()
            self.lower_transport.close()
        elif self._state == _EOF_SENT:
            self._app.eof_received()
            self.lower_transport.close()
        elif self._state == _OPEN and not self._app.eof_received():
            self.close()

    def _encrypt(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[self._ssl.write(view) :]
        except ssl.SSLError as exc:
            failure = TLSError(f"TLS session failed: {_describe(exc)}")
            failure.__cause__ = exc
            self._fail(failure)

    def _send_close_notify(self) -> None:
        try:
            self._ssl.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        except ssl.SSLError:
            pass  # the session is already broken: closing is all that is left
        self._flush()

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data and self._transport is not None:
            self._transport.write(data)

    def _maybe_resume_app(self) -> None:
        if self._app_writing_paused and not self._lower_writing_paused and not self._held:
            self._app_writing_paused = False
            self._flow.paused = False
            self._app.resume_writing()

    def _fail(self, exc: BaseException) -> None:
        """A fatal error: the application hears ``exc``; the transport closes
        (sending any alert OpenSSL queued)."""
        if self._lost_exc is None:
            self._lost_exc = exc
            self._log_failure(exc)
        self._cancel_timer()
        self._state = _CLOSED
        self._held.clear()
        self._held_size = 0
        if self._transport is not None:
            self._transport.close()

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if self._state != _HANDSHAKING:
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
        if self._transport is not None:
            self._transport.close()

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


def _describe(exc: BaseException) -> str:
    """A one-line account of an ssl error (the verify message when there is one)."""
    verify = getattr(exc, "verify_message", None)
    if verify:
        return f"certificate verify failed: {verify}"
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).lower().replace("_", " ")
    return str(exc)
