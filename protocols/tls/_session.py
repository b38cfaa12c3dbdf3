"""A TLS session alone: ciphertext and events in, ciphertext and events out.

:class:`TLSSession` is the TLS protocol and nothing else.  It runs an
:class:`ssl.SSLObject` over two :class:`ssl.MemoryBIO` buffers and knows
no transport, no clock and no protocol above it: the caller hands it the
peer's bytes and its own plaintext, and gets back the bytes to send and
what happened.  The adapter that puts it on a weft transport (holding
writes, flow control, the handshake and close deadlines) is
:class:`~weft.protocols.tls._layer.TLSProtocol`; two sessions can also talk
to each other directly, which is how the tests drive it::

    client = TLSSession(client_context, server_side=False, server_hostname="example.org")
    server = TLSSession(server_context, server_side=True)
    for event in client.next_events():          # SendData: the ClientHello
        ...
    server.receive_data(client_hello)
    server.next_events()                         # [SendData(ServerHello...)]
    ...                                          # until each says HandshakeComplete
    server.receive_data(client.send(b"ping"))
    server.next_events()                         # [ApplicationData(b"ping")]

The calls, h11's way:

* :meth:`~TLSSession.receive_data` buffers the peer's bytes; nothing happens
  until :meth:`~TLSSession.next_events`, so a caller whose reader has paused
  holds them here, undecrypted.
* :meth:`~TLSSession.next_events` advances the handshake, or decrypts what
  is buffered, and returns the events in the order they happened:
  :class:`SendData` (records for the peer: handshake messages, alerts,
  session tickets), :class:`HandshakeComplete`, :class:`ApplicationData`,
  :class:`CloseNotifyReceived`, :class:`SessionFailed`.  It stops after
  :class:`HandshakeComplete`, so the caller acts on the handshake (sends what
  it held back, pauses if it likes) before the first plaintext.
* :meth:`~TLSSession.receive_eof` reports the end of the byte stream: a
  handshake error during the handshake, :class:`StreamTruncated` when no
  ``close_notify`` came first.
* :meth:`~TLSSession.send` and :meth:`~TLSSession.close` return the
  ciphertext of the plaintext given, or of ``close_notify``.

Bad bytes from the peer are an event (:class:`SessionFailed`), never an
exception; a call the session's state forbids (sending before the handshake
completes, closing twice) raises :class:`~weft.protocols.tls._errors.TLSStateError`.
The states and the moves between them are :class:`SessionState` and
:data:`TRANSITIONS`::

    HANDSHAKING --handshake done--> OPEN --close()--> WRITE_CLOSED --peer's close_notify or EOF--> CLOSED
         |                            |                                                             ^
         |                            +--peer's close_notify or EOF--> READ_CLOSED --close()--------+
         +--error, EOF--> HANDSHAKE_FAILED          (any open state) --error--> FAILED
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass

from weft.protocols.tls._errors import (
    TLSError,
    TLSHandshakeError,
    TLSStateError,
    TLSTruncatedError,
)

__all__ = [
    "READ_SIZE",
    "TRANSITIONS",
    "ApplicationData",
    "CloseNotifyReceived",
    "HandshakeComplete",
    "SendData",
    "SessionFailed",
    "SessionInput",
    "SessionState",
    "StreamTruncated",
    "TLSEvent",
    "TLSSession",
]

#: Plaintext taken from the session per ``SSLObject.read`` call.
READ_SIZE = 64 * 1024


class SessionState(enum.Enum):
    """Where a TLS session is."""

    #: The handshake is under way: no application data either way yet.
    HANDSHAKING = "handshaking"
    #: The handshake failed (or the peer left during it): nothing more moves.
    HANDSHAKE_FAILED = "handshake failed"
    #: Application data both ways.
    OPEN = "open"
    #: Our ``close_notify`` is sent; the peer may still send.
    WRITE_CLOSED = "write closed"
    #: The peer's side ended (its ``close_notify``, or the end of the stream
    #: without one); we may still send.
    READ_CLOSED = "read closed"
    #: Both sides ended.
    CLOSED = "closed"
    #: The session broke after the handshake (a bad record): nothing more moves.
    FAILED = "failed"


class SessionInput(enum.Enum):
    """What can happen to a session: the caller's calls and what the peer's bytes do."""

    HANDSHAKE_DONE = "complete the handshake"
    SEND = "send application data"
    SEND_CLOSE = "send close_notify"
    CLOSE_NOTIFY = "receive close_notify"
    EOF = "receive the end of the stream"
    FAILURE = "fail"


_S, _I = SessionState, SessionInput

#: ``TRANSITIONS[state][input]`` is the state ``input`` moves a session in
#: ``state`` to; an input missing from ``TRANSITIONS[state]`` is illegal there
#: and raises :class:`~weft.protocols.tls._errors.TLSStateError`.
TRANSITIONS: dict[SessionState, dict[SessionInput, SessionState]] = {
    _S.HANDSHAKING: {
        _I.HANDSHAKE_DONE: _S.OPEN,
        _I.EOF: _S.HANDSHAKE_FAILED,
        _I.FAILURE: _S.HANDSHAKE_FAILED,
    },
    _S.HANDSHAKE_FAILED: {_I.EOF: _S.HANDSHAKE_FAILED},
    _S.OPEN: {
        _I.SEND: _S.OPEN,
        _I.SEND_CLOSE: _S.WRITE_CLOSED,
        _I.CLOSE_NOTIFY: _S.READ_CLOSED,
        _I.EOF: _S.READ_CLOSED,
        _I.FAILURE: _S.FAILED,
    },
    _S.WRITE_CLOSED: {
        _I.CLOSE_NOTIFY: _S.CLOSED,
        _I.EOF: _S.CLOSED,
        _I.FAILURE: _S.FAILED,
    },
    _S.READ_CLOSED: {
        _I.SEND: _S.READ_CLOSED,
        _I.SEND_CLOSE: _S.CLOSED,
        _I.EOF: _S.READ_CLOSED,
        _I.FAILURE: _S.FAILED,
    },
    _S.CLOSED: {_I.EOF: _S.CLOSED},
    _S.FAILED: {_I.EOF: _S.FAILED},
}

# The states in which application data may be sent, derived from the table
# (which stays the one authority): send() tests this first, as the write
# path's one per-call check.  Tuples, not sets, on the per-call paths: ``in``
# on a tuple compares by identity first, where a set would call Enum's
# __hash__, which is Python code.
_CAN_SEND = tuple(state for state, moves in TRANSITIONS.items() if moves.get(_I.SEND) is state)

# The states in which the peer's bytes still mean something.
_READING = (_S.OPEN, _S.WRITE_CLOSED, _S.HANDSHAKING)

# Module names for the states the per-call paths test: an Enum member read
# as a class attribute costs a lookup through the enum's metaclass each time.
_HANDSHAKING, _HANDSHAKE_FAILED = _S.HANDSHAKING, _S.HANDSHAKE_FAILED
_OPEN, _WRITE_CLOSED = _S.OPEN, _S.WRITE_CLOSED


# ---------------------------------------------------------------- the events
# (Not frozen: a frozen dataclass's __init__ costs several times a plain
# one's, and one is made for every read.)


@dataclass(slots=True)
class SendData:
    """Ciphertext for the peer (handshake messages, alerts, tickets): send it, in order."""

    data: bytes


@dataclass(slots=True)
class HandshakeComplete:
    """The handshake completed: the peer's certificate and the ALPN choice are known."""


@dataclass(slots=True)
class ApplicationData:
    """Plaintext from the peer (everything decrypted in one :meth:`TLSSession.next_events`)."""

    data: bytes


@dataclass(slots=True)
class CloseNotifyReceived:
    """The peer sent ``close_notify``: it will send no more."""


@dataclass(slots=True)
class StreamTruncated:
    """The byte stream ended without the peer's ``close_notify``: what came
    may have been cut short.  Sending may go on."""

    error: TLSTruncatedError


@dataclass(slots=True)
class SessionFailed:
    """The session failed (a :class:`~weft.protocols.tls._errors.TLSHandshakeError`
    during the handshake); nothing more moves.  A :class:`SendData` before
    it carries the alert that tells the peer why."""

    error: TLSError


#: What :meth:`TLSSession.next_events` and :meth:`TLSSession.receive_eof` return.
TLSEvent = (
    SendData | HandshakeComplete | ApplicationData | CloseNotifyReceived | StreamTruncated | SessionFailed
)


# --------------------------------------------------------------- the session


class TLSSession:
    """One TLS session over memory buffers; see the module docstring.

    ``server_hostname`` (client side) is the name the peer's certificate must
    carry, and the SNI sent.  Building the session raises what
    :meth:`ssl.SSLContext.wrap_bio` raises for bad arguments.
    """

    __slots__ = ("_context", "_incoming", "_outgoing", "_ssl", "_state")

    def __init__(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None
    ) -> None:
        self._context = context
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl: ssl.SSLObject = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._state = SessionState.HANDSHAKING

    # ------------------------------------------------------------- facts

    @property
    def state(self) -> SessionState:
        """Where the session is."""
        return self._state

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The :class:`ssl.SSLObject` (for its certificate, cipher, version, ALPN...)."""
        return self._ssl

    @property
    def context(self) -> ssl.SSLContext:
        """The context the session was made from (an SNI callback may have
        moved the session itself to another)."""
        return self._context

    @property
    def handshake_complete(self) -> bool:
        """Whether the handshake has completed (it stays so if the session fails later)."""
        state = self._state
        return state is not _HANDSHAKING and state is not _HANDSHAKE_FAILED

    @property
    def pending_ciphertext(self) -> int:
        """Bytes received and not yet decrypted."""
        return self._incoming.pending

    # ------------------------------------------------------------- input

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer ``data``, bytes from the peer; :meth:`next_events` acts on them.

        Bytes that come after the peer's side ended (or the session failed)
        mean nothing and are dropped.
        """
        if self._state in _READING:
            self._incoming.write(data)

    def receive_eof(self) -> list[TLSEvent]:
        """The byte stream from the peer ended.

        Returns ``[SessionFailed(TLSHandshakeError)]`` during the handshake,
        ``[StreamTruncated]`` if the peer's ``close_notify`` did not come
        first, else nothing.
        """
        state = self._state
        self._move(_I.EOF)
        if state is _HANDSHAKING:
            error = TLSHandshakeError("the peer closed the connection during the TLS handshake")
            return [SessionFailed(error)]
        if state is _OPEN or state is _WRITE_CLOSED:
            return [
                StreamTruncated(
                    TLSTruncatedError(
                        "the peer closed the connection without a TLS close_notify: the data may be truncated"
                    )
                )
            ]
        return []

    def next_events(self) -> list[TLSEvent]:
        """Act on the bytes received so far; return what happened, in order.

        During the handshake: step it (a client's first call gives its
        ClientHello), stopping after :class:`HandshakeComplete`; call again
        for the plaintext that came with it.  After: decrypt everything
        buffered into one :class:`ApplicationData`, then
        :class:`CloseNotifyReceived` if the peer's came.  A failure is
        :class:`SessionFailed` (the plaintext decrypted before it is dropped
        with the session).  Records to send come as :class:`SendData`, before
        the events that follow them.  Nothing happens once the peer's side has
        ended.
        """
        state = self._state
        if state is not _OPEN and state is not _WRITE_CLOSED:
            return self._step_handshake() if state is _HANDSHAKING else []
        # Decrypt everything buffered (the read path: inline, no helper).
        chunks: list[bytes] = []
        close_notify = False
        read = self._ssl.read
        incoming = self._incoming
        while True:
            try:
                chunk = read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                close_notify = True
                break
            except ssl.SSLError as exc:
                return self._failed(TLSError, "TLS session failed", exc)
            if not chunk:
                close_notify = True
                break
            chunks.append(chunk)
            if not incoming.pending:
                # Every byte received is consumed, and a read returns a whole
                # record (READ_SIZE is over TLS's 16 KiB): another read could
                # only raise SSLWantReadError, whose making (a formatted
                # message) costs more than this test.
                break
        # Reading may have produced records to send (session tickets, key
        # updates): they go first.
        outgoing = self._outgoing
        events: list[TLSEvent] = [SendData(outgoing.read())] if outgoing.pending else []
        if chunks:
            events.append(ApplicationData(chunks[0] if len(chunks) == 1 else b"".join(chunks)))
        if close_notify:
            self._move(_I.CLOSE_NOTIFY)
            events.append(CloseNotifyReceived())
        return events

    # ------------------------------------------------------------ output

    def send(self, data: bytes | bytearray | memoryview) -> bytes:
        """Encrypt ``data``; return the ciphertext (with any record queued before it).

        Legal once the handshake has completed and until :meth:`close`;
        anywhere else it raises
        :class:`~weft.protocols.tls._errors.TLSStateError`.  If the session
        cannot encrypt (it broke), it fails and raises
        :class:`~weft.protocols.tls._errors.TLSError`.
        """
        if self._state not in _CAN_SEND:
            self._move(_I.SEND)  # raises
        try:
            # Over a MemoryBIO a write takes everything at once; the loop
            # (with a view, to cut without copying) is for the exception.
            written = self._ssl.write(data)
            if written != (len(data) if type(data) is bytes else memoryview(data).nbytes):
                view = memoryview(data).cast("B")[written:]
                while view:
                    view = view[self._ssl.write(view) :]
        except ssl.SSLError as exc:
            self._move(_I.FAILURE)
            raise _failure(TLSError, "TLS session failed", exc) from exc
        return self._outgoing.read()

    def close(self) -> bytes:
        """Send ``close_notify``; return its ciphertext.  Receiving goes on until the peer's.

        Legal once the handshake has completed, once; anywhere else it
        raises :class:`~weft.protocols.tls._errors.TLSStateError`.
        """
        self._move(_I.SEND_CLOSE)
        try:
            self._ssl.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass  # sent; the peer's close_notify has not come (or has)
        except ssl.SSLError:
            pass  # the session is already broken: closing is all that is left
        return self._outgoing.read()

    # ------------------------------------------------------------ inside

    def _move(self, event: SessionInput) -> None:
        """Take the move ``event`` makes from the current state, or raise if it is illegal."""
        try:
            self._state = TRANSITIONS[self._state][event]
        except KeyError:
            raise TLSStateError(
                f"a TLS session cannot {event.value} when {self._state.value}: "
                "send only after the handshake completes and before close(), and close once"
            ) from None

    def _step_handshake(self) -> list[TLSEvent]:
        events: list[TLSEvent] = []
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._queue_output(events)
            return events
        except (ssl.SSLError, ssl.CertificateError) as exc:
            return self._failed(TLSHandshakeError, "TLS handshake failed", exc)
        self._move(_I.HANDSHAKE_DONE)
        self._queue_output(events)
        events.append(HandshakeComplete())
        return events

    def _failed(self, kind: type[TLSError], what: str, exc: BaseException) -> list[TLSEvent]:
        """Fail the session for ``exc``: the alert OpenSSL queued for the peer, then the error."""
        events: list[TLSEvent] = []
        self._queue_output(events)
        self._move(_I.FAILURE)
        events.append(SessionFailed(_failure(kind, what, exc)))
        return events

    def _queue_output(self, events: list[TLSEvent]) -> None:
        if self._outgoing.pending:
            events.append(SendData(self._outgoing.read()))


def _failure(kind: type[TLSError], what: str, exc: BaseException) -> TLSError:
    """``kind`` saying ``what`` and why, caused by ``exc``."""
    error = kind(f"{what}: {_describe(exc)}")
    error.__cause__ = exc
    return error


def _describe(exc: BaseException) -> str:
    """A one-line account of an ssl error (the verify message when there is one)."""
    verify = getattr(exc, "verify_message", None)
    if verify:
        return f"certificate verify failed: {verify}"
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).lower().replace("_", " ")
    return str(exc)
