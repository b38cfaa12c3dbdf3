"""An HTTP server's access log: one line per response, in the Common Log Format.

``HTTPServerProtocol(handler, access_log=AccessLog())`` logs each response
it completes, its own error responses (400, 408, 413...) included, as one
line at INFO on the logger ``weft.access`` (or the one given)::

    127.0.0.1 - - [09/Sep/2001:01:46:40 +0000] "GET /index.html HTTP/1.1" 200 2326

The host is the peer's address (``-`` on a UNIX socket); ident and user are
always ``-``; the time is when the response was complete, from the
transport's wall clock (:class:`~weft.protocols.contract.WallClock`), in
UTC (``[-]`` without one); then the request line, the status, and the
body's length in bytes (``-`` for none, as Apache writes it; a HEAD
response's is ``-``).  A request the server could not parse has ``-`` for
its request line.  A request line's ``"``, ``\\`` and bytes outside
printable ASCII are written ``\\xHH``, as nginx does, so that a line
always parses.

What it costs.  Without an access log the server does one ``is None``
test per response.  With one whose logger does not log INFO (``--log-level
warning``, say) it asks the logger once per response (``isEnabledFor``,
cached by logging) and formats nothing.  Otherwise the line's parts are
handed to the logger as arguments, and formatted only by a handler that
emits the record; a JSON formatter can take them from ``record.args``
(host, time, request line, status, size).

The logger is a plain :mod:`logging` logger, so the application decides
where the lines go (``weft serve http`` sends them to stderr, like
``python -m http.server``).
"""

from __future__ import annotations

import logging

from weft.protocols.http._dates import log_time

__all__ = ["ACCESS_LOGGER", "COMMON_LOG_FORMAT", "AccessLog"]

#: The logger an :class:`AccessLog` writes to unless given another.
ACCESS_LOGGER = "weft.access"

#: The line, as a logging format: host, time, request line, status, size.
COMMON_LOG_FORMAT = '%s - - [%s] "%s" %d %s'

_INFO = logging.INFO

# Every code point a latin-1 request line can hold that is not printable
# ASCII, or is one of the two that would end or escape the quoted field.
_ESCAPES = str.maketrans(
    {code: f"\\x{code:02X}" for code in [*range(0x20), *range(0x7F, 0x100), ord('"'), ord("\\")]}
)


def _escaped(text: str) -> str:
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return text.translate(_ESCAPES)


class AccessLog:
    """Writes one Common Log Format line per response to ``logger`` (``weft.access`` by default)."""

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger | None = None) -> None:
        #: Where the lines go, at INFO.
        # The channel by its literal name (greppable; tests/test_logger_names.py reads it).
        self.logger = logger if logger is not None else logging.getLogger("weft.access")

    def log(
        self,
        host: str,
        method: str | None,
        target: str,
        http_version: str,
        status: int,
        size: int,
        wall_time: float | None,
    ) -> None:
        """Log one response: ``method`` ``None`` for a request that could not be parsed."""
        logger = self.logger
        if not logger.isEnabledFor(_INFO):
            return
        request_line = "-" if method is None else f"{method} {_escaped(target)} HTTP/{http_version}"
        when = log_time(wall_time) if wall_time is not None else "-"
        logger.info(COMMON_LOG_FORMAT, host, when, request_line, status, size or "-")
