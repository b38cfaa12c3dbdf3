"""Where streams come from: connecting (``open_tcp``, ``open_unix``,
``open_pipes``) and serving (``serve_tcp``, and ``stream_handler`` for any
listener), each a :class:`~weft.drivers.coroutines._streams.StreamProtocol`
handed to a runtime.  (Child processes: :mod:`weft.drivers.coroutines._process_streams`.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from weft.drivers._runtime import Listener, LoopRuntime, PipesRuntime, TCPRuntime, UNIXRuntime
from weft.drivers.coroutines._host import Host
from weft.drivers.coroutines._streams import (
    DEFAULT_READ_LIMIT,
    Stream,
    StreamHandler,
    StreamProtocol,
)
from weft.drivers.coroutines._task import Task, spawn

__all__ = ["open_pipes", "open_tcp", "open_unix", "serve_tcp", "stream_handler"]

logger = logging.getLogger("weft.drivers.coroutines")


class TCPLoop(LoopRuntime, TCPRuntime, Protocol):
    """A runtime with a loop and TCP: what :func:`serve_tcp` needs (every OS
    driver, and the testing kit's ``MemoryRuntime``)."""


async def open_tcp(
    runtime: TCPRuntime, host: str, port: int, *, timeout: float = 30.0, read_limit: int = DEFAULT_READ_LIMIT
) -> Stream:
    """Connect to ``host:port`` on ``runtime``; the stream once connected (or the error)."""
    protocol = StreamProtocol(read_limit=read_limit)
    await runtime.connect_tcp(lambda: protocol, host, port, timeout=timeout)
    return protocol.stream


async def open_unix(
    runtime: UNIXRuntime, path: str, *, timeout: float = 30.0, read_limit: int = DEFAULT_READ_LIMIT
) -> Stream:
    """Connect to the UNIX-domain socket at ``path``; the stream once connected."""
    protocol = StreamProtocol(read_limit=read_limit)
    await runtime.connect_unix(lambda: protocol, path, timeout=timeout)
    return protocol.stream


def open_pipes(
    runtime: PipesRuntime,
    read_fd: int,
    write_fd: int,
    *,
    close_fds: bool = True,
    read_limit: int = DEFAULT_READ_LIMIT,
) -> Stream:
    """A stream over two file descriptors (pipes, stdio); synchronous, as the
    runtime's ``connect_pipes`` is."""
    protocol = StreamProtocol(read_limit=read_limit)
    runtime.connect_pipes(lambda: protocol, read_fd, write_fd, close_fds=close_fds)
    return protocol.stream


def stream_handler(
    host: Host, handler: StreamHandler, *, read_limit: int = DEFAULT_READ_LIMIT
) -> Callable[[], StreamProtocol]:
    """A protocol factory that runs ``await handler(stream)`` as one task per connection.

    Give it to anything that takes a protocol factory (a runtime's
    ``listen_tcp``, ``listen_unix`` or ``connect_pipes``, a
    :class:`~weft.drivers._serving.Server`); the tasks run on ``host``.  When
    a handler returns, its stream is closed.  An exception in a handler is
    logged (``weft.drivers.coroutines`` logger) and aborts that connection
    only.  :func:`weft.drivers.serve` does this itself when it is given an
    ``async def`` handler.
    """
    tasks: set[Task[None]] = set()  # running handlers: a task nobody holds could be collected

    async def handle(stream: Stream) -> None:
        try:
            await handler(stream)
        except Exception:
            logger.exception("stream handler %r failed; closing its connection", handler)
            stream.abort()
            return
        await stream.close()

    def start(stream: Stream) -> None:
        task = spawn(host, handle(stream), name=f"stream handler {stream.get_extra_info('peername')!r}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return lambda: StreamProtocol(read_limit=read_limit, on_connection=start)


def serve_tcp(
    runtime: TCPLoop,
    handler: StreamHandler,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    read_limit: int = DEFAULT_READ_LIMIT,
) -> Listener:
    """Accept TCP connections and run ``await handler(stream)`` as one task each.

    When the handler returns, its stream is closed.  An exception in a
    handler is logged (``weft.drivers.coroutines`` logger) and aborts that
    connection only.  Closing the listener stops accepting; running
    handlers go on.  (See :func:`stream_handler` for other listeners.)
    """
    return runtime.listen_tcp(stream_handler(runtime, handler, read_limit=read_limit), host, port)
