"""The life of a server connection: its states, the moves between them, and
the deadline that bounds each.

A connection is in exactly one :class:`ServerState` at a time, and moves
only along :data:`TRANSITIONS` (anything else raises
:class:`~weft.protocols.http._errors.HTTPStateError`: a bug, never a peer's
doing), in the style of h11's own ``_state.py``.  A request's cycle::

    FRESH or IDLE ──first byte──▶ HEAD ──head parsed──▶ HANDLING ◀──▶ RECEIVING
                                                            │  ▲         │
                                           response starts  ▼  │         │
                                                         RESPONDING ◀────┘
                                                            │
            response complete: ── IDLE or HEAD (next request), or
                                  DISCARDING (an unread body first), or
                                  DRAINING (the client must take the response first), or
                                  CLOSED (Connection: close)

and, from anywhere, LINGERING (an error response, then a bounded close) or
CLOSED.  :data:`DEADLINES` says what bounds each state and what happens
when it passes; https://github.com/weft-project/weft/blob/main/docs/http.md has the same as a
table.  While writing is paused, the send deadline (``send_timeout``, no progress) runs on top of the
state's own, whatever the state.
"""

from __future__ import annotations

import enum

from weft.protocols.http._limits import DEFAULT_LINGER_TIMEOUT

__all__ = ["DEADLINES", "LINGER_TIMEOUT", "TRANSITIONS", "ServerState"]

#: How long a refused client may go on sending (its bytes discarded) before
#: the connection closes, by default (``HTTPLimits.linger_timeout``).
LINGER_TIMEOUT = DEFAULT_LINGER_TIMEOUT


class ServerState(enum.Enum):
    """Where a server connection is, and so what it is waiting for."""

    #: No request yet, nothing received: waiting for the first byte.
    FRESH = "fresh"
    #: Kept alive after a response, nothing of the next request received.
    IDLE = "idle"
    #: Part of a request head received, waiting for the rest.
    HEAD = "head"
    #: The handler has the request and no response has started; no body is
    #: being read for it (it asked for none yet, paused it, or it is all in).
    HANDLING = "handling"
    #: Receiving a body the handler asked for (whatever its response does).
    RECEIVING = "receiving"
    #: The handler's response has started and is not complete; no body is
    #: being read.  The handler decides when it ends.
    RESPONDING = "responding"
    #: The response is complete; dropping a body the handler did not read,
    #: to keep the connection.
    DISCARDING = "discarding"
    #: The response is complete but the client has not taken it yet
    #: (writing is paused, or a file is still being read into the
    #: transport); the next request waits for it.
    DRAINING = "draining"
    #: An error response was sent; reading and dropping whatever still comes
    #: until the client's EOF or a short deadline, then closing.
    LINGERING = "lingering"
    #: Closed (or closing, the transport flushing what was written).
    CLOSED = "closed"

    # Members are singletons, so identity hashing is exact, and it runs in C:
    # Enum's own __hash__ hashes the member's name in Python, which would
    # cost every transition (several per request) a Python call.
    __hash__ = object.__hash__


_S = ServerState

#: Where each state may go next.  Every state may close (CLOSED); refusals
#: (an error status, then LINGERING) can happen wherever a request is being
#: received or handled.
TRANSITIONS: dict[ServerState, frozenset[ServerState]] = {
    _S.FRESH: frozenset({_S.HEAD, _S.CLOSED}),
    _S.IDLE: frozenset({_S.HEAD, _S.CLOSED}),
    _S.HEAD: frozenset({_S.HANDLING, _S.LINGERING, _S.CLOSED}),
    _S.HANDLING: frozenset(
        {_S.RECEIVING, _S.RESPONDING, _S.IDLE, _S.HEAD, _S.DISCARDING, _S.DRAINING, _S.LINGERING, _S.CLOSED}
    ),
    _S.RECEIVING: frozenset(
        {_S.HANDLING, _S.RESPONDING, _S.IDLE, _S.HEAD, _S.DISCARDING, _S.DRAINING, _S.LINGERING, _S.CLOSED}
    ),
    _S.RESPONDING: frozenset({_S.RECEIVING, _S.IDLE, _S.HEAD, _S.DISCARDING, _S.DRAINING, _S.CLOSED}),
    _S.DISCARDING: frozenset({_S.IDLE, _S.HEAD, _S.DRAINING, _S.LINGERING, _S.CLOSED}),
    _S.DRAINING: frozenset({_S.IDLE, _S.HEAD, _S.CLOSED}),
    _S.LINGERING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}

#: For each state: the :class:`~weft.protocols.http._limits.HTTPLimits` field
#: (or module constant) that bounds the wait in it, what the deadline is
#: counted from, and what happens when it passes.  ``None``: no deadline of
#: its own (the send deadline still runs while writing is paused).
DEADLINES: dict[ServerState, tuple[str | None, str, str]] = {
    _S.FRESH: ("head_timeout", "the connection's start", "close, without a word"),
    _S.IDLE: ("keep_alive_timeout", "the end of the response", "close, without a word"),
    _S.HEAD: ("head_timeout", "the connection's start or the end of the response", "408, lingering close"),
    _S.HANDLING: (
        "handler_timeout",
        "the handler's call, or the end (or pause) of the body it read",
        "503 with Connection: close, the handler's writer abandoned, lingering close",
    ),
    _S.RECEIVING: (
        "body_timeout",
        "the last read (or the body being asked for)",
        "408 and lingering close if no response has started; else the connection ends",
    ),
    _S.RESPONDING: (None, "", "the handler ends its response; send_timeout if the client does not read"),
    _S.DISCARDING: (
        "body_timeout",
        "the last read; max_discard_size bounds the bytes",
        "lingering close",
    ),
    _S.DRAINING: ("send_timeout", "the last progress of the client's reading", "abort"),
    _S.LINGERING: ("linger_timeout", "the error response", "close"),
    _S.CLOSED: (None, "", ""),
}
