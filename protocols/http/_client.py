"""The HTTP/1.1 client protocol: requests over one kept-alive connection.

Requests made while one is in flight wait their turn and go out in order,
each once the previous response is complete (h11 does not pipeline).
Results arrive by callback: ``on_response(response)`` with the head, the
body streamed from ``response.body``; or, with :meth:`HTTPClientProtocol.fetch`,
``on_complete(response, body)`` once it is all in.  Every failure (a limit,
a malformed response, the connection ending) reaches the request's
``on_error`` as an :class:`~weft.protocols.http._errors.HTTPError`, once.

A response whose framing is ambiguous (Content-Length with
Transfer-Encoding, Transfer-Encoding in HTTP/1.0, a header folded over
lines) fails its request with
:class:`~weft.protocols.http._errors.MalformedHTTPError` and ends the
connection: the bytes after it cannot be trusted to be the next response.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import h11

from weft.protocols.contract import Clock, Protocol, Transport, clock_of
from weft.protocols.errors import NoClockError
from weft.protocols.http._body import BodyStream, OnError
from weft.protocols.http._errors import (
    BodyTooLargeError,
    HeadersTooLargeError,
    HTTPConnectionClosedError,
    HTTPError,
    HTTPUsageError,
    MalformedHTTPError,
)
from weft.protocols.http._headers import HeaderInput, Headers, header_list
from weft.protocols.http._limits import HTTPLimits
from weft.protocols.http._messages import ClientResponse
from weft.protocols.http._pump import H11Pump, WritableWaiters
from weft.protocols.http._wire import chunk_bytes_announced, framing_fault

__all__ = ["ClientRequest", "HTTPClientProtocol", "OnComplete", "OnResponse"]

logger = logging.getLogger("weft.protocols.http")

#: Called with a response's head; its body is ``response.body``.
OnResponse = Callable[[ClientResponse], object]
#: Called with a response and its whole body.
OnComplete = Callable[[ClientResponse, bytes], object]


class ClientRequest:
    """One request of an :class:`HTTPClientProtocol`, as returned by
    :meth:`~HTTPClientProtocol.request`.

    For a request made with ``streaming=True``, send the body with
    :meth:`write` and :meth:`end` (chunked, unless a Content-Length header was
    given).  Writes made while the request waits its turn are kept until it
    goes out; :attr:`writable` and :meth:`on_writable` say when to write more.
    """

    def __init__(
        self,
        client: HTTPClientProtocol,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        streaming: bool,
        on_response: OnResponse,
        on_error: OnError | None,
    ) -> None:
        self.method = method
        self.target = target
        self._client = client
        self._headers = headers
        self._body = body
        self._streaming = streaming
        self._on_response = on_response
        self._on_error = on_error
        self._pending: list[bytes] = []
        self._ended = not streaming
        self._sent = False  # the head is out
        self._body_sent = False  # the end of the body is out
        self._done = False  # the response is complete, or the request failed
        self.response: ClientResponse | None = None

    @property
    def done(self) -> bool:
        """Whether the response has been received in full, or the request failed."""
        return self._done

    @property
    def writable(self) -> bool:
        """Whether a body write now goes out at once without piling up."""
        return self._sent and not self._body_sent and not self._done and self._client._is_writable()

    def write(self, data: bytes) -> bool:
        """Send a chunk of a streamed body; return :attr:`writable`."""
        if not self._streaming or self._ended:
            raise HTTPUsageError("write() on a request that is not streaming, or after end()")
        if self._client._closed is not None or not data:
            return self.writable
        if self._sent:
            self._client._send(h11.Data(data=bytes(data)))
        else:
            self._pending.append(bytes(data))
        return self.writable

    def end(self, data: bytes = b"") -> None:
        """Send ``data`` (if any) and end a streamed body."""
        if data:
            self.write(data)
        if not self._streaming or self._ended:
            raise HTTPUsageError("end() on a request that is not streaming, or twice")
        self._ended = True
        if self._sent and self._client._closed is None:
            self._client._finish_body(self)

    def on_writable(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once this request is on the wire and the
        connection takes more (on the next clock turn if that is now)."""
        self._client._when_writable(self, callback)

    @property
    def _in_turn(self) -> bool:
        """(WritableWaiters) whether the request is on the wire (its head is out)."""
        return self._sent

    @property
    def _writes_over(self) -> bool:
        """(WritableWaiters) whether its ``on_writable`` callbacks are to be dropped."""
        return self._done

    def _fail(self, exc: HTTPError) -> None:
        """The exchange failed: its body reader, else ``on_error``, hears once."""
        if self._done:
            return
        self._done = True
        response = self.response
        if response is not None and response.body._fail(exc):
            return
        if self._on_error is not None:
            self._on_error(exc)
        else:
            logger.warning("HTTP %s %s failed: %s", self.method, self.target, exc)

    def __repr__(self) -> str:
        return f"<ClientRequest {self.method} {self.target}>"


class HTTPClientProtocol(Protocol):
    """An HTTP/1.1 client on one connection, reused for request after request.

    ``host`` is the Host header to send (by default the peer's address).
    ``limits`` bounds response heads and bodies (its timeouts are the
    server's and unused here).  Requests may be made before the connection
    is up: they go out once it is.
    """

    def __init__(self, *, host: str | None = None, limits: HTTPLimits | None = None) -> None:
        self.host = host
        self.limits = limits if limits is not None else HTTPLimits()
        # h11, fed and pumped (the pump is shared with the server).
        self._wire = H11Pump(
            h11.CLIENT,
            max_head_size=self.limits.max_head_size,
            wants_event=self._wants_event,
            handle=self._handle,
            need_data=self._check_chunk,
            peer_error=self._break,
            cannot_send=self._cannot_send,
        )
        self._h11 = self._wire.connection
        self._meter = self._wire.meter
        self._transport: Transport | None = None
        self._clock: Clock | None = None
        self._queue: deque[ClientRequest] = deque()
        self._current: ClientRequest | None = None
        self._closed: HTTPConnectionClosedError | None = None
        self._writing_paused = False
        self._writable = WritableWaiters(self._is_writable)

    # ------------------------------------------------------------ the API

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: HeaderInput = (),
        body: bytes = b"",
        streaming: bool = False,
        on_response: OnResponse,
        on_error: OnError | None = None,
    ) -> ClientRequest:
        """Send a request (now, or after those before it); return its handle.

        ``body`` is sent whole, with a Content-Length; or, with
        ``streaming=True``, write it through the handle.  ``on_response``
        gets the head; read the body from ``response.body`` (``receive``,
        ``collect`` or ``discard``: until then the connection waits).
        ``on_error`` gets any failure, once (failures without one are logged).

        Raises :class:`~weft.protocols.http._errors.HTTPConnectionClosedError`
        if the connection can take no more requests.
        """
        if self._closed is not None:
            raise HTTPConnectionClosedError(f"cannot send {method} {target}: {self._closed}")
        if streaming and body:
            raise HTTPUsageError("give the body either as bytes or by streaming, not both")
        pairs = header_list(headers)
        names = {name.lower() for name, _ in pairs}
        if body or (method.upper() in ("POST", "PUT", "PATCH") and not streaming):
            if b"content-length" not in names:
                pairs.append((b"content-length", b"%d" % len(body)))
        elif streaming and b"content-length" not in names and b"transfer-encoding" not in names:
            pairs.append((b"transfer-encoding", b"chunked"))
        handle = ClientRequest(self, method, target, pairs, body, streaming, on_response, on_error)
        self._queue.append(handle)
        self._send_next()
        return handle

    def fetch(
        self,
        method: str,
        target: str,
        *,
        headers: HeaderInput = (),
        body: bytes = b"",
        on_complete: OnComplete,
        on_error: OnError | None = None,
        max_size: int | None = None,
    ) -> ClientRequest:
        """:meth:`request`, with the whole body collected: ``on_complete(response, body)``.

        ``max_size`` lowers ``limits.max_body_size`` for this response.
        """

        def collect(response: ClientResponse) -> None:
            response.body.collect(lambda data: on_complete(response, data), max_size=max_size)

        return self.request(
            method, target, headers=headers, body=body, on_response=collect, on_error=on_error
        )

    @property
    def pending(self) -> int:
        """Requests not yet complete: the one in flight and those waiting."""
        return len(self._queue) + (self._current is not None)

    def close(self) -> None:
        """Close the connection now; unfinished requests fail."""
        self._shut(HTTPConnectionClosedError("the client closed the connection"))
        if self._transport is not None:
            self._transport.close()

    # ------------------------------------------------------- the contract

    def connection_made(self, transport: Any) -> None:
        """Send what was asked for before the connection was up.

        Without a clock (:func:`~weft.protocols.contract.clock_of` raises
        :class:`~weft.protocols.errors.NoClockError`: no weft clock and no
        running asyncio loop) the client cannot keep a deadline, so it takes
        no request: each one fails (its ``on_error`` hears an
        :class:`~weft.protocols.http._errors.HTTPConnectionClosedError`
        caused by the NoClockError), the connection is aborted, and the
        error is raised on to the driver, which reports it.
        """
        self._transport = self._wire.transport = transport
        try:
            self._clock = self._writable.clock = clock_of(transport)
        except NoClockError as exc:
            error = HTTPConnectionClosedError(f"the connection cannot be used: {exc}")
            error.__cause__ = exc
            self._shut(error)
            transport.abort()
            raise
        self._send_next()
        self._wire.pump()

    def data_received(self, data: bytes) -> None:
        """Hand the bytes to h11 and act on what they complete."""
        if self._closed is not None:
            return
        self._wire.feed(data)
        self._wire.pump()

    def eof_received(self) -> bool:
        """The server will send no more: finish a close-delimited body, then close."""
        if self._closed is None:
            self._wire.feed_eof()
            self._wire.pump()
        return True

    def pause_writing(self) -> None:
        """The server is not keeping up: streamed bodies report not writable."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The server caught up: call what waits in ``on_writable``."""
        self._writing_paused = False
        self._writable.run()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Fail every unfinished request."""
        error = HTTPConnectionClosedError("the connection was lost")
        error.__cause__ = exc
        self._shut(error)

    # ----------------------------------------------------------- sending

    def _send_next(self) -> None:
        if (
            self._current is not None
            or not self._queue
            or self._transport is None
            or self._closed is not None
            or self._h11.our_state is not h11.IDLE
        ):
            return
        handle = self._current = self._queue.popleft()
        headers = handle._headers
        if not any(name.lower() == b"host" for name, _ in headers):
            headers = [(b"host", self._host_header()), *headers]
        # What the request has so far goes out in one write: a small
        # request is one packet.
        events: list[h11.Event] = [h11.Request(method=handle.method, target=handle.target, headers=headers)]
        if handle._body:
            events.append(h11.Data(data=handle._body))
        events.extend(h11.Data(data=chunk) for chunk in handle._pending)
        handle._pending.clear()
        if handle._ended:
            events.append(h11.EndOfMessage())
        self._send(*events)
        handle._sent = True
        if handle._ended:
            handle._body_sent = True
            self._maybe_next_cycle()
        self._writable.wake_for(handle)

    def _host_header(self) -> bytes:
        if self.host is not None:
            return self.host.encode("idna")
        peer = self._transport.get_extra_info("peername") if self._transport is not None else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            host = str(peer[0])
            return (f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}").encode("idna")
        return b"localhost"

    def _send(self, *events: h11.Event) -> None:
        data = self._wire.encode(*events)
        if data and self._transport is not None:
            self._transport.write(data)

    def _cannot_send(self, exc: h11.LocalProtocolError) -> None:
        """(H11Pump) h11 refused an event of the request: the connection cannot go on."""
        self._break(HTTPConnectionClosedError(f"the request could not be sent: {exc}"), abort=True)

    def _finish_body(self, handle: ClientRequest) -> None:
        handle._body_sent = True
        self._send(h11.EndOfMessage())
        self._maybe_next_cycle()

    def _is_writable(self) -> bool:
        return not self._writing_paused and self._closed is None

    def _when_writable(self, handle: ClientRequest, callback: Callable[[], object]) -> None:
        if self._closed is None and not handle._done:
            self._writable.add(handle, callback)

    # --------------------------------------------------------- receiving

    def _wants_event(self) -> bool:
        current = self._current
        if current is None or current.response is None:
            return True
        return self._h11.their_state is h11.SEND_BODY and current.response.body.wants_data

    def _handle(self, event: object) -> None:
        current = self._current
        if isinstance(event, h11.InformationalResponse | h11.Response):
            if current is None:
                self._break(MalformedHTTPError("the server sent a response to no request: cannot reuse"))
                return
            self._check_head(interim=type(event) is h11.InformationalResponse)
            if self._closed is not None:
                return
        if isinstance(event, h11.Response) and current is not None:
            self._begin(current, event)
        elif isinstance(event, h11.Data) and current is not None and current.response is not None:
            current.response.body._deliver(bytes(event.data))
            self._check_chunk()
        elif isinstance(event, h11.EndOfMessage) and current is not None and current.response is not None:
            self._meter.mark()
            current._done = True
            current.response.body._end()
            self._maybe_next_cycle()
        elif isinstance(event, h11.ConnectionClosed):
            self._break(HTTPConnectionClosedError("the server closed the connection"))

    def _check_head(self, *, interim: bool) -> None:
        limit = self.limits.max_head_size
        size, folded = self._meter.head(body_follows=not interim)
        if size > limit:
            self._break(
                HeadersTooLargeError(
                    f"response head of {size} bytes, over the limit of {limit}", limit=limit, size=size
                )
            )
        elif folded:
            self._break(MalformedHTTPError("a header field of the response is folded over lines (obs-fold)"))

    def _check_chunk(self) -> None:
        """A chunk's size is known before its bytes: fail the body now if it
        takes it over its limit, rather than wait for it."""
        current = self._current
        response = current.response if current is not None else None
        if response is None or response.body.done or self._h11.their_state is not h11.SEND_BODY:
            return
        announced = chunk_bytes_announced(self._h11)
        if announced:
            response.body._announce(announced)

    def _begin(self, current: ClientRequest, event: h11.Response) -> None:
        limit = self.limits.max_body_size
        headers = Headers(event.headers.raw_items())
        declared = headers._lookup("content-length")
        length = declared[0] if declared is not None else None
        fault = framing_fault(
            event.http_version, declared is not None, headers._lookup("transfer-encoding") is not None
        )
        if fault is not None:
            self._break(MalformedHTTPError(f"response with ambiguous framing: {fault}"))
            return
        if (
            limit is not None
            and length is not None
            and current.method.upper() != "HEAD"
            and int(length) > limit
        ):
            self._break(
                BodyTooLargeError(
                    f"declared body of {int(length)} bytes, over the limit of {limit}",
                    limit=limit,
                    size=int(length),
                )
            )
            return
        response = ClientResponse(
            event.status_code,
            event.reason.decode("latin-1"),
            headers,
            event.http_version.decode("ascii"),
            BodyStream(self, limit=limit),
        )
        current.response = response
        current._on_response(response)

    def _maybe_next_cycle(self) -> None:
        """After a response or a request body ends: reuse the connection, or close it."""
        current = self._current
        if current is None or not current._done or not current._body_sent:
            return
        our_state, their_state = self._h11.our_state, self._h11.their_state
        if our_state is h11.DONE and their_state is h11.DONE and self._meter.pending():
            # Bytes beyond the response, before the next request is even
            # sent: no answer to anything, and taking them for the next
            # request's response would be a desync.  Go's client closes too.
            self._current = None
            self._break(
                MalformedHTTPError("the server sent bytes after its response, to no request: cannot reuse")
            )
        elif our_state is h11.DONE and their_state is h11.DONE:
            self._h11.start_next_cycle()
            self._current = None
            self._send_next()
            self._wire.pump()
        elif h11.MUST_CLOSE in (our_state, their_state) or h11.CLOSED in (our_state, their_state):
            self._current = None
            self._break(HTTPConnectionClosedError("the server ended connection reuse (Connection: close)"))

    # ------------------------------------------------------- the body's source

    def _body_demanded(self, stream: BodyStream) -> None:
        """(BodyStream) the caller wants the body now."""
        self._wire.pump()

    def _body_paused(self, stream: BodyStream) -> None:
        """(BodyStream) the caller paused the body: the pump stops by itself."""

    def _body_too_large(self, stream: BodyStream, exc: BodyTooLargeError) -> None:
        """(BodyStream) the response body is over its limit: the connection ends."""
        self._break(exc)

    # ------------------------------------------------------------- the end

    def _break(self, error: HTTPError, *, abort: bool = False) -> None:
        """The connection can serve no more: the current request fails with
        ``error``, those waiting with a closed-connection error; close it."""
        closed = error if isinstance(error, HTTPConnectionClosedError) else None
        if closed is None:
            closed = HTTPConnectionClosedError(f"the connection was closed after an error: {error}")
            closed.__cause__ = error
        self._shut(closed, current_error=error)
        transport = self._transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()

    def _shut(self, error: HTTPConnectionClosedError, *, current_error: HTTPError | None = None) -> None:
        """No more requests: fail the one in flight (with ``current_error`` if
        given), then those waiting, in order."""
        if self._closed is not None:
            return
        self._closed = error
        self._wire.stop()
        self._writable.clear()
        current, self._current = self._current, None
        waiting = list(self._queue)
        self._queue.clear()
        if current is not None:
            current._fail(current_error or error)
        for handle in waiting:
            handle._fail(error)
