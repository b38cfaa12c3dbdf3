"""HTTP/1.1 as weft protocols, on h11: a server that calls a handler per
request, and a client with keep-alive reuse; both stream bodies both ways,
enforce limits whatever the chunking, and take time only from the clock.

See ``docs/http.md`` for the model, then the API.
"""

from weft.protocols.http.body import BodyStream
from weft.protocols.http.client import ClientRequest, HTTPClientProtocol, OnComplete, OnResponse
from weft.protocols.http.errors import (
    BodyTooLargeError,
    HeadersTooLargeError,
    HTTPConnectionClosedError,
    HTTPError,
    HTTPUsageError,
    MalformedHTTPError,
)
from weft.protocols.http.headers import HeaderInput, Headers
from weft.protocols.http.limits import HTTPLimits
from weft.protocols.http.messages import ClientResponse, Request
from weft.protocols.http.response import ResponseWriter
from weft.protocols.http.server import Handler, HTTPServerProtocol

__all__ = [
    "BodyStream",
    "BodyTooLargeError",
    "ClientRequest",
    "ClientResponse",
    "HTTPClientProtocol",
    "HTTPConnectionClosedError",
    "HTTPError",
    "HTTPLimits",
    "HTTPServerProtocol",
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
]
