"""Limits and timeouts of an HTTP/1.1 connection, with their defaults.

Every state a server connection can wait in has a deadline (see
:mod:`weft.protocols.http._lifecycle` for the states); the sizes bound what
one connection may cost.  The defaults follow mature servers:

* ``max_head_size`` 64 KiB: the request (or status) line and every header
  field together.  nginx accepts up to 4 x 8 KiB of header lines, Node.js
  16 KiB, Go 1 MiB; 64 KiB lets real browsers' cookies through while one
  connection's head still costs little.  Over it: 431.
* ``max_body_size`` 1 MiB: nginx's ``client_max_body_size``.  Over it: 413,
  as soon as it is known (a declared Content-Length, or a chunk's announced
  size, is judged before the bytes come).  ``None`` means no limit (stream
  large bodies through a receiver instead of collecting them).
* ``head_timeout`` 60 s: how long a request head may take to arrive,
  counted from the connection's start or from the end of the previous
  response (nginx's ``client_header_timeout``, Node.js's ``headersTimeout``).
  It defeats slowloris: a client trickling its head a byte at a time is
  answered 408 and closed.
* ``keep_alive_timeout`` 5 s: how long an idle keep-alive connection may
  wait for the first byte of its next request before it is closed without a
  word (Apache, Node.js and uvicorn use 5 s; nginx 75 s, Go none).
* ``handler_timeout`` 60 s: how long the server waits for a handler to start
  its response while nothing else is happening (the handler has the request,
  and is not reading its body); then it answers 503 with
  ``Connection: close`` and the handler's writer is abandoned, as Go's
  ``TimeoutHandler`` does.  60 s is nginx's ``proxy_read_timeout``: a proxy
  in front of the server would have given up by then.  ``None`` switches it
  off, for long-polling handlers that answer only when an event comes; Go,
  uvicorn and Node.js have none by default, which lets a handler that lost
  its callback hold a connection forever.
* ``body_timeout`` 60 s: the longest wait between two reads of a body the
  handler asked for, or of one the server discards (nginx's
  ``client_body_timeout``; Node.js's ``requestTimeout`` bounds the whole
  request at 300 s instead).  Then 408 if no response has started, else the
  connection closes.
* ``send_timeout`` 60 s: how long a client may take nothing of a response
  while the server's buffer is full (writing paused, and the buffer not
  shrinking); then the connection is aborted (nginx's ``send_timeout``;
  Go's ``WriteTimeout`` bounds the whole response instead, and is off by
  default).
* ``max_discard_size`` 64 KiB: how much of a body its handler did not read
  the server reads and drops, after the response, to keep the connection.
  A body with more left than that when the response starts gets
  ``Connection: close`` instead (nginx discards unread bodies too, bounded
  by time; Go discards up to 256 KiB, then closes).
* ``linger_timeout`` 2 s: after an error response the server half-closes
  and reads (and drops) what the client still sends, for up to this long or
  until the client's EOF, before closing: closing with unread bytes would
  make the kernel reset the connection, which can destroy the response
  before the client reads it (Apache lingers 2 s per read, up to 30 s;
  nginx's ``lingering_timeout`` is 5 s, ``lingering_time`` 30 s).
* ``max_requests_per_turn`` 16: how many requests of one connection the
  server answers in one go (a client that pipelines); the rest wait for the
  next turn of the event loop, so one connection cannot hog it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from weft.protocols.errors import ArgumentError

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HANDLER_TIMEOUT",
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_KEEP_ALIVE_TIMEOUT",
    "DEFAULT_LINGER_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_DISCARD_SIZE",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_MAX_REQUESTS_PER_TURN",
    "DEFAULT_SEND_TIMEOUT",
    "HTTPLimits",
]

#: The largest request or response head, in bytes.
DEFAULT_MAX_HEAD_SIZE = 64 * 1024
#: The largest body, in bytes.
DEFAULT_MAX_BODY_SIZE = 1024 * 1024
#: Seconds a request head may take to arrive.
DEFAULT_HEAD_TIMEOUT = 60.0
#: Seconds an idle keep-alive connection is kept.
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
#: Seconds a handler may take to start its response.
DEFAULT_HANDLER_TIMEOUT = 60.0
#: Seconds between two reads of a request body.
DEFAULT_BODY_TIMEOUT = 60.0
#: Seconds a client may take nothing of a response while the buffer is full.
DEFAULT_SEND_TIMEOUT = 60.0
#: Seconds of lingering close after an error response.
DEFAULT_LINGER_TIMEOUT = 2.0
#: Bytes of an unread body the server drops to keep the connection.
DEFAULT_MAX_DISCARD_SIZE = 64 * 1024
#: Requests of one connection answered per turn of the event loop.
DEFAULT_MAX_REQUESTS_PER_TURN = 16


def _check_seconds(name: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        allowed = "None or a positive number of seconds" if optional else "a positive number of seconds"
        raise ArgumentError(f"{name} must be {allowed}, not {value!r}")


@dataclass(frozen=True)
class HTTPLimits:
    """The limits of one HTTP connection (see the module's documentation).

    Clients use ``max_head_size`` and ``max_body_size`` on responses; the
    rest are the server's.  Raises
    :class:`~weft.protocols.errors.ArgumentError` for a size out of range or
    a timeout that is not a positive, finite number (``handler_timeout`` may
    also be ``None``: no limit).
    """

    max_head_size: int = DEFAULT_MAX_HEAD_SIZE
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    handler_timeout: float | None = DEFAULT_HANDLER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    send_timeout: float = DEFAULT_SEND_TIMEOUT
    linger_timeout: float = DEFAULT_LINGER_TIMEOUT
    max_discard_size: int = DEFAULT_MAX_DISCARD_SIZE
    max_requests_per_turn: int = DEFAULT_MAX_REQUESTS_PER_TURN

    def __post_init__(self) -> None:
        if self.max_head_size < 1:
            raise ArgumentError(f"max_head_size must be at least 1, not {self.max_head_size}")
        if self.max_body_size is not None and self.max_body_size < 0:
            raise ArgumentError(f"max_body_size must be None or at least 0, not {self.max_body_size}")
        if self.max_discard_size < 0:
            raise ArgumentError(f"max_discard_size must be at least 0, not {self.max_discard_size}")
        if self.max_requests_per_turn < 1:
            raise ArgumentError(f"max_requests_per_turn must be at least 1, not {self.max_requests_per_turn}")
        for name in ("head_timeout", "keep_alive_timeout", "body_timeout", "send_timeout", "linger_timeout"):
            _check_seconds(name, getattr(self, name))
        _check_seconds("handler_timeout", self.handler_timeout, optional=True)
