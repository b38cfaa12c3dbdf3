"""TLS as a protocol layer over any weft transport, on :class:`ssl.SSLObject` and :class:`ssl.MemoryBIO`.

* :class:`TLSProtocol` wraps an application protocol: hand it to a driver
  in the application protocol's place (``listen_tcp(lambda:
  TLSProtocol(EchoProtocol(), context, server_side=True))``) and the
  application talks through a :class:`TLSTransport`.
* :func:`start_tls` upgrades a connection that is already open.
* :func:`client_context` and :func:`server_context` build contexts with
  secure defaults.

See https://github.com/weft-project/weft/blob/main/docs/tls.md.
"""

from weft.protocols.tls._contexts import client_context, server_context
from weft.protocols.tls._errors import (
    TLSError,
    TLSHandshakeError,
    TLSHandshakeTimeoutError,
    TLSStateError,
    TLSTruncatedError,
)
from weft.protocols.tls._layer import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    TLSProtocol,
    TLSTransport,
)
from weft.protocols.tls._upgrade import start_tls

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "TLSError",
    "TLSHandshakeError",
    "TLSHandshakeTimeoutError",
    "TLSProtocol",
    "TLSStateError",
    "TLSTransport",
    "TLSTruncatedError",
    "client_context",
    "server_context",
    "start_tls",
]
