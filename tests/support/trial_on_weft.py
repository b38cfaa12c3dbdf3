"""A trial test module, run by ``trial --reactor=weft`` in
tests/drivers/test_twisted_on_weft_programs.py (its name keeps pytest away).

Ordinary trial tests: they return Deferreds that the global reactor fires,
and one checks which reactor that is.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, protocol, task
from twisted.trial import unittest


class Echo(protocol.Protocol):
    """Twisted's echo."""

    transport: Any

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Ask(protocol.Protocol):
    """Sends a greeting and fires ``answered`` with the first reply."""

    transport: Any

    def __init__(self) -> None:
        self.answered: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"hello trial")

    def dataReceived(self, data: bytes) -> None:
        self.transport.loseConnection()
        self.answered.callback(data)


class OnWeftTests(unittest.TestCase):
    """Trial tests that need a running reactor."""

    def test_the_reactor_is_weft(self) -> None:
        """trial installed weft's reactor, with a weft reactor underneath."""
        from twisted.internet import reactor

        from weft.drivers.reactor import Reactor

        assert type(reactor).__name__ == "WeftReactor"
        assert isinstance(reactor.weft, Reactor)

    def test_a_delayed_deferred(self) -> defer.Deferred[str]:
        """A Deferred fired by a delayed call on the reactor."""
        from twisted.internet import reactor

        later = task.deferLater(reactor, 0.01, lambda: "later")
        later.addCallback(self.assertEqual, "later")
        return later

    @defer.inlineCallbacks
    def test_a_tcp_round_trip(self) -> Any:
        """An echo server and a client on loopback, awaited in an inlineCallbacks test."""
        from twisted.internet import reactor

        tcp: Any = reactor
        port = tcp.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = yield protocol.ClientCreator(reactor, Ask).connectTCP("127.0.0.1", port.getHost().port)
        answer = yield client.answered
        assert answer == b"hello trial"
