"""What the HTTP server and client share in driving h11: the pump, and the
callbacks that wait for the connection to take more.

:class:`H11Pump` owns one :class:`h11.Connection` for a protocol (the server
or the client: the role is the only difference h11 sees) and does the three
things both do with it:

* **feeding**: the bytes received go to h11, a large read a piece at a time
  (:data:`FEED_SIZE`), and its end once every piece is in; the
  :class:`~weft.protocols.http._wire.HeadMeter` sees each piece;
* **pumping**: events are taken out while the protocol wants them, until h11
  needs data or pauses (a message complete, the next one waiting for the
  protocol's ``start_next_cycle``).  Reading goes on only while h11 waits
  for data, so h11's buffer stays bounded: the transport's reading is paused
  whenever the pump stops for any other reason;
* **sending**: events are encoded, a refused one turned into
  :class:`~weft.protocols.http._errors.HTTPUsageError` after the protocol has
  dropped the connection.

The protocol keeps what differs: what an event means, when it wants the
next one, what a malformed message does, where encoded bytes go.

:class:`WritableWaiters` keeps the ``on_writable`` callbacks of the messages
being written (a server's responses, a client's streamed requests) and
calls them when the connection takes more, in order, one at a time while it
still does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import h11

from weft.protocols.contract import Clock, Transport
from weft.protocols.http._errors import HTTPError, HTTPUsageError
from weft.protocols.http._wire import HeadMeter, remote_error

__all__ = ["FEED_SIZE", "H11Pump", "WaitingMessage", "WritableWaiters"]

#: The most handed to h11 at once.  h11 moves what it still holds each time
#: it takes an event out of its buffer (a ``del`` at the front of a
#: bytearray), and the head meter copies it once per message: one 256 KiB
#: read of pipelined requests (asyncio's and uvloop's read size) would cost
#: each of its thousands of requests two 256 KiB copies.  Fed a piece at a
#: time, a message costs what its own bytes cost; a read smaller than this,
#: the usual case, goes to h11 as it is.
FEED_SIZE = 16 * 1024


class H11Pump:
    """One h11 connection driven for an HTTP protocol; see the module docstring.

    The protocol hands over its judgement as four callables: ``wants_event()``
    (take another event now?), ``handle(event)``, ``need_data()`` (h11 waits
    for bytes: a chunk's announced size may be checked now) and
    ``peer_error(error)`` (h11 refused the peer's bytes), plus
    ``cannot_send(exc)``, called with h11's ``LocalProtocolError`` before
    :meth:`encode` raises.  It sets :attr:`transport` once connected and
    calls :meth:`stop` when the connection is done with HTTP.
    """

    __slots__ = (
        "_cannot_send",
        "_eof",
        "_handle",
        "_inbox",
        "_inbox_size",
        "_max_head_size",
        "_need_data",
        "_peer_error",
        "_wants_event",
        "connection",
        "meter",
        "pumping",
        "stopped",
        "transport",
    )

    def __init__(
        self,
        role: type[h11.CLIENT] | type[h11.SERVER],
        *,
        max_head_size: int,
        wants_event: Callable[[], bool],
        handle: Callable[[Any], object],
        need_data: Callable[[], object],
        peer_error: Callable[[HTTPError], object],
        cannot_send: Callable[[h11.LocalProtocolError], object],
    ) -> None:
        #: The h11 connection (the protocol reads its states and starts its cycles).
        self.connection = h11.Connection(role, max_incomplete_event_size=max_head_size)
        #: Measures each head h11 parses (see HeadMeter).
        self.meter = HeadMeter(self.connection)
        #: The transport whose reading the pump pauses and resumes; None until connected.
        self.transport: Transport | None = None
        #: Whether the protocol is done with HTTP on this connection: no more pumping.
        self.stopped = False
        self._max_head_size = max_head_size
        self._wants_event = wants_event
        self._handle = handle
        self._need_data = need_data
        self._peer_error = peer_error
        self._cannot_send = cannot_send
        #: Whether :meth:`pump` is running (a call now returns at once: a
        #: handler may pump from inside ``handle``).
        self.pumping = False
        # Received and not yet handed to h11 (see FEED_SIZE); reading stays
        # paused while anything waits here.
        self._inbox: deque[memoryview] = deque()
        self._inbox_size = 0
        self._eof = False  # the peer's EOF came: h11 hears it once the inbox is empty

    # ------------------------------------------------------------- feeding

    def feed(self, data: bytes) -> None:
        """Bytes from the peer: to h11 now, or a piece at a time as it needs them."""
        if self._inbox_size or len(data) > FEED_SIZE:
            self._inbox.append(memoryview(data))
            self._inbox_size += len(data)
            self._feed_piece()
        else:
            self.meter.fed(data)
            self.connection.receive_data(data)

    def feed_eof(self) -> None:
        """The peer will send no more: h11 hears it after what it has not had yet."""
        self._eof = True
        if not self._inbox_size:
            self.connection.receive_data(b"")

    def pending(self) -> int:
        """Bytes of the next message received so far (0: the peer is silent)."""
        return self.meter.pending() + self._inbox_size

    def drained(self) -> bool:
        """Whether h11 holds no byte and no EOF, and nothing waits to be fed to it."""
        return not self._inbox_size and not self._eof and self.connection.trailing_data == (b"", False)

    def _feed_piece(self) -> None:
        """Hand h11 the next piece of the inbox (then its EOF, if that came)."""
        inbox = self._inbox
        head = inbox[0]
        if len(head) <= FEED_SIZE:
            inbox.popleft()
            piece = head.tobytes()
        else:
            piece, inbox[0] = head[:FEED_SIZE].tobytes(), head[FEED_SIZE:]
        self._inbox_size -= len(piece)
        self.meter.fed(piece)
        self.connection.receive_data(piece)
        if not self._inbox_size and self._eof:
            self.connection.receive_data(b"")

    # ------------------------------------------------------------- pumping

    def pump(self) -> None:
        """Take events from h11 while the protocol wants them; then read on
        only if h11 is waiting for bytes."""
        transport = self.transport
        if self.pumping or self.stopped or transport is None:
            return
        self.pumping = True
        need_data = False
        connection = self.connection
        wants_event, handle = self._wants_event, self._handle
        try:
            while not self.stopped and wants_event():
                try:
                    event = connection.next_event()
                except h11.RemoteProtocolError as exc:
                    self._peer_error(remote_error(exc, self._max_head_size))
                    break
                if event is h11.NEED_DATA:
                    self._need_data()
                    if self._inbox_size:
                        self._feed_piece()
                        continue
                    need_data = True
                    break
                if event is h11.PAUSED:
                    break
                handle(event)
        finally:
            self.pumping = False
        if not self.stopped:
            # Read only while h11's buffer is being drained, so it stays bounded.
            if need_data:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def stop(self) -> None:
        """No more HTTP on this connection: pump no more, drop what waits to be fed."""
        self.stopped = True
        self._inbox.clear()
        self._inbox_size = 0

    # ------------------------------------------------------------- sending

    def encode(self, *events: h11.Event) -> bytes:
        """The bytes of ``events``, in order.

        Raises :class:`~weft.protocols.http._errors.HTTPUsageError` (caused
        by h11's ``LocalProtocolError``) for an event h11 refuses, after
        ``cannot_send`` has dropped the connection: nothing after it can be
        trusted to frame right.
        """
        send = self.connection.send
        pieces: list[bytes] = []
        for event in events:
            try:
                data = send(event)
            except h11.LocalProtocolError as exc:
                self._cannot_send(exc)
                raise HTTPUsageError(f"cannot send {type(event).__name__}: {exc}") from exc
            if data:
                pieces.append(data)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class WaitingMessage(Protocol):
    """A message whose writer may wait for the connection: a server's
    response, a client's streamed request."""

    @property
    def _in_turn(self) -> bool:
        """Whether the message is the one on the connection now (its callbacks may run)."""

    @property
    def _writes_over(self) -> bool:
        """Whether the message is finished or failed (its callbacks are dropped)."""


class WritableWaiters:
    """``on_writable`` callbacks, each for a message, run when the connection takes more.

    ``is_writable()`` says whether it does; ``call(callback)`` runs one (a
    server catches what a handler's callback raises).  :meth:`run` calls the
    waiting callbacks of messages in turn, in the order they came, each once,
    and stops as soon as the connection no longer takes more (the rest wait
    for the next run).  A callback added while the connection takes more
    runs on the next clock turn, never inside the call that added it.
    """

    __slots__ = ("_call", "_is_writable", "_waiting", "clock")

    def __init__(
        self,
        is_writable: Callable[[], bool],
        call: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        self._is_writable = is_writable
        self._call = call
        self._waiting: list[tuple[WaitingMessage, Callable[[], object]]] = []
        #: The clock a run is scheduled on; None until connected.
        self.clock: Clock | None = None

    def add(self, message: WaitingMessage, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the connection takes more and ``message`` is in turn."""
        self._waiting.append((message, callback))
        if message._in_turn and self._is_writable():
            self.schedule()

    def schedule(self) -> None:
        """Run on the next clock turn."""
        if self.clock is not None:
            self.clock.call_later(0, self.run)

    def waiting_for(self, message: WaitingMessage) -> bool:
        """Whether a callback waits for ``message``."""
        return any(waiting is message for waiting, _ in self._waiting)

    def wake_for(self, message: WaitingMessage) -> None:
        """``message`` has come to its turn: run on the next clock turn if a callback waits for it."""
        for waiting, _ in self._waiting:
            if waiting is message:
                self.schedule()
                return

    def run(self) -> None:
        """Call what waits for the messages in turn, while the connection takes more."""
        waiting = self._waiting
        # Only the callbacks here now: one added by a callback waits for the
        # next run (it asked while the connection took more: next turn).
        left = len(waiting)
        index = 0
        while left and index < len(waiting) and self._is_writable():
            left -= 1
            message, callback = waiting[index]
            if not message._in_turn:
                index += 1
                continue
            del waiting[index]
            if message._writes_over:
                continue
            if self._call is None:
                callback()
            else:
                self._call(callback)

    def clear(self) -> None:
        """Drop every callback (the connection is done)."""
        self._waiting.clear()
