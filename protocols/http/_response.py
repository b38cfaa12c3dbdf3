"""The server's side of one response: a head, a body (bytes, streamed, or
file regions sent without being held in memory), an end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import h11

from weft.protocols.contract import FileRegion
from weft.protocols.errors import ArgumentError
from weft.protocols.http._errors import HTTPUsageError
from weft.protocols.http._headers import HeaderInput, header_list
from weft.protocols.http._wire import reason_phrase

__all__ = ["ResponseWriter"]


class _Owner(Protocol):
    """The server connection a response goes out on."""

    def _send(self, *events: h11.Event) -> None:
        """Encode ``events`` and write them, in one write."""

    def _send_file(self, region: FileRegion, *, head: h11.Response | None = None, end: bool = False) -> None:
        """Encode ``head`` (if any), ``region`` as body data, and the end (if
        ``end``), and write them in order; the region is closed whatever happens."""

    def _response_starting(
        self, pairs: list[tuple[bytes, bytes]], *, complete: bool
    ) -> list[tuple[bytes, bytes]]:
        """The head is about to go (with the whole response if ``complete``):
        the headers to send (maybe ``Connection: close`` added)."""
        ...

    def _response_finished(self) -> None:
        """The response is complete."""

    def _send_quick(
        self, writer: ResponseWriter, status: int, pairs: list[tuple[bytes, bytes]], body: bytes
    ) -> bool:
        """Write ``writer``'s whole response without h11 if the connection can;
        whether it did (false: the response goes through h11)."""
        ...

    def _is_writable(self) -> bool:
        """Whether the transport is taking more (writing not paused)."""
        ...

    def _when_writable(self, writer: ResponseWriter, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the transport takes more, unless ``writer`` is done by then."""


class ResponseWriter:
    """How a handler answers one request.

    Either all at once, ``send(200, {"content-type": "text/plain"}, b"hi")``
    (Content-Length set for you), or streamed: ``start(status, headers)``,
    ``write(chunk)`` any number of times, ``end()``.  A streamed response
    without a Content-Length header is sent chunked to an HTTP/1.1 client
    and close-delimited to an HTTP/1.0 one.  The handler may answer at any
    time: inside its call, or later from a timer or a body callback.

    For a large body, respect flow control: :meth:`write` returns false once
    the client is not keeping up, and :meth:`on_writable` calls back when it
    has.  A file is best sent as a region of it (:meth:`send_file`,
    :meth:`write_file`): the bytes go from the file to the socket as the
    client takes them (``os.sendfile`` where the driver can), never through
    memory.  Once the connection is gone (or the server answered for the
    handler: a 413, a timeout) every call here does nothing, and
    :attr:`abandoned` is true.
    """

    __slots__ = ("_abandoned", "_body_size", "_finished", "_head_only", "_owner", "_started", "_status")

    def __init__(self, owner: _Owner, *, head_only: bool = False) -> None:
        self._owner = owner
        self._head_only = head_only
        self._started = False
        self._finished = False
        self._abandoned = False
        # For the access log: the status sent, and the body's bytes sent.
        self._status = 0
        self._body_size = 0

    @property
    def started(self) -> bool:
        """Whether the status line and headers have been sent."""
        return self._started

    @property
    def finished(self) -> bool:
        """Whether :meth:`end` (or :meth:`send`) completed the response."""
        return self._finished

    @property
    def abandoned(self) -> bool:
        """Whether the response can no longer be sent (connection gone, or answered by the server)."""
        return self._abandoned

    @property
    def writable(self) -> bool:
        """Whether a write now would go out without piling up (the client keeps up)."""
        return not self._abandoned and not self._finished and self._owner._is_writable()

    def start(self, status: int, headers: HeaderInput = (), *, reason: str | None = None) -> None:
        """Send the status line and headers (``status`` 200 to 599).

        Raises :class:`~weft.protocols.http._errors.HTTPUsageError` if already
        started, and for headers h11 refuses (after which the connection is
        aborted).
        """
        if self._abandoned:
            return
        self._owner._send(self._head(status, header_list(headers), reason))

    def _head(
        self, status: int, pairs: list[tuple[bytes, bytes]], reason: str | None, *, complete: bool = False
    ) -> h11.Response:
        """The head event, once checked; the response counts as started."""
        if self._started:
            raise HTTPUsageError("the response was already started")
        if not 200 <= status <= 599:
            raise ArgumentError(f"status must be 200 to 599, not {status}")
        pairs = self._owner._response_starting(pairs, complete=complete)
        phrase = reason.encode("latin-1") if reason is not None else reason_phrase(status)
        self._started = True
        self._status = status
        return h11.Response(status_code=status, headers=pairs, reason=phrase)

    def write(self, data: bytes) -> bool:
        """Send a chunk of the body; return :attr:`writable` (false: wait for :meth:`on_writable`)."""
        if self._abandoned:
            return False
        if not self._started or self._finished:
            raise HTTPUsageError("write() before start() or after end()")
        if data and not self._head_only:
            self._owner._send(h11.Data(data=bytes(data)))
            self._body_size += len(data)
        return self.writable

    def end(self, data: bytes = b"") -> None:
        """Send ``data`` (if any) and complete the response."""
        if self._abandoned:
            return
        if not self._started or self._finished:
            raise HTTPUsageError("end() before start() or after end()")
        self._finished = True
        if data and not self._head_only:
            self._owner._send(h11.Data(data=bytes(data)), h11.EndOfMessage())
            self._body_size += len(data)
        else:
            self._owner._send(h11.EndOfMessage())
        self._owner._response_finished()

    def send(self, status: int, headers: HeaderInput = (), body: bytes = b"") -> None:
        """The whole response at once: head, ``body``, end; Content-Length is
        added unless ``headers`` has one."""
        if self._abandoned:
            return
        pairs = header_list(headers)
        if not any(name.lower() == b"content-length" for name, _ in pairs):
            pairs.append((b"content-length", b"%d" % len(body)))
        if self._owner._send_quick(self, status, pairs, body):
            self._started = self._finished = True
            self._status = status
            if body and not self._head_only:
                self._body_size = len(body)
            self._owner._response_finished()
            return
        head = self._head(status, pairs, None, complete=True)
        # One write for the whole response: a small response is one packet.
        if body and not self._head_only:
            self._owner._send(head, h11.Data(data=bytes(body)), h11.EndOfMessage())
            self._body_size = len(body)
        else:
            self._owner._send(head, h11.EndOfMessage())
        self._finished = True
        self._owner._response_finished()

    def write_file(self, region: FileRegion) -> bool:
        """Send ``region``, a stretch of an open file, as the next part of the
        body; return :attr:`writable` (false: wait for :meth:`on_writable`).

        The response owns the region from now on: it is closed once sent, or
        at once for a HEAD response (no body), an empty region, or a
        response that can no longer be sent (:attr:`abandoned`).  It goes
        out in order with what is written before and after it.  Raises
        :class:`~weft.protocols.http._errors.HTTPUsageError` (having closed
        the region) before :meth:`start`, after :meth:`end`, or past the
        declared Content-Length.
        """
        if self._abandoned:
            region.close()
            return False
        if not self._started or self._finished:
            region.close()
            raise HTTPUsageError("write_file() before start() or after end()")
        if self._head_only or not len(region):
            region.close()
        else:
            self._body_size += len(region)
            self._owner._send_file(region)
        return self.writable

    def send_file(self, status: int, headers: HeaderInput, region: FileRegion) -> None:
        """The whole response at once, its body the file ``region``:
        Content-Length is ``len(region)`` unless ``headers`` has one.

        A HEAD response gets the headers only (the region is closed at once).
        The region is closed in every case, as :meth:`write_file` says.
        """
        if self._abandoned:
            region.close()
            return
        try:
            pairs = header_list(headers)
            if not any(name.lower() == b"content-length" for name, _ in pairs):
                pairs.append((b"content-length", b"%d" % len(region)))
            head = self._head(status, pairs, None, complete=True)
        except BaseException:
            region.close()
            raise
        if self._head_only or not len(region):
            region.close()
            self._owner._send(head, h11.EndOfMessage())
        else:
            self._body_size = len(region)
            self._owner._send_file(region, head=head, end=True)
        self._finished = True
        self._owner._response_finished()

    def on_writable(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once, when the client can take more: on the next
        clock turn if it can now.  Never called once the response is finished
        or abandoned."""
        if not self._abandoned and not self._finished:
            self._owner._when_writable(self, callback)

    @property
    def _in_turn(self) -> bool:
        """(WritableWaiters) a response is always its connection's current one."""
        return True

    @property
    def _writes_over(self) -> bool:
        """(WritableWaiters) whether its ``on_writable`` callbacks are to be dropped."""
        return self._finished or self._abandoned

    def _abandon(self) -> None:
        """The server answered for the handler, or the connection is gone."""
        self._abandoned = True
