"""One program, three frameworks: weft, Twisted and Trio in one process, on one loop.

A weft pub/sub server (``weft.protocols.pubsub``) has three clients, each
written for its own framework: weft's ``PubSubClientProtocol``, a plain
Twisted ``LineReceiver``, and a Trio task (``trio.open_tcp_stream``, with
weft's sans-I/O line parser and pub/sub wire format).  All three subscribe to
``chat``; once all are subscribed, each publishes one message, and each hears
all three.

The same program runs on either loop:

* ``--host weft`` (the default): weft's reactor is Twisted's reactor
  (``weft.drivers.twisted_reactor.install()``), so the Twisted client runs on
  weft's loop; the pub/sub server is served by that weft reactor
  (``reactor.weft``), and Trio runs in guest mode on it
  (``weft.drivers.trio_guest.start_trio_guest``).
* ``--host twisted``: Twisted's own reactor (epoll on Linux); the pub/sub
  server is served on it by weft's Twisted driver (``TwistedRuntime``), and
  Trio runs in guest mode hosted by Twisted's reactor
  (``trio.lowlevel.start_guest_run`` with ``reactor.callFromThread``).

A Twisted reactor is installed once per process, so each host is a run of
its own.  Needs the ``twisted`` and ``trio`` extras
(``pip install 'weft[twisted,trio]'``).

Run: python examples/three_frameworks.py [--host weft|twisted]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import trio
from outcome import Outcome
from twisted.internet import defer, protocol, task
from twisted.protocols.basic import LineReceiver

from weft.drivers import Future
from weft.protocols.framing import LineParser
from weft.protocols.pubsub import PubSubClientProtocol, PubSubHub, PubSubServerProtocol
from weft.protocols.pubsub.wire import Message, Ok, Publish, Subscribe, encode_command, parse_server_line

TOPIC = b"chat"
NAMES = ("weft", "Twisted", "Trio")
#: Seconds before the program gives up (it takes milliseconds).
DEADLINE = 20.0


class Room:
    """Who has subscribed, and who has heard what: once all are subscribed,
    everyone is told to publish (through ``go``, each in its framework's way)."""

    def __init__(self) -> None:
        self.go: dict[str, Callable[[], object]] = {}
        self.subscribed: set[str] = set()

    def join(self, name: str, go: Callable[[], object]) -> None:
        self.go[name] = go

    def has_subscribed(self, name: str) -> None:
        self.subscribed.add(name)
        if self.subscribed == set(NAMES):
            for go in self.go.values():
                go()


# ------------------------------------------------------------------ weft


class WeftMember(PubSubClientProtocol):
    """weft's own pub/sub client."""

    def __init__(self, room: Room, heard: defer.Deferred[list[str]]) -> None:
        super().__init__()
        self.room, self.heard_all = room, heard
        self.heard: list[str] = []
        room.join("weft", lambda: self.publish(TOPIC, b"hello from weft"))

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.subscribe(TOPIC)

    def reply_received(self, command: object, reply: object) -> None:
        if isinstance(command, Subscribe) and isinstance(reply, Ok):
            self.room.has_subscribed("weft")

    def message_received(self, topic: bytes, message: bytes) -> None:
        self.heard.append(message.decode())
        if len(self.heard) == len(NAMES):
            self.transport.close()
            self.heard_all.callback(self.heard)


# --------------------------------------------------------------- Twisted


class TwistedMember(LineReceiver):
    """A plain Twisted client, speaking the pub/sub wire format by hand."""

    transport: Any

    def __init__(self, room: Room, heard: defer.Deferred[list[str]]) -> None:
        self.room, self.heard_all = room, heard
        self.heard: list[str] = []
        room.join("Twisted", lambda: self.sendLine(b"PUB chat hello from Twisted"))

    def connectionMade(self) -> None:
        self.sendLine(b"SUB chat")

    def lineReceived(self, line: bytes) -> None:
        if line == b"OK":
            self.room.has_subscribed("Twisted")
        elif line.startswith(b"MSG chat "):
            self.heard.append(line.removeprefix(b"MSG chat ").decode())
            if len(self.heard) == len(NAMES):
                self.transport.loseConnection()
                self.heard_all.callback(self.heard)


class TwistedMemberFactory(protocol.ClientFactory):
    def __init__(self, room: Room) -> None:
        self.room = room
        self.heard: defer.Deferred[list[str]] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> TwistedMember:
        return TwistedMember(self.room, self.heard)


# ------------------------------------------------------------------ Trio


async def trio_member(port: int, room: Room) -> list[str]:
    """A Trio task: Trio's sockets, weft's sans-I/O line parser and wire format."""
    go = trio.Event()
    token = trio.lowlevel.current_trio_token()
    room.join("Trio", lambda: token.run_sync_soon(go.set))  # into Trio, from any framework
    parser = LineParser()
    heard: list[str] = []
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:

        async def next_line() -> object:
            while (line := parser.next_frame()) is None:
                parser.feed(await stream.receive_some())
            return parse_server_line(line)

        await stream.send_all(encode_command(Subscribe(TOPIC)))
        if not isinstance(await next_line(), Ok):
            raise RuntimeError("the server did not take the subscription")
        room.has_subscribed("Trio")
        await go.wait()
        await stream.send_all(encode_command(Publish(TOPIC, b"hello from Trio")))
        while len(heard) < len(NAMES):
            said = await next_line()
            if isinstance(said, Message):
                heard.append(said.message.decode())
    return heard


# ------------------------------------------------------------ the program


def trio_on_weft(reactor: Any, port: int, room: Room) -> defer.Deferred[list[str]]:
    """Trio in guest mode on weft's reactor; a Deferred of what it returns."""
    from weft.drivers.trio_guest import start_trio_guest

    finished: defer.Deferred[list[str]] = defer.Deferred()

    def done(outcome: Future[list[str]]) -> None:
        if outcome.exception() is None:
            finished.callback(outcome.result())
        else:
            finished.errback(outcome.exception())

    start_trio_guest(reactor.weft, trio_member, port, room, done=done)
    return finished


def trio_on_twisted(reactor: Any, port: int, room: Room) -> defer.Deferred[list[str]]:
    """Trio in guest mode on Twisted's own reactor; a Deferred of what it returns."""
    finished: defer.Deferred[list[str]] = defer.Deferred()

    def done(outcome: Outcome[list[str]]) -> None:
        try:
            finished.callback(outcome.unwrap())
        except BaseException as exc:
            finished.errback(exc)

    trio.lowlevel.start_guest_run(
        trio_member,
        port,
        room,
        run_sync_soon_threadsafe=reactor.callFromThread,
        run_sync_soon_not_threadsafe=lambda call: reactor.callLater(0, call),
        done_callback=done,
        # Twisted's reactor.run() sets signal.set_wakeup_fd (its SIGCHLD
        # handling): Trio must leave it alone.
        host_uses_signal_set_wakeup_fd=True,
    )
    return finished


async def main(reactor: Any, host: str) -> None:
    if host == "weft":
        runtime: Any = reactor.weft  # the weft reactor underneath Twisted's
        start_trio = trio_on_weft
        print(f"{type(reactor).__name__} on weft's {type(runtime).__name__} hosts all three")
    else:
        from weft.drivers.twisted import TwistedRuntime

        runtime = TwistedRuntime(reactor)  # weft protocols on this Twisted reactor
        start_trio = trio_on_twisted
        print(f"Twisted's {type(reactor).__name__} hosts all three")

    hub = PubSubHub()
    listener = runtime.listen_tcp(lambda: PubSubServerProtocol(hub), "127.0.0.1", 0)
    room = Room()

    weft_heard: defer.Deferred[list[str]] = defer.Deferred()
    runtime.connect_tcp(lambda: WeftMember(room, weft_heard), "127.0.0.1", listener.port)
    twisted_client = TwistedMemberFactory(room)
    reactor.connectTCP("127.0.0.1", listener.port, twisted_client)
    trio_heard = start_trio(reactor, listener.port, room)

    everyone: defer.Deferred[list[list[str]]] = defer.gatherResults(
        [weft_heard, twisted_client.heard, trio_heard], consumeErrors=True
    )
    everyone.addTimeout(DEADLINE, reactor)
    for name, heard in zip(NAMES, await everyone, strict=True):
        print(f"{name} client heard: {', '.join(sorted(heard))}")
    listener.close()
    if host == "twisted":
        runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", choices=("weft", "twisted"), default="weft")
    host = parser.parse_args().host
    if host == "weft":
        from weft.drivers.twisted_reactor import install

        install()  # before anything imports twisted.internet.reactor
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, host)))
