"""Happy Eyeballs (RFC 8305) over an asyncio loop's socket primitives, for
loops whose ``create_connection`` has none: uvloop's rejects
``happy_eyeballs_delay`` and tries the addresses one after another, so a
black-holed first address costs the whole timeout.

:class:`LoopConnect` is :class:`~weft.drivers._core.connecting.AddressByAddress`
(the lookup on weft's shared resolver pool, the order, the stagger) with
one attempt primitive: a non-blocking socket connected by
``loop.sock_connect`` in a task.  The first to connect wins; the others'
tasks are cancelled and their sockets closed once the loop has let go of
them (in the task's done callback, never before: the loop may still watch
the descriptor).  :func:`connected_socket` awaits the winner, which the
caller hands to ``loop.create_connection(sock=...)``.  asyncio's own loops
keep asyncio's ``create_connection``, which has Happy Eyeballs itself.
"""

from __future__ import annotations

import asyncio
import socket
from functools import partial
from typing import Any

from weft.drivers._core.connecting import AddressByAddress
from weft.drivers._core.futures import Future
from weft.protocols.errors import ClosedResourceError

__all__ = ["LoopConnect", "connected_socket"]


class LoopConnect(AddressByAddress):
    """One connect's attempts on ``loop``: ``result`` gets the connected socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: str, delay: float | None) -> None:
        super().__init__(loop.call_soon_threadsafe, target, call_later=loop.call_later, delay=delay)
        self.loop = loop
        self.result: Future[socket.socket] = Future(loop.call_soon)
        #: The attempts under way: each ``sock_connect`` task and its socket.
        self.attempts: dict[asyncio.Task[None], socket.socket] = {}

    def _attempt(self, family: int, address: Any) -> None:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors, a family the host lacks
            self.address_failed(exc)
            return
        sock.setblocking(False)
        task = self.loop.create_task(self.loop.sock_connect(sock, address))
        self.attempts[task] = sock
        task.add_done_callback(partial(self._ended, sock))

    def _ended(self, sock: socket.socket, task: asyncio.Task[None]) -> None:
        """One attempt's task ended: a loser's socket is closed; a failure
        starts the next address; the first success wins."""
        mine = self.attempts.pop(task, None) is not None
        if task.cancelled() or not mine or self.result.done():
            sock.close()  # given up on (another won, the connect failed), or too late
            return
        error = task.exception()
        if error is not None:
            sock.close()
            if not isinstance(error, OSError):
                self.fail(error)
                return
            self.address_failed(error)
            return
        self.address_won()
        self._cancel_attempts()
        self.result.set_result(sock)

    def _cancel_attempts(self) -> None:
        # Their done callbacks close the sockets, once the loop is done with them.
        for task in list(self.attempts):
            task.cancel()
        self.attempts.clear()

    def fail(self, error: BaseException) -> None:
        if self.result.done():
            return
        self.stop_trying()
        self._cancel_attempts()
        self.result.set_exception(error)


async def connected_socket(
    loop: asyncio.AbstractEventLoop, host: str, port: int, target: str, delay: float | None
) -> socket.socket:
    """A non-blocking socket connected to ``host:port`` by :class:`LoopConnect`;
    the error of the last address (naming ``target``), or ``socket.gaierror``.

    Cancelled (the caller's timeout), it gives up every attempt under way.
    """
    connect = LoopConnect(loop, target, delay)
    waiter: asyncio.Future[socket.socket] = loop.create_future()

    def settled(result: Future[socket.socket]) -> None:
        if waiter.cancelled():
            if result.exception() is None:
                result.result().close()  # won after the caller gave up
            return
        if (error := result.exception()) is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(result.result())

    connect.result.add_done_callback(settled)
    connect.start_tcp(host, port)
    try:
        return await waiter
    except asyncio.CancelledError:
        connect.fail(ClosedResourceError(f"cannot connect to {target}: given up"))
        raise
