"""The HTTP/1.1 server protocol: one per connection, calling a handler per request.

A connection serves one request at a time.  The handler gets the
:class:`~weft.protocols.http.messages.Request` and a
:class:`~weft.protocols.http.response.ResponseWriter`, and answers whenever it
likes; the next request (pipelined or not) is parsed only once that response
is complete, so responses always go out in order.  h11 does the parsing and
the framing; this module adds the limits h11 leaves to its user, the
timeouts, ``100 Continue`` on demand, and what to do when a handler fails.
See ``docs/http.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import h11

from weft.protocols.contract import Clock, Protocol, TimerHandle, Transport, clock_of
from weft.protocols.http.body import BodyStream
from weft.protocols.http.errors import (
    BodyTooLargeError,
    HeadersTooLargeError,
    HTTPConnectionClosedError,
    HTTPError,
    HTTPUsageError,
    MalformedHTTPError,
)
from weft.protocols.http.headers import Headers
from weft.protocols.http.limits import HTTPLimits
from weft.protocols.http.messages import Request
from weft.protocols.http.response import ResponseWriter
from weft.protocols.http.wire import HeadMeter, canned_response, remote_error

__all__ = ["HTTPServerProtocol", "Handler"]

logger = logging.getLogger("weft.protocols.http")

#: How long a refused client may go on sending (its bytes discarded) before
#: the connection closes; see HTTPServerProtocol._close_lingering.
LINGER_TIMEOUT = 2.0

#: What a server calls for each request: ``handler(request, response)``.
Handler = Callable[[Request, ResponseWriter], object]


def _status_for(error: HTTPError) -> int:
    """The status that refuses a request for ``error``."""
    if isinstance(error, HeadersTooLargeError):
        return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    if isinstance(error, BodyTooLargeError):
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    return HTTPStatus.BAD_REQUEST


class _Exchange:
    """One request and its response."""

    __slots__ = ("body", "must_close", "request", "response")

    def __init__(self, request: Request, response: ResponseWriter) -> None:
        self.request = request
        self.response = response
        self.body = request.body
        self.must_close = False


class HTTPServerProtocol(Protocol):
    """Serves HTTP/1.1 on one connection, calling ``handler(request, response)``
    for each request.

    ``limits`` (an :class:`~weft.protocols.http.limits.HTTPLimits`) bounds
    heads, bodies and waiting; out-of-limit or malformed requests are
    answered by the server itself (431, 413, 400, 408) and the connection
    closes.  A handler that raises is logged (logger
    ``"weft.protocols.http"``) and answered 500, or, if its response had
    started, the connection is aborted.

    Needs a transport with a clock (every weft driver's).
    """

    def __init__(self, handler: Handler, *, limits: HTTPLimits | None = None) -> None:
        self.handler = handler
        self.limits = limits if limits is not None else HTTPLimits()
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head_size)
        self._meter = HeadMeter(self._h11)
        self._transport: Transport | None = None
        self._clock: Clock | None = None
        self._exchange: _Exchange | None = None
        self._pumping = False
        self._closed = False
        self._writing_paused = False
        # The two deadlines (monotonic clock times; None: not running) share
        # one timer, which is moved only when a deadline comes earlier than
        # it: a keep-alive request then costs two assignments, not two timers
        # scheduled and cancelled.
        self._head_due: float | None = None
        self._idle_due: float | None = None
        self._timer: TimerHandle | None = None
        self._timer_at = 0.0
        self._linger_timer: TimerHandle | None = None
        self._writable_waiters: list[tuple[ResponseWriter, Callable[[], object]]] = []

    # ------------------------------------------------------------ the contract

    def connection_made(self, transport: Any) -> None:
        """Start the clock on the first request's head."""
        self._transport = transport
        self._clock = clock_of(transport)
        self._arm_timers(after_response=False)

    def data_received(self, data: bytes) -> None:
        """Hand the bytes to h11 and act on what they complete."""
        if self._closed:
            return
        self._idle_due = None
        self._meter.fed(len(data))
        self._h11.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        """The client will send no more: finish the request in hand, then close."""
        if self._linger_timer is not None:  # the lingering close is over
            self._linger_timer.cancel()
            self._linger_timer = None
            return False
        if not self._closed:
            self._h11.receive_data(b"")
            self._pump()
        return True

    def pause_writing(self) -> None:
        """The client is not keeping up: responses report not writable."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The client caught up: call what waits in ``on_writable``."""
        self._writing_paused = False
        self._run_writable_waiters()

    def connection_lost(self, exc: BaseException | None) -> None:
        """The connection is gone: stop timers, tell a body reader."""
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        self._shut(HTTPConnectionClosedError("the connection was lost"), cause=exc)

    # --------------------------------------------------------------- the pump

    def _pump(self) -> None:
        """Take events from h11 while someone wants them."""
        if self._pumping or self._closed:
            return
        self._pumping = True
        need_data = False
        try:
            while not self._closed and self._wants_event():
                try:
                    event = self._h11.next_event()
                except h11.RemoteProtocolError as exc:
                    self._peer_error(remote_error(exc, self.limits.max_head_size))
                    break
                if event is h11.NEED_DATA:
                    need_data = True
                    break
                if event is h11.PAUSED:
                    break
                self._handle(event)
        finally:
            self._pumping = False
        transport = self._transport
        if transport is not None and not self._closed:
            # Read only while h11's buffer is being drained, so it stays bounded.
            if need_data:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _wants_event(self) -> bool:
        exchange = self._exchange
        if exchange is None:
            return True
        return self._h11.their_state is h11.SEND_BODY and exchange.body.wants_data

    def _handle(self, event: object) -> None:
        exchange = self._exchange
        if isinstance(event, h11.Request):
            self._begin(event)
        elif isinstance(event, h11.Data) and exchange is not None:
            self._call(exchange.body._deliver, bytes(event.data))
        elif isinstance(event, h11.EndOfMessage) and exchange is not None:
            self._meter.mark()
            self._call(exchange.body._end)
            if exchange.response.finished and not self._closed and exchange is self._exchange:
                self._after_response(exchange)
        elif isinstance(event, h11.ConnectionClosed):
            self._close()

    def _begin(self, event: h11.Request) -> None:
        self._cancel_timers()
        limits = self.limits
        size = self._meter.head_size()
        if size > limits.max_head_size:
            self._refuse(
                HeadersTooLargeError(
                    f"request head of {size} bytes, over the limit of {limits.max_head_size}",
                    limit=limits.max_head_size,
                    size=size,
                )
            )
            return
        if event.http_version not in (b"1.0", b"1.1"):
            version = event.http_version.decode("ascii", "replace")
            self._refuse(
                MalformedHTTPError(f"HTTP/{version} is not supported"),
                status=HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
            )
            return
        length = next((value for name, value in event.headers if name == b"content-length"), None)
        if limits.max_body_size is not None and length is not None and int(length) > limits.max_body_size:
            self._refuse(
                BodyTooLargeError(
                    f"declared body of {int(length)} bytes, over the limit of {limits.max_body_size}",
                    limit=limits.max_body_size,
                    size=int(length),
                )
            )
            return
        body = BodyStream(self, limit=limits.max_body_size)
        request = Request(
            event.method.decode("ascii"),
            event.target.decode("latin-1"),
            Headers(event.headers.raw_items()),
            event.http_version.decode("ascii"),
            body,
        )
        response = ResponseWriter(self, head_only=event.method == b"HEAD")
        self._exchange = _Exchange(request, response)
        self._call(self.handler, request, response)

    # ------------------------------------------------- after a response

    def _response_finished(self) -> None:
        """(ResponseWriter) the response is complete."""
        exchange = self._exchange
        if exchange is None or self._closed:
            return
        self._after_response(exchange)

    def _after_response(self, exchange: _Exchange) -> None:
        their_state = self._h11.their_state
        if exchange.must_close or self._h11.our_state is not h11.DONE:
            self._close()
        elif their_state is h11.DONE:
            self._h11.start_next_cycle()
            self._exchange = None
            self._arm_timers(after_response=True)
            self._pump()
        elif their_state is h11.SEND_BODY:
            if not exchange.body.asked:
                exchange.body._start_discarding()
            self._pump()
        else:
            self._close()

    # --------------------------------------------- the response's owner

    def _send(self, *events: h11.Event) -> None:
        """(ResponseWriter) encode ``events`` and write them, in one write."""
        pieces = []
        for event in events:
            try:
                data = self._h11.send(event)
            except h11.LocalProtocolError as exc:
                self._abort()
                raise HTTPUsageError(f"cannot send {type(event).__name__}: {exc}") from exc
            if data:
                pieces.append(data)
        if pieces and self._transport is not None:
            self._transport.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _response_starting(self, pairs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """(ResponseWriter) decide whether this connection can be reused."""
        exchange = self._exchange
        if exchange is None:
            return pairs
        if self._h11.they_are_waiting_for_100_continue and not exchange.body.wants_data:
            # The client holds its body back until told to send it: it may
            # send it anyway, later, so nothing after it can be trusted.
            exchange.must_close = True
        if exchange.must_close and not any(
            name.lower() == b"connection" and b"close" in value.lower() for name, value in pairs
        ):
            pairs = [*pairs, (b"connection", b"close")]
        return pairs

    def _is_writable(self) -> bool:
        """(ResponseWriter) whether the transport takes more."""
        return not self._writing_paused and not self._closed

    def _when_writable(self, writer: ResponseWriter, callback: Callable[[], object]) -> None:
        """(ResponseWriter) call back once the transport takes more."""
        if self._closed:
            return
        self._writable_waiters.append((writer, callback))
        if not self._writing_paused and self._clock is not None:
            self._clock.call_later(0, self._run_writable_waiters)

    def _run_writable_waiters(self) -> None:
        while self._writable_waiters and not self._writing_paused and not self._closed:
            writer, callback = self._writable_waiters.pop(0)
            if not writer.finished and not writer.abandoned:
                self._call(callback)

    # --------------------------------------------------- the body's source

    def _body_demanded(self, stream: BodyStream) -> None:
        """(BodyStream) the handler wants its body now."""
        exchange = self._exchange
        if exchange is None or exchange.body is not stream or self._closed:
            return
        if self._h11.they_are_waiting_for_100_continue:
            if stream._discarding or exchange.response.started:
                exchange.must_close = True
                return
            self._send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        self._pump()

    def _body_too_large(self, stream: BodyStream, exc: BodyTooLargeError) -> None:
        """(BodyStream) the body went over its limit: 413, or an abort."""
        exchange = self._exchange
        if exchange is None or exchange.body is not stream or self._closed:
            stream._fail(exc)
            return
        exchange.must_close = True
        exchange.response._abandon()  # the server answers this one
        self._call(stream._fail, exc)
        self._refuse(exc)

    # ---------------------------------------------------------- failures

    def _call(self, callback: Callable[..., object], *args: Any) -> None:
        """Run a handler's code; if it raises, log it and answer 500 (or abort)."""
        try:
            callback(*args)
        except Exception as exc:
            self._handler_failed(exc)

    def _handler_failed(self, exc: Exception) -> None:
        exchange = self._exchange
        request = exchange.request if exchange is not None else None
        logger.error("HTTP handler failed on %r", request, exc_info=exc)
        if exchange is None or self._closed:
            return
        response = exchange.response
        if response.abandoned:
            return  # the server is answering already (a 413, a 400) or the connection is gone
        response._abandon()
        if response.started:
            self._abort()
            return
        body = b"Internal Server Error\n"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
        writer = ResponseWriter(self, head_only=response._head_only)
        exchange.response = writer
        try:
            writer.start(500, headers)
            writer.end(body)
        except HTTPUsageError:
            pass  # h11 refused: the connection is already aborted
        writer._abandon()

    def _peer_error(self, error: HTTPError) -> None:
        """h11 refused the peer's bytes: tell a body reader, answer, close."""
        exchange = self._exchange
        if exchange is not None:
            exchange.must_close = True
            if not exchange.response.started:
                exchange.response._abandon()  # the server answers this one
            self._call(exchange.body._fail, error)
        self._refuse(error)

    def _refuse(self, error: HTTPError, *, status: int | None = None) -> None:
        """Answer with ``error``'s status (or ``status``) unless a response began, then close."""
        logger.info("refusing an HTTP request: %s", error)
        exchange = self._exchange
        if exchange is not None:
            exchange.must_close = True
            response = exchange.response
            response._abandon()
            if response.started and not response.finished:
                self._abort()
                return
            if response.started:
                self._close()
                return
        if status is None:
            status = _status_for(error)
        if self._transport is not None:
            self._transport.write(canned_response(status))
        self._close_lingering()

    # ---------------------------------------------------------- timers

    def _arm_timers(self, *, after_response: bool) -> None:
        clock = self._clock
        if clock is None or self._closed:
            return
        now = clock.now()
        self._head_due = now + self.limits.head_timeout
        if after_response and not self._meter.pending():
            self._idle_due = now + self.limits.keep_alive_timeout
        else:
            self._idle_due = None
        self._schedule(now)

    def _cancel_timers(self) -> None:
        # Lazily: the timer, if it fires, finds nothing due.
        self._head_due = self._idle_due = None

    def _schedule(self, now: float) -> None:
        """Have the timer fire by the earliest deadline."""
        dues = [due for due in (self._head_due, self._idle_due) if due is not None]
        clock = self._clock
        if not dues or clock is None:
            return
        due = min(dues)
        if self._timer is not None:
            if self._timer_at <= due:
                return  # it fires in time, and looks again then
            self._timer.cancel()
        self._timer_at = due
        self._timer = clock.call_later(due - now, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        clock = self._clock
        if self._closed or clock is None:
            return
        # A hair of slack: the clock's own float arithmetic may land a
        # timer a rounding error before the deadline it was set for.
        now = clock.now() + 1e-6
        if self._idle_due is not None and self._idle_due <= now:
            self._idle_due = None
            self._idle_timed_out()
        elif self._head_due is not None and self._head_due <= now:
            self._head_due = None
            self._head_timed_out()
        else:
            self._schedule(clock.now())

    def _head_timed_out(self) -> None:
        if self._closed or self._exchange is not None:
            return
        if self._meter.pending() and self._transport is not None:
            self._transport.write(canned_response(HTTPStatus.REQUEST_TIMEOUT))
            self._close_lingering()
            return
        self._close()

    def _idle_timed_out(self) -> None:
        if self._closed or self._exchange is not None or self._meter.pending():
            return
        self._close()

    # ---------------------------------------------------------- the end

    def _close(self) -> None:
        """Close after flushing what was written."""
        transport = self._transport
        self._shut(HTTPConnectionClosedError("the server closed the connection"))
        if transport is not None:
            transport.close()

    def _close_lingering(self) -> None:
        """Close after an error response without losing the response.

        The client may still be sending (the body of a refused request), and
        closing a socket with unread bytes makes the kernel send a reset,
        which can destroy the response before the client has read it.  So,
        as Apache and nginx do: half-close, discard whatever still comes for
        up to :data:`LINGER_TIMEOUT` seconds or until the client's EOF, then
        close.
        """
        transport = self._transport
        self._shut(HTTPConnectionClosedError("the server closed the connection"))
        if transport is None:
            return
        if self._clock is None or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()  # to see the client's EOF
        self._linger_timer = self._clock.call_later(LINGER_TIMEOUT, transport.close)

    def _abort(self) -> None:
        """Close at once, dropping what was written."""
        transport = self._transport
        self._shut(HTTPConnectionClosedError("the server aborted the connection"))
        if transport is not None:
            transport.abort()

    def _shut(self, error: HTTPConnectionClosedError, cause: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel_timers()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._writable_waiters.clear()
        exchange = self._exchange
        if exchange is not None:
            exchange.response._abandon()
            if not exchange.body.done:
                error.__cause__ = cause
                self._call(exchange.body._fail, error)
