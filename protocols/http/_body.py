"""An incoming message body, streamed: the reader asks for it, and may pause it.

Nothing of a body is read from the connection until its reader asks, with
:meth:`BodyStream.receive` (chunks as they come, then the end),
:meth:`BodyStream.collect` (the whole body at once, up to a limit) or
:meth:`BodyStream.discard`.  :meth:`BodyStream.pause` stops the flow, and
with it the connection's reading, so a slow consumer slows the peer down
instead of filling memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from weft.protocols.http._errors import BodyTooLargeError, HTTPUsageError

__all__ = ["BodyStream", "OnData", "OnEnd", "OnError"]

#: Called with each chunk of a body, in order.
OnData = Callable[[bytes], object]
#: Called once the body is complete.
OnEnd = Callable[[], object]
#: Called once if the body fails (too large, malformed, connection lost).
OnError = Callable[[Exception], object]


class _Source(Protocol):
    """The connection a body comes from."""

    def _body_demanded(self, stream: BodyStream) -> None:
        """The reader wants data now (it installed a receiver or resumed)."""

    def _body_paused(self, stream: BodyStream) -> None:
        """The reader paused the flow (the connection stops waiting on the peer)."""

    def _body_too_large(self, stream: BodyStream, exc: BodyTooLargeError) -> None:
        """The body went over its limit: act on it, then fail the stream with ``exc``."""


class BodyStream:
    """The body of a received request or response.

    Made by the connection, never by hand.  Ask for the body exactly once,
    with :meth:`receive`, :meth:`collect` or :meth:`discard`.
    """

    def __init__(self, source: _Source, *, limit: int | None) -> None:
        self._source = source
        self._limit = limit
        self._on_data: OnData | None = None
        self._on_end: OnEnd | None = None
        self._on_error: OnError | None = None
        self._asked = False
        self._discarding = False
        self._paused = False
        self._received = 0
        self._ended = False
        self._failed: Exception | None = None

    # ------------------------------------------------------------ the reader

    def receive(self, on_data: OnData, on_end: OnEnd, on_error: OnError | None = None) -> None:
        """Stream the body: ``on_data(chunk)`` for each chunk, then ``on_end()``.

        ``on_error(exc)`` is called instead of ``on_end`` if the body fails
        (an :class:`~weft.protocols.http._errors.HTTPError`).  On a server,
        asking for the body is what sends ``100 Continue`` to a client that
        expects it.
        """
        self._claim()
        self._on_data, self._on_end, self._on_error = on_data, on_end, on_error
        self._source._body_demanded(self)

    def collect(
        self,
        on_complete: Callable[[bytes], object],
        *,
        on_error: OnError | None = None,
        max_size: int | None = None,
    ) -> None:
        """Gather the whole body and call ``on_complete(body)`` once.

        ``max_size`` lowers the connection's ``max_body_size`` for this body;
        going over either fails the body with
        :class:`~weft.protocols.http._errors.BodyTooLargeError`.
        """
        parts: list[bytes] = []
        if max_size is not None and (self._limit is None or max_size < self._limit):
            self._limit = max_size
        self.receive(parts.append, lambda: on_complete(b"".join(parts)), on_error)

    def discard(self) -> None:
        """Read the body and throw it away (a server does this by itself for a
        body its handler never asked for, when it is safe to)."""
        self._claim()
        self._discarding = True
        self._source._body_demanded(self)

    def pause(self) -> None:
        """Deliver nothing until :meth:`resume`; the connection stops reading."""
        if not self._paused:
            self._paused = True
            self._source._body_paused(self)

    def resume(self) -> None:
        """Deliver again after :meth:`pause`."""
        if self._paused:
            self._paused = False
            self._source._body_demanded(self)

    @property
    def asked(self) -> bool:
        """Whether the body was asked for (received, collected or discarded)."""
        return self._asked

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` is in effect."""
        return self._paused

    @property
    def received(self) -> int:
        """Bytes of the body received so far."""
        return self._received

    @property
    def done(self) -> bool:
        """Whether the body has ended or failed."""
        return self._ended or self._failed is not None

    # ------------------------------------------- the connection's side

    @property
    def wants_data(self) -> bool:
        """Whether the connection should read more of the body now."""
        return self._asked and not self._paused and not self.done

    def _claim(self) -> None:
        if self._asked:
            raise HTTPUsageError("the body was already asked for")
        self._asked = True

    def _start_discarding(self, limit: int | None) -> None:
        """Nobody will read the body: drop the rest, up to ``limit`` bytes in
        all (the connection's call, after its response)."""
        self._asked = True
        self._discarding = True
        self._paused = False
        if limit is not None and (self._limit is None or limit < self._limit):
            self._limit = limit
        self._on_data = self._on_end = self._on_error = None

    def _announce(self, remaining: int) -> None:
        """``remaining`` more bytes are announced (a chunk's size): refuse the
        body now if they would take it over its limit."""
        limit = self._limit
        if limit is not None and self._received + remaining > limit and not self.done:
            exc = BodyTooLargeError(
                f"a chunk announced that takes the body to {self._received + remaining} bytes, "
                f"over its limit of {limit}",
                limit=limit,
                size=self._received + remaining,
            )
            self._source._body_too_large(self, exc)

    def _deliver(self, data: bytes) -> None:
        """A chunk of the body arrived."""
        if self.done:
            return
        self._received += len(data)
        if self._limit is not None and self._received > self._limit:
            exc = BodyTooLargeError(
                f"body over its limit of {self._limit} bytes", limit=self._limit, size=self._received
            )
            self._source._body_too_large(self, exc)
            return
        if self._on_data is not None and data:
            self._on_data(data)

    def _end(self) -> None:
        """The body is complete."""
        if self.done:
            return
        self._ended = True
        on_end = self._on_end
        self._on_data = self._on_end = self._on_error = None
        if on_end is not None:
            on_end()

    def _fail(self, exc: Exception) -> bool:
        """The body failed; the reader hears of it once.  Whether it had an
        ``on_error`` to hear it."""
        if self.done:
            return False
        self._failed = exc
        on_error = self._on_error
        self._on_data = self._on_end = self._on_error = None
        if on_error is None:
            return False
        on_error(exc)
        return True
