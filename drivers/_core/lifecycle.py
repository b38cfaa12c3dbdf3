"""The lifecycle every weft transport goes through, written once.

A transport's state is three small state machines, each an enum and a
transition table (as h11 keeps its connection states):

* the **write side** (:class:`WriteState`): open, then, after
  ``write_eof()``, the EOF waiting behind the queued bytes, then sent;
* the **read side** (:class:`ReadState`): reading or paused, before or after
  the peer's EOF, and stopped once the connection is closing;
* the **connection** (:class:`ConnectionState`): open, closing with a flush,
  aborting (the queue dropped, the I/O below stopping), lost.

``close()`` and ``abort()`` end both directions at once, and a ``write()``
after ``write_eof()`` raises even once the transport is closing (as in
asyncio): keeping the connection's end in a machine of its own keeps each
table small, where folding it into the sides would double their states
("closing after an EOF", "lost after an EOF"...).

A transport holds one :class:`TransportLifecycle` and tells it what happened
(:meth:`TransportLifecycle.apply` with an :class:`Event`).  An event the
tables do not allow in the current state is a driver bug and raises
:class:`LifecycleError`; what the contract calls harmless (``close()``
twice, ``pause_reading()`` while paused) is never applied: the transport
asks a flag first and returns.  The flags (:attr:`~TransportLifecycle.closing`,
:attr:`~TransportLifecycle.writable`, :attr:`~TransportLifecycle.reading`...)
are plain attributes, recomputed only when a transition happens, so a hot
path reads an attribute and never calls a method to learn the state.

What each user-visible call does in each state is tabled in https://github.com/weft-project/weft/blob/main/docs/drivers.md
("One transport lifecycle"); the docstrings of the states below say the
same.
"""

from __future__ import annotations

import enum
from typing import NoReturn, TypeVar

from weft.protocols.errors import InvalidStateError

__all__ = [
    "CONNECTION_TRANSITIONS",
    "READ_TRANSITIONS",
    "WRITE_TRANSITIONS",
    "ConnectionState",
    "Event",
    "LifecycleError",
    "ReadState",
    "TransportLifecycle",
    "WriteState",
]


class WriteState(enum.Enum):
    """Where the write side is in its half-close.

    Whether writes are *ignored* because the connection is closing is the
    connection's business (:class:`ConnectionState`); this machine only
    remembers the EOF, which makes ``write()`` raise for good.
    """

    #: ``write()`` and ``write_file()`` send or queue (unless the connection
    #: is closing: then they are ignored); ``write_eof()`` moves to EOF_PENDING.
    OPEN = "open"
    #: ``write_eof()`` was called while bytes were still queued: they go out,
    #: then the EOF.  ``write()`` and ``write_file()`` raise
    #: :class:`~weft.protocols.errors.WriteAfterEofError`; ``write_eof()`` is harmless.
    EOF_PENDING = "EOF pending"
    #: The EOF has gone out, or to the layer that sends it after what it
    #: already holds (asyncio's transport).  Writes raise as in EOF_PENDING.
    EOF_SENT = "EOF sent"


class ReadState(enum.Enum):
    """Whether the protocol is being handed what the peer sends."""

    #: ``data_received`` runs as data arrives; ``is_reading()`` is true.
    READING = "reading"
    #: ``pause_reading()`` was called: nothing is delivered (data is left in
    #: the kernel, or held and delivered after ``resume_reading()``);
    #: ``is_reading()`` is false.
    PAUSED = "paused"
    #: The peer's EOF has come (``eof_received`` ran, or runs once the data
    #: held before it is delivered); nothing more will.  ``is_reading()``
    #: stays true, as in asyncio: the protocol has not paused.
    AT_EOF = "at EOF"
    #: Paused, and the peer's EOF has come: after ``resume_reading()`` what
    #: was held is delivered, the EOF last.
    PAUSED_AT_EOF = "paused at EOF"
    #: The connection is closing or lost: nothing is delivered any more, and
    #: ``pause_reading()``/``resume_reading()`` are harmless.
    STOPPED = "stopped"


class ConnectionState(enum.Enum):
    """How far the connection is from its end."""

    #: Both directions work as their own states say; ``is_closing()`` is false.
    OPEN = "open"
    #: ``close()`` was called: reading stopped, what was queued is being
    #: sent, and the transport closes after it.  Writes are ignored (or
    #: raise after ``write_eof()``); ``close()`` is harmless; ``abort()``
    #: drops the queue (ABORTING).
    CLOSING = "closing"
    #: ``abort()``, an I/O error or a protocol callback that raised: the
    #: queue is dropped and the I/O below is stopping (the asyncio and
    #: blocking drivers wait for asyncio or their threads here; the reactor
    #: and memory transports go straight on to LOST).  ``close()`` and
    #: ``abort()`` are harmless.
    ABORTING = "aborting"
    #: Over: ``connection_lost`` is scheduled or has run.  Everything is
    #: harmless; writes are ignored (or raise after ``write_eof()``).
    LOST = "lost"


class Event(enum.Enum):
    """What happens to a transport: a call by its protocol, or news from below."""

    #: ``write_eof()`` on an open write side of an open connection.
    WRITE_EOF = "write_eof()"
    #: The EOF went out (the queue ahead of it is sent).
    EOF_SENT = "the EOF went out"
    #: ``pause_reading()`` while reading.
    PAUSE = "pause_reading()"
    #: ``resume_reading()`` while paused.
    RESUME = "resume_reading()"
    #: The peer's EOF came in.
    EOF_RECEIVED = "the peer's EOF came in"
    #: ``close()`` on an open connection.
    CLOSE = "close()"
    #: ``abort()``, an I/O error, or a protocol callback that raised.
    ABORT = "abort, error or failed callback"
    #: The connection ended: ``connection_lost`` is scheduled or has run.
    LOST = "the connection ended"


#: The write side's legal transitions: ``{state: {event: next state}}``.
WRITE_TRANSITIONS: dict[WriteState, dict[Event, WriteState]] = {
    WriteState.OPEN: {Event.WRITE_EOF: WriteState.EOF_PENDING},
    WriteState.EOF_PENDING: {Event.EOF_SENT: WriteState.EOF_SENT},
    WriteState.EOF_SENT: {},
}

#: The read side's legal transitions.  Besides these, the read side goes to
#: STOPPED from whatever state it is in when the connection leaves OPEN.
READ_TRANSITIONS: dict[ReadState, dict[Event, ReadState]] = {
    ReadState.READING: {Event.PAUSE: ReadState.PAUSED, Event.EOF_RECEIVED: ReadState.AT_EOF},
    ReadState.PAUSED: {Event.RESUME: ReadState.READING, Event.EOF_RECEIVED: ReadState.PAUSED_AT_EOF},
    ReadState.AT_EOF: {Event.PAUSE: ReadState.PAUSED_AT_EOF},
    ReadState.PAUSED_AT_EOF: {Event.RESUME: ReadState.AT_EOF},
    ReadState.STOPPED: {},
}

#: The connection's legal transitions.
CONNECTION_TRANSITIONS: dict[ConnectionState, dict[Event, ConnectionState]] = {
    ConnectionState.OPEN: {
        Event.CLOSE: ConnectionState.CLOSING,
        Event.ABORT: ConnectionState.ABORTING,
        Event.LOST: ConnectionState.LOST,
    },
    ConnectionState.CLOSING: {Event.ABORT: ConnectionState.ABORTING, Event.LOST: ConnectionState.LOST},
    ConnectionState.ABORTING: {Event.LOST: ConnectionState.LOST},
    ConnectionState.LOST: {},
}

_WRITE_EVENTS = frozenset({Event.WRITE_EOF, Event.EOF_SENT})
_READ_EVENTS = frozenset({Event.PAUSE, Event.RESUME, Event.EOF_RECEIVED})
_READING = frozenset({ReadState.READING, ReadState.AT_EOF})
_PAUSED = frozenset({ReadState.PAUSED, ReadState.PAUSED_AT_EOF})

_S = TypeVar("_S", WriteState, ReadState, ConnectionState)


class LifecycleError(InvalidStateError):
    """A driver told its transport's lifecycle of an event its state does not
    allow: a bug in the driver, never in the protocol (whose calls in the
    wrong state are harmless or raise their own documented errors)."""


class TransportLifecycle:
    """One transport's three states, and the flags its code reads.

    Change it only through :meth:`apply`.  The flags are attributes,
    recomputed on each transition; read them freely, on any path.
    """

    __slots__ = (
        "closing",
        "connection_state",
        "dropped",
        "eof_written",
        "lost",
        "paused",
        "read_state",
        "reading",
        "wants_data",
        "writable",
        "write_state",
    )

    def __init__(self) -> None:
        self.write_state = WriteState.OPEN
        self.read_state = ReadState.READING
        self.connection_state = ConnectionState.OPEN
        #: ``is_closing()``: the connection is not OPEN.
        self.closing = False
        #: The connection is LOST: ``connection_lost`` is scheduled or has run.
        self.lost = False
        #: ABORTING or LOST: nothing queued is left to send.
        self.dropped = False
        #: ``write()`` goes ahead: write side and connection OPEN.
        self.writable = True
        #: ``write_eof()`` was called: ``write()`` raises ``WriteAfterEofError``.
        self.eof_written = False
        #: ``is_reading()``: READING or AT_EOF.
        self.reading = True
        #: PAUSED or PAUSED_AT_EOF: ``resume_reading()`` has something to do.
        self.paused = False
        #: READING: the transport should be reading from the OS (not paused,
        #: not at EOF, not stopped).
        self.wants_data = True

    def apply(self, event: Event) -> None:
        """Move by ``event``; :class:`LifecycleError` if the state does not allow it."""
        if event in _WRITE_EVENTS:
            if event is Event.WRITE_EOF and self.connection_state is not ConnectionState.OPEN:
                # write_eof() while closing is harmless: a driver asks
                # `writable` first and does not get here.
                self._refuse(event, self.connection_state)
            self.write_state = self._next(WRITE_TRANSITIONS, self.write_state, event)
        elif event in _READ_EVENTS:
            self.read_state = self._next(READ_TRANSITIONS, self.read_state, event)
        else:
            connection = self._next(CONNECTION_TRANSITIONS, self.connection_state, event)
            if self.connection_state is ConnectionState.OPEN:
                self.read_state = ReadState.STOPPED  # closing in any way ends reading
            self.connection_state = connection
        self._recompute()

    def _next(self, table: dict[_S, dict[Event, _S]], state: _S, event: Event) -> _S:
        try:
            return table[state][event]
        except KeyError:
            self._refuse(event, state)

    def _refuse(self, event: Event, state: enum.Enum) -> NoReturn:
        raise LifecycleError(
            f"transport lifecycle: {event.name} ({event.value}) cannot happen in "
            f"{type(state).__name__}.{state.name} (now {self}); this is a bug in the "
            "driver, not in the protocol: please report it with this traceback"
        )

    def _recompute(self) -> None:
        connection, read = self.connection_state, self.read_state
        self.closing = connection is not ConnectionState.OPEN
        self.lost = connection is ConnectionState.LOST
        self.dropped = connection is ConnectionState.ABORTING or self.lost
        self.eof_written = self.write_state is not WriteState.OPEN
        self.writable = not self.closing and not self.eof_written
        self.reading = read in _READING
        self.paused = read in _PAUSED
        self.wants_data = read is ReadState.READING

    def __repr__(self) -> str:
        return (
            f"<TransportLifecycle write {self.write_state.value}, read {self.read_state.value}, "
            f"connection {self.connection_state.value}>"
        )
