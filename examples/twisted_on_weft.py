"""A Twisted program on weft's reactor, with weft protocols on the same loop.

``install()`` makes weft's reactor Twisted's reactor (call it before anything
imports ``twisted.internet.reactor``); from then on Twisted code runs
unchanged, and ``reactor.weft`` serves weft protocols beside it, one epoll
for both.  Here a twisted.web resource answers weft's HTTP client, and a
Twisted protocol talks to weft's echo protocol.

Run: python examples/twisted_on_weft.py
"""

from typing import Any

from weft.drivers.twisted_reactor import install

reactor: Any = install()  # before twisted.internet.reactor is imported

from twisted.internet import defer, endpoints, protocol, task  # noqa: E402
from twisted.web import resource, server  # noqa: E402

from weft.protocols import EchoProtocol  # noqa: E402
from weft.protocols.http import ClientResponse, HTTPClientProtocol  # noqa: E402


class Hello(resource.Resource):
    """A twisted.web resource."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello from twisted.web"


class Ask(protocol.Protocol):
    """A Twisted protocol: says something, fires ``answer`` with the reply."""

    transport: Any

    def __init__(self) -> None:
        self.answer: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"hello weft")

    def dataReceived(self, data: bytes) -> None:
        self.transport.loseConnection()
        self.answer.callback(data)


def fetch_with_weft(port: int) -> defer.Deferred[str]:
    """weft's HTTP client (a weft protocol) fetches / from ``port``; a Deferred of the answer."""
    answered: defer.Deferred[str] = defer.Deferred()
    client = HTTPClientProtocol(host="127.0.0.1")

    def done(response: ClientResponse, body: bytes) -> None:
        client.close()
        answered.callback(f"{response.status} {body.decode()}")

    client.fetch("GET", "/", on_complete=done, on_error=answered.errback)
    reactor.weft.connect_tcp(lambda: client, "127.0.0.1", port)
    return answered


async def main(reactor: Any) -> None:
    site = reactor.listenTCP(0, server.Site(Hello()), interface="127.0.0.1")
    echo = reactor.weft.listen_tcp(EchoProtocol, "127.0.0.1", 0)  # a weft protocol, same loop

    print("weft's HTTP client got from twisted.web:", await fetch_with_weft(site.getHost().port))
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", echo.port)
    ask = await endpoints.connectProtocol(endpoint, Ask())
    print("a Twisted client got from weft's echo:", (await ask.answer).decode())

    echo.close()
    await site.stopListening()
    print("one loop:", type(reactor).__name__, "on", type(reactor.weft).__name__)


task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
