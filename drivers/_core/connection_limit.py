"""A server's connection limit: what a connection over it gets, and how the limit is logged.

A server at its limit (``max_connections``) does not leave the next client
waiting unaccepted, where it cannot tell a slow server from a dead one: it
accepts the connection and answers at once with the protocol's *busy reply*
(``503 Service Unavailable`` for HTTP, ``ERR server busy`` for the line
protocols), then closes without losing that reply.  Closing a socket while
the client's bytes are still unread makes the kernel send a reset, which can
destroy the reply before the client reads it; so, as Apache and nginx do
(and ``HTTPServerProtocol._close_lingering``), the server half-closes,
discards what still comes for at most :data:`BUSY_LINGER` seconds or until
the client's EOF, then closes.

Two implementations share these rules:

* :class:`BusyProtocol`, an ordinary protocol, which
  :class:`~weft.drivers._serving.Server` gives a connection over its limit on
  the event-loop drivers (where accepting costs nothing more than serving);
* the blocking driver's accept thread, which refuses without starting any
  thread (:mod:`weft.drivers.blocking._refusals`).

:class:`LimitReport` logs the limit once when it is reached and once when
service is back under it, never per connection.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable
from typing import Any

from weft.protocols.contract import TimerHandle, Transport
from weft.protocols.errors import ArgumentError

__all__ = [
    "BUSY_LINGER",
    "MAX_LINGERING",
    "REPORT_INTERVAL",
    "BusyProtocol",
    "LimitReport",
    "checked_idle_timeout",
    "checked_max_connections",
]

#: Seconds a refused client may go on sending (its bytes discarded) before
#: its connection closes: the same grace HTTP gives a refused request.
BUSY_LINGER = 2.0

#: Refused connections lingering at once, at most.  Past it a refusal sends
#: its reply and closes at once: a flood of refusals must not hold more
#: descriptors than this for long.
MAX_LINGERING = 1024

#: The least time between "back under the limit" and the next "limit
#: reached" line, so that a server flapping at its limit logs a line a
#: second, not one per connection.
REPORT_INTERVAL = 1.0


def checked_max_connections(value: object) -> int:
    """``value`` if it is a whole number >= 1; else :class:`ArgumentError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"max_connections must be a whole number >= 1, not {value!r}")
    return value


class _LimitState(enum.Enum):
    """Where a server stands with respect to its limit, as its log last said."""

    #: Serving everyone (or refusals not yet reported: see REPORT_INTERVAL).
    UNDER = "under"
    #: "Limit reached" was logged; refusals are counted until service resumes.
    REFUSING = "refusing"


class LimitReport:
    """Logs a server's connection limit: once when reached, once when it is back under.

    Call :meth:`refused` for each connection refused and :meth:`admitted`
    for each one served.  The first refusal logs a warning (``at its limit
    of 4 connections: new ones get a busy reply until one ends``); the next
    admission logs that service is back, with the count refused meanwhile.
    A refusal within :data:`REPORT_INTERVAL` seconds of that line is counted
    but not logged until the interval is over, so a server flapping at its
    limit logs a line a second at most.  Not thread-safe: one thread calls it.
    """

    def __init__(self, where: str, limit: int, now: Callable[[], float], logger: logging.Logger) -> None:
        self.where = where
        self.limit = limit
        self._now = now
        self._logger = logger
        self._state = _LimitState.UNDER
        self._quiet_until = -math.inf
        self._unreported = 0  # refused since the last line
        #: Every connection refused, since the start.
        self.refused_total = 0

    @property
    def refusing(self) -> bool:
        """Whether the last line logged said the limit is reached."""
        return self._state is _LimitState.REFUSING

    def refused(self) -> None:
        """A connection over the limit was refused."""
        self.refused_total += 1
        self._unreported += 1
        if self._state is _LimitState.UNDER and self._now() >= self._quiet_until:
            self._state = _LimitState.REFUSING
            self._logger.warning(
                "%s is at its limit of %d connection%s: new ones get a busy reply until one ends",
                self.where,
                self.limit,
                "" if self.limit == 1 else "s",
            )

    def admitted(self) -> None:
        """A connection was served: under the limit again, if it was not."""
        if self._state is _LimitState.REFUSING:
            self._state = _LimitState.UNDER
            self._quiet_until = self._now() + REPORT_INTERVAL
            refused, self._unreported = self._unreported, 0
            self._logger.info(
                "%s is serving again under its limit of %d connection%s (%d refused meanwhile)",
                self.where,
                self.limit,
                "" if self.limit == 1 else "s",
                refused,
            )


class BusyProtocol:
    """What a connection over the limit gets: ``reply``, then a lingering close.

    It writes ``reply`` (nothing if ``None``), half-closes, discards whatever
    the client sends, and closes at the client's EOF or after ``linger``
    seconds, whichever comes first (at once if ``linger`` is 0 or the
    transport cannot half-close).  ``on_lost`` runs when the connection is
    gone.  Needs a transport with a clock (every weft driver's) to linger;
    without one it closes at once.
    """

    def __init__(
        self, reply: bytes | None, *, linger: float = BUSY_LINGER, on_lost: Callable[[], object] | None = None
    ) -> None:
        self.reply = reply
        self.linger = linger
        self._on_lost = on_lost
        self._timer: TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        """Answer, then half-close and linger (or close)."""
        if self.reply:
            transport.write(self.reply)
        clock = transport.get_extra_info("clock")
        if not self.reply or self.linger <= 0 or clock is None or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._timer = clock.call_later(self.linger, _close, transport)

    def data_received(self, data: bytes) -> None:
        """Discarded: the client's request is not served."""

    def eof_received(self) -> bool:
        """The client is done: close now (the transport does, as this returns False)."""
        self._cancel()
        return False

    def pause_writing(self) -> None:
        """Nothing more is written anyway."""

    def resume_writing(self) -> None:
        """Nothing more is written anyway."""

    def connection_lost(self, exc: BaseException | None) -> None:
        """Gone: stop the linger timer, tell the server."""
        self._cancel()
        if self._on_lost is not None:
            self._on_lost()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _close(transport: Transport) -> None:
    transport.close()


def checked_idle_timeout(value: object) -> float | None:
    """Seconds > 0 (``math.inf``: never, given back as None); else ArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ArgumentError(f"idle_timeout must be a number of seconds > 0 (inf: never), not {value!r}")
    return None if math.isinf(value) else float(value)
