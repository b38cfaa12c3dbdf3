"""Twisted programs on an asyncio event loop, through Twisted's own asyncioreactor.

Run one in a process of its own (installing a Twisted reactor is global and
cannot be undone, so the test process never does it)::

    python -m tests.support.twisted_on_loop LOOP PROGRAM

``LOOP`` names a loop of :mod:`tests.support.event_loops`; the program
installs ``twisted.internet.asyncioreactor.AsyncioSelectorReactor`` on a loop
of that kind, runs, and prints what it found as one line of JSON (the test
compares it with what asyncio's own loop gives).  Every wait is bounded.

* ``tcp-echo``: asyncio drives (``asyncio.Runner``); a Twisted TCP echo
  server and a Twisted client exchange 512 KiB, awaited from asyncio with
  ``Deferred.asFuture``;
* ``deferreds``: asyncio drives; a Deferred chain (a callback returning a
  Deferred fired by a reactor timer), an errback, a Future adapted with
  ``Deferred.fromFuture``, and cancelling the Future of ``asFuture``;
* ``reactor-run``: Twisted drives (``task.react``, so ``reactor.run()`` runs
  the loop and ``reactor.stop()`` stops it): a timer, ``deferToThread``
  (a thread hands its result back with ``callFromThread``), and an asyncio
  task awaited as a Deferred.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support import TIMEOUT
from tests.support.event_loops import loop_factory, run_program

KIB = 1024


def install_on(loop: asyncio.AbstractEventLoop) -> Any:
    """Install Twisted's asyncio reactor on ``loop``; return the reactor (as Any:
    the reactor's interfaces are zope declarations that mypy cannot follow)."""
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    from twisted.internet import reactor

    return reactor


def transport_of(protocol: Any) -> Any:
    """A Twisted protocol's transport (as Any: its interface is a zope declaration)."""
    return protocol.transport


async def tcp_echo() -> dict[str, object]:
    """A Twisted echo server and a Twisted client on the loop, awaited from asyncio."""
    from twisted.internet.defer import Deferred, maybeDeferred
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import Factory, Protocol, connectionDone
    from twisted.python.failure import Failure

    loop = asyncio.get_running_loop()
    reactor = install_on(loop)
    payload = bytes(range(256)) * (KIB * 2)  # 512 KiB
    server_lost: Deferred[None] = Deferred()

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            transport_of(self).write(data)

        def connectionLost(self, reason: Failure = connectionDone) -> None:
            server_lost.callback(None)

    class Client(Protocol):
        def __init__(self) -> None:
            self.received = bytearray()
            self.echoed: Deferred[bytes] = Deferred()
            self.lost: Deferred[None] = Deferred()

        def connectionMade(self) -> None:
            half = len(payload) // 2
            transport_of(self).write(payload[:half])
            transport_of(self).writeSequence([payload[half : half + KIB], payload[half + KIB :]])

        def dataReceived(self, data: bytes) -> None:
            self.received += data
            if len(self.received) >= len(payload) and not self.echoed.called:
                self.echoed.callback(bytes(self.received))
                transport_of(self).loseConnection()

        def connectionLost(self, reason: Failure = connectionDone) -> None:
            self.lost.callback(None)

    factory = Factory.forProtocol(Echo)
    factory.noisy = False
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port, timeout=int(TIMEOUT))
    client: Client = await connectProtocol(endpoint, Client()).asFuture(loop)  # type: ignore[no-untyped-call]
    echoed = await client.echoed.asFuture(loop)
    await client.lost.asFuture(loop)
    await server_lost.asFuture(loop)
    await maybeDeferred(port.stopListening).asFuture(loop)
    return {
        "echoed": echoed == payload,
        "sizes": [len(payload) // 2, len(payload) - len(payload) // 2],
        "server_lost": server_lost.called,
        "client_lost": client.lost.called,
    }


async def deferreds() -> dict[str, object]:
    """Deferred chains awaited from asyncio, and asyncio futures awaited as Deferreds."""
    from twisted.internet.defer import Deferred
    from twisted.internet.task import deferLater

    loop = asyncio.get_running_loop()
    reactor = install_on(loop)
    found: dict[str, object] = {}

    # A chain: +1, then a Deferred (fired by a reactor timer) that doubles.
    chain: Deferred[int] = Deferred()
    chain.addCallback(lambda value: value + 1)
    chain.addCallback(lambda value: deferLater(reactor, 0, lambda: value * 2))
    reactor.callLater(0, chain.callback, 20)
    found["chain"] = await chain.asFuture(loop)

    # An errback reaches asyncio as the exception itself.
    def refuse(value: int) -> int:
        raise ValueError(f"refused {value}")

    failing: Deferred[int] = Deferred()
    failing.addCallback(refuse)
    reactor.callLater(0, failing.callback, 7)
    try:
        await failing.asFuture(loop)
    except ValueError as error:
        found["errback"] = f"ValueError: {error}"

    # An asyncio future, adapted to a Deferred, with a Twisted callback on it.
    future: asyncio.Future[int] = loop.create_future()
    loop.call_soon(future.set_result, 5)
    adapted = Deferred.fromFuture(future)
    adapted.addCallback(lambda value: f"asyncio said {value}")
    found["from_future"] = await adapted.asFuture(loop)

    # Cancelling asFuture's future cancels the Deferred behind it.
    cancelled: asyncio.Future[bool] = loop.create_future()
    pending: Deferred[None] = Deferred(lambda _: cancelled.set_result(True))
    pending.addErrback(lambda _: None)  # the CancelledError it then fails with is expected
    pending.asFuture(loop).cancel()
    found["cancelled"] = await cancelled
    return found


def reactor_run(loop_name: str) -> dict[str, object]:
    """Twisted owns the loop: ``task.react`` runs the reactor (the loop's
    ``run_forever``) until the program's Deferred fires, then stops it."""
    from twisted.internet import task, threads
    from twisted.internet.defer import Deferred

    loop = loop_factory(loop_name)()
    asyncio.set_event_loop(loop)
    reactor = install_on(loop)
    found: dict[str, object] = {}
    main_thread = threading.get_ident()

    async def asyncio_side() -> str:
        return "from asyncio"

    async def program(_reactor: Any) -> None:
        found["timer"] = await task.deferLater(reactor, 0.001, lambda: "later")
        thread = await threads.deferToThread(threading.get_ident)
        found["thread"] = thread != main_thread
        found["asyncio"] = await Deferred.fromFuture(loop.create_task(asyncio_side()))

    # A bound on the whole run that fires before the test's own gives up on us.
    reactor.callLater(TIMEOUT / 2, reactor.stop)
    try:
        task.react(lambda reactor_: Deferred.fromCoroutine(program(reactor_)))
    except SystemExit as exited:  # react() ends with sys.exit once the reactor has stopped
        found["exit"] = exited.code
        found["stopped"] = not loop.is_running()
    finally:
        loop.close()
    return found


PROGRAMS: dict[str, Callable[[], Awaitable[dict[str, object]]]] = {
    "tcp-echo": tcp_echo,
    "deferreds": deferreds,
}


def main(argv: list[str]) -> int:
    """Run one program on one loop; print its findings as JSON."""
    loop_name, program = argv
    found = reactor_run(loop_name) if program == "reactor-run" else run_program(loop_name, PROGRAMS[program])
    print(json.dumps(found), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
