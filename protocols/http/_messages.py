"""Received messages: a server's :class:`Request` and a client's :class:`ClientResponse`."""

from __future__ import annotations

from weft.protocols.http._body import BodyStream
from weft.protocols.http._headers import Headers
from weft.protocols.http._wire import target_parts

__all__ = ["ClientResponse", "Request"]


class Request:
    """A request a server received, handed to its handler.

    ``method`` (``"GET"``), ``target`` as sent (``"/search?q=weft"``), split
    into ``path`` (``"/search"``) and ``query`` (``"q=weft"``), neither
    percent-decoded; ``headers`` (:class:`~weft.protocols.http._headers.Headers`);
    ``http_version`` (``"1.1"`` or ``"1.0"``); and ``body``, a
    :class:`~weft.protocols.http._body.BodyStream` that nothing reads until the
    handler asks.
    """

    __slots__ = ("body", "headers", "http_version", "method", "path", "query", "target")

    def __init__(
        self, method: str, target: str, headers: Headers, http_version: str, body: BodyStream
    ) -> None:
        self.method = method
        self.target = target
        self.path, self.query = target_parts(target)
        self.headers = headers
        self.http_version = http_version
        self.body = body

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} HTTP/{self.http_version}>"


class ClientResponse:
    """A response a client received: ``status`` (``200``), ``reason``
    (``"OK"``), ``headers``, ``http_version``, and its streamed ``body``."""

    __slots__ = ("body", "headers", "http_version", "reason", "status")

    def __init__(
        self, status: int, reason: str, headers: Headers, http_version: str, body: BodyStream
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.http_version = http_version
        self.body = body

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {self.reason}>"
