"""HTTP/1.1 as weft protocols, on h11: a server that calls a handler per
request, and a client with keep-alive reuse; both stream bodies both ways,
enforce limits whatever the chunking, refuse ambiguous framing, and take time
only from the clock.  The server bounds every state a connection can wait in,
answers a client only as fast as it reads, and sends files without holding
them in memory.

See https://github.com/weft-project/weft/blob/main/docs/http.md for the model, then the API.
"""

from weft.protocols.http._access_log import AccessLog
from weft.protocols.http._body import BodyStream
from weft.protocols.http._busy import busy_response
from weft.protocols.http._client import ClientRequest, HTTPClientProtocol, OnComplete, OnResponse
from weft.protocols.http._errors import (
    BodyTooLargeError,
    HeadersTooLargeError,
    HTTPConnectionClosedError,
    HTTPError,
    HTTPStateError,
    HTTPTimeoutError,
    HTTPUsageError,
    MalformedHTTPError,
)
from weft.protocols.http._headers import HeaderInput, Headers
from weft.protocols.http._lifecycle import ServerState
from weft.protocols.http._limits import HTTPLimits
from weft.protocols.http._messages import ClientResponse, Request
from weft.protocols.http._response import ResponseWriter
from weft.protocols.http._server import Handler, HTTPServerProtocol

__all__ = [
    "AccessLog",
    "BodyStream",
    "BodyTooLargeError",
    "ClientRequest",
    "ClientResponse",
    "HTTPClientProtocol",
    "HTTPConnectionClosedError",
    "HTTPError",
    "HTTPLimits",
    "HTTPServerProtocol",
    "HTTPStateError",
    "HTTPTimeoutError",
    "HTTPUsageError",
    "Handler",
    "HeaderInput",
    "Headers",
    "HeadersTooLargeError",
    "MalformedHTTPError",
    "OnComplete",
    "OnResponse",
    "Request",
    "ResponseWriter",
    "ServerState",
    "busy_response",
]
