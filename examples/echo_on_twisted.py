"""weft's echo protocol on Twisted's reactor, inside an ordinary Twisted program.

The Twisted driver runs weft protocols on the reactor a Twisted program
already runs: weft serves EchoProtocol while a Twisted ``LineReceiver``
talks to it, and a weft client's connect is a ``Deferred``, awaited like
any Twisted result.  Needs the ``twisted`` extra (``pip install 'weft[twisted]'``).

Run: python examples/echo_on_twisted.py
"""

from typing import Any

from twisted.internet import defer, task
from twisted.internet.protocol import ClientFactory
from twisted.protocols.basic import LineReceiver

from weft.drivers.twisted import TwistedRuntime
from weft.protocols import EchoProtocol
from weft.protocols.contract import Protocol


class Asker(LineReceiver):
    """A plain Twisted client: says one line, hands the answer to a Deferred."""

    delimiter = b"\n"

    def __init__(self, answer: defer.Deferred[bytes]) -> None:
        self.answer = answer

    def connectionMade(self) -> None:
        transport: Any = self.transport  # zope's interfaces mean nothing to mypy
        transport.write(b"hello, weft\n")

    def lineReceived(self, line: bytes) -> None:
        self.answer.callback(line)
        transport: Any = self.transport
        transport.loseConnection()


class AskerFactory(ClientFactory):
    """Makes the one Asker, with the Deferred its answer goes to."""

    def __init__(self) -> None:
        self.answer: defer.Deferred[bytes] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> Asker:
        return Asker(self.answer)


class FirstReply(Protocol):
    """A weft client that hands the first bytes it receives to a Deferred."""

    def __init__(self, reply: defer.Deferred[bytes]) -> None:
        self.reply = reply

    def data_received(self, data: bytes) -> None:
        if not self.reply.called:
            self.reply.callback(data)


async def main(reactor: Any) -> None:
    runtime = TwistedRuntime(reactor)  # weft on this program's reactor
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)

    asking = AskerFactory()
    reactor.connectTCP("127.0.0.1", listener.port, asking)  # plain Twisted
    print("echoed:", (await asking.answer).decode())

    reply: defer.Deferred[bytes] = defer.Deferred()
    connecting = runtime.connect_tcp(lambda: FirstReply(reply), "127.0.0.1", listener.port)
    transport = await runtime.wrap_future(connecting)  # a weft Future, as a Deferred
    transport.write(b"and back")
    print("weft client got:", (await reply).decode())

    listener.close()
    runtime.close()  # ends weft's open connections; the reactor stays the program's


task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
