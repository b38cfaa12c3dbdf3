"""Limits and timeouts of an HTTP/1.1 connection, with their defaults.

The defaults follow mature servers:

* ``max_head_size`` 64 KiB: the request (or status) line and every header
  field together.  nginx accepts up to 4 x 8 KiB of header lines, Node.js
  16 KiB, Go 1 MiB; 64 KiB lets real browsers' cookies through while one
  connection's head still costs little.  Over it: 431.
* ``max_body_size`` 1 MiB: nginx's ``client_max_body_size``.  Over it: 413.
  ``None`` means no limit (stream large bodies through a receiver instead of
  collecting them).
* ``head_timeout`` 60 s: how long a request head may take to arrive,
  counted from the connection's start or from the end of the previous
  response (nginx's ``client_header_timeout``, Node.js's ``headersTimeout``).
  It defeats slowloris: a client trickling its head a byte at a time is
  answered 408 and closed.
* ``keep_alive_timeout`` 5 s: how long an idle keep-alive connection may
  wait for the first byte of its next request before it is closed without a
  word (Apache, Node.js and uvicorn use 5 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from weft.protocols.errors import ArgumentError

__all__ = [
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_KEEP_ALIVE_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_HEAD_SIZE",
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


@dataclass(frozen=True)
class HTTPLimits:
    """The limits of one HTTP connection (see the module's documentation).

    Clients use ``max_head_size`` and ``max_body_size`` on responses; the two
    timeouts are the server's.  Raises
    :class:`~weft.protocols.errors.ArgumentError` for a size under 1 or a
    timeout that is not a positive, finite number.
    """

    max_head_size: int = DEFAULT_MAX_HEAD_SIZE
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_head_size < 1:
            raise ArgumentError(f"max_head_size must be at least 1, not {self.max_head_size}")
        if self.max_body_size is not None and self.max_body_size < 0:
            raise ArgumentError(f"max_body_size must be None or at least 0, not {self.max_body_size}")
        for name in ("head_timeout", "keep_alive_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ArgumentError(f"{name} must be a positive number of seconds, not {value!r}")
