"""An asyncio-compatible event loop's own transports as a harness.

``AsyncioLoopHarness()`` runs the suite on asyncio's socket transports, as
``loop.create_server`` and ``loop.create_connection`` hand them out, with no
weft code between the loop and the protocols; ``AsyncioLoopHarness(uvloop.new_event_loop)``
on uvloop's.  Any loop that implements asyncio's ``AbstractEventLoop`` joins
the same way: it is how an adapter presenting another loop (Twisted's,
Trio's, weft's reactor) as an asyncio loop proves it keeps the asyncio
contract.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from weft.protocols.errors import ArgumentError

__all__ = ["AsyncioLoopHarness", "AsyncioLoopPair"]

#: Polls of the condition made on every turn of the loop before backing off.
_EAGER_POLLS = 50
#: The longest wait between two polls once backed off, in seconds.
_LONGEST_POLL = 0.002


class AsyncioLoopPair:
    """Two protocols connected on an event loop of their own."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.server: asyncio.AbstractServer | None = None
        self.directory: str | None = None
        self.callback_errors: list[BaseException] = []
        loop.set_exception_handler(self._report)

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Run the loop until ``condition()`` holds, asking it after every turn
        at first, then at least every couple of milliseconds."""
        if condition():
            return True
        return self.loop.run_until_complete(self._wait(condition, timeout))

    async def _wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = self.loop.time() + timeout
        polls = 0
        delay = 0.0001
        while not condition():
            if self.loop.time() >= deadline:
                return False
            polls += 1
            if polls < _EAGER_POLLS:
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(min(delay, max(deadline - self.loop.time(), 0.0)))
                delay = min(delay * 2, _LONGEST_POLL)
        return True

    def close(self) -> None:
        """Stop listening, close the loop, remove the socket's directory."""
        try:
            if self.server is not None:
                self.server.close()
                self.loop.run_until_complete(self.server.wait_closed())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)

    def _report(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's exception handler: where asyncio reports a callback's exception."""
        exception = context.get("exception")
        if isinstance(exception, BaseException):
            self.callback_errors.append(exception)


class AsyncioLoopHarness:
    """Pairs connected through a new event loop each, made by ``loop_factory``.

    ``carrier`` is ``"tcp"`` (``create_server``/``create_connection`` on
    loopback) or ``"unix"`` (``create_unix_server``/``create_unix_connection``
    in a temporary directory).  The exceptions a pair reports are those given
    to its loop's exception handler.
    """

    CARRIERS = ("tcp", "unix")

    def __init__(
        self,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
        carrier: str = "tcp",
        *,
        name: str | None = None,
    ) -> None:
        if carrier not in self.CARRIERS:
            raise ArgumentError(f"no carrier called {carrier!r}; choose from {', '.join(self.CARRIERS)}")
        self.loop_factory = loop_factory
        self.carrier = carrier
        self.name = name or f"asyncio-loop-{carrier}"

    def connect(self, client: Any, server: Any) -> AsyncioLoopPair:
        """A new loop, a server on it, and ``client`` connected to it."""
        pair = AsyncioLoopPair(self.loop_factory())
        try:
            pair.loop.run_until_complete(self._connect(pair, client, server))
        except BaseException:
            pair.close()
            raise
        return pair

    async def _connect(self, pair: AsyncioLoopPair, client: Any, server: Any) -> None:
        loop = pair.loop
        if self.carrier == "tcp":
            pair.server = await loop.create_server(lambda: server, "127.0.0.1", 0)
            port = pair.server.sockets[0].getsockname()[1]
            await loop.create_connection(lambda: client, "127.0.0.1", port)
            return
        pair.directory = tempfile.mkdtemp(prefix="weft-conformance-")
        path = os.path.join(pair.directory, "socket")
        pair.server = await loop.create_unix_server(lambda: server, path)
        await loop.create_unix_connection(lambda: client, path)
