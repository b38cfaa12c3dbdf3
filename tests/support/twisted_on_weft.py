"""Twisted programs on weft's reactor, each in a process of its own.

Installing a Twisted reactor is global and cannot be undone, so the test
process never does it; it runs::

    python -m tests.support.twisted_on_weft PROGRAM

Each program installs weft's reactor with ``install()`` (as a Twisted user
would, before ``twisted.internet.reactor`` is imported), runs Twisted code
that does not know which reactor it is on, and prints what it found as one
line of JSON.  Every wait is bounded.

* ``web``: a ``twisted.web`` site and ``twisted.web.client.Agent`` fetching
  from it, under ``task.react``;
* ``names``: a ``twisted.names`` DNS server (answering from a hosts file)
  over UDP and TCP, queried with ``twisted.names.client``;
* ``install-on``: ``install(reactor=r)`` on a weft reactor ``r`` that already
  serves a weft protocol, which a Twisted client then talks to.

:class:`ReactorName` is a ``twisted.web`` resource naming the reactor it is
served on, for ``twist web --class`` (tests/drivers/test_twisted_on_weft_programs.py).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

from twisted.web.resource import Resource

from tests.support import TIMEOUT


class ReactorName(Resource):
    """Answers every GET with the class of the global Twisted reactor."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        from twisted.internet import reactor

        kind = type(reactor)
        return f"served on {kind.__module__}.{kind.__qualname__}".encode()


def reactor_name(reactor: Any) -> str:
    """``module.Class`` of ``reactor``."""
    kind = type(reactor)
    return f"{kind.__module__}.{kind.__qualname__}"


def web(reactor: Any) -> Any:
    """A twisted.web site and an Agent fetching from it (a Deferred of the findings)."""
    from twisted.web import client, server
    from twisted.web.resource import Resource

    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            name: bytes = request.args.get(b"name", [b"nobody"])[0]
            return b"hello " + name

    port = reactor.listenTCP(0, server.Site(Hello()), interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/?name=weft".encode()
    found: dict[str, Any] = {}

    def got_response(response: Any) -> Any:
        found["status"] = response.code
        with warnings.catch_warnings():
            # Twisted's own, on every reactor: the body of a response read whole
            # is delivered over a transport without abortConnection.
            warnings.filterwarnings("ignore", "Using readBody", DeprecationWarning)
            return client.readBody(response)

    def got_body(body: bytes) -> dict[str, Any]:
        found["body"] = body.decode()
        return found

    requested = client.Agent(reactor).request(b"GET", url)
    requested.addCallback(got_response)
    requested.addCallback(got_body)
    requested.addBoth(_after(port.stopListening))
    return requested


def names(reactor: Any) -> Any:
    """A DNS server answering from a hosts file, asked over UDP and over TCP."""
    from twisted.internet import defer
    from twisted.names import client, dns, hosts, server

    hosts_file = tempfile.NamedTemporaryFile("w", suffix=".hosts", delete=False)  # noqa: SIM115
    with hosts_file:
        hosts_file.write("127.0.0.42 weft.example\n")
    factory = server.DNSServerFactory(authorities=[hosts.Resolver(file=hosts_file.name)])
    udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    address = ("127.0.0.1", udp.getHost().port)
    tcp = reactor.listenTCP(address[1], factory, interface="127.0.0.1")
    resolver: Any = client.Resolver(servers=[address], reactor=reactor)
    query = dns.Query(b"weft.example", dns.A, dns.IN)

    def addresses(message: Any) -> list[str]:
        answers = message[0] if isinstance(message, tuple) else message.answers
        return [answer.payload.dottedQuad() for answer in answers]

    asked = defer.gatherResults(
        [
            resolver.lookupAddress("weft.example").addCallback(addresses),
            resolver.queryTCP([query]).addCallback(addresses),
        ]
    )

    def found(results: list[list[str]]) -> dict[str, Any]:
        return {"udp": results[0], "tcp": results[1]}

    def cleanup() -> Any:
        os.unlink(hosts_file.name)
        return defer.gatherResults([defer.maybeDeferred(udp.stopListening), tcp.stopListening()])

    asked.addCallback(found)
    asked.addBoth(_after(cleanup))
    return asked


def _after(cleanup: Callable[[], Any]) -> Callable[[Any], Any]:
    """A callback that runs ``cleanup`` (waiting for it if it returns a Deferred)
    and passes the result on."""
    from twisted.internet import defer

    def run(result: Any) -> Any:
        done = defer.maybeDeferred(cleanup)
        done.addCallback(lambda _: result)
        return done

    return run


def main(program: str) -> dict[str, Any]:
    """Install weft's reactor, run ``program`` under ``task.react``, return its findings."""
    from weft.drivers.reactor import Reactor
    from weft.drivers.twisted_reactor import install

    loop = Reactor()
    if program == "install-on":
        return install_on(loop)
    install(loop)
    from twisted.internet import defer, task
    from twisted.internet import reactor as global_reactor

    found: dict[str, Any] = {
        "reactor": reactor_name(global_reactor),
        "on_our_loop": global_reactor.weft is loop,
    }

    def run(reactor: Any) -> Any:
        d = defer.maybeDeferred({"web": web, "names": names}[program], reactor)
        d.addTimeout(TIMEOUT, reactor)
        d.addCallback(found.update)
        return d

    try:
        task.react(run)
    except SystemExit as exit:
        found["exit"] = exit.code
    return found


def install_on(loop: Any) -> dict[str, Any]:
    """``install(reactor=loop)`` where ``loop`` already serves a weft echo; a
    Twisted client talks to it and Twisted's run() turns the loop."""
    from weft.drivers.twisted_reactor import install
    from weft.protocols import EchoProtocol

    listener = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    installed = install(reactor=loop)
    from twisted.internet import protocol
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    found: dict[str, Any] = {"reactor": reactor_name(reactor), "same": reactor is installed}

    class Client(protocol.Protocol):
        transport: Any

        def connectionMade(self) -> None:
            self.transport.write(b"hello weft")

        def dataReceived(self, data: bytes) -> None:
            found["echoed"] = data.decode()
            reactor.stop()

    creator: Any = protocol.ClientCreator  # untyped
    creator(reactor, Client).connectTCP("127.0.0.1", listener.port)
    reactor.callLater(TIMEOUT, reactor.stop)
    reactor.run()
    listener.close()
    return found


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
