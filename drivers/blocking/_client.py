"""Connections for scripts and REPLs: no event loop, timeouts everywhere.

::

    from weft.drivers.blocking import connect_tcp
    from weft.protocols.pubsub import PubSubClientProtocol

    messages = []
    client = PubSubClientProtocol(on_message=lambda topic, message: messages.append(message))
    with connect_tcp(client, "127.0.0.1", 8000, timeout=5) as conn:
        client.subscribe(b"news")
        client.publish(b"news", b"hello")
        conn.wait_for(lambda: messages, timeout=5)

A :class:`Connection` owns a private :class:`~weft.drivers.blocking.BlockingRuntime`
whose scheduler is *your* thread: the protocol's callbacks (and its
timers) run only while you are inside one of the connection's ``wait_*`` or
:meth:`Connection.run_for` calls, never behind your back, so calling the
protocol's methods between waits needs no lock.  Meanwhile the connection's
own threads keep moving bytes: what you write is sent at once, and what
arrives is read (a few chunks ahead, then the peer is held back by TCP)
until you wait and it is delivered.

Every wait takes a ``timeout`` in seconds (30 by default) and raises
``TimeoutError`` when it expires; a wait for a condition that the end of
the connection makes impossible raises
:class:`~weft.protocols.errors.ClosedResourceError` at once instead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from weft.drivers._core.child_processes import Process, StderrOption
from weft.drivers._core.futures import Future
from weft.drivers.blocking._runtime import BlockingRuntime
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError, ClosedResourceError

__all__ = ["DEFAULT_TIMEOUT", "Connection", "connect_pipes", "connect_tcp", "connect_unix", "spawn_process"]

#: Seconds any call here waits unless told otherwise.
DEFAULT_TIMEOUT = 30.0

_P = TypeVar("_P")
_T = TypeVar("_T")


class Connection(Generic[_P]):
    """One connection, its protocol, and the runtime it runs on (made by :func:`connect_tcp` and friends).

    A context manager: leaving the ``with`` block closes the connection
    (flushing what was written, for up to ``timeout`` seconds, then
    aborting) and releases its threads.
    """

    def __init__(self, runtime: BlockingRuntime, protocol: _P, transport: Transport, timeout: float) -> None:
        #: The protocol: call its methods between waits.
        self.protocol = protocol
        #: The transport under it.
        self.transport = transport
        #: The private runtime (its scheduler runs only inside the waits).
        self.runtime = runtime
        #: The default timeout of :meth:`close` and of leaving the ``with`` block.
        self.timeout = timeout
        #: The child process, for a connection made by :func:`spawn_process` (else None).
        self.process: Process | None = None
        self._lost = False
        self._error: BaseException | None = None
        on_lost: list[Callable[[Any], object]] = getattr(transport, "on_lost", [])
        on_lost.append(self._connection_lost)

    def _connection_lost(self, transport: Any) -> None:
        self._lost = True
        self._error = getattr(transport, "_end_exc", None)

    @property
    def closed(self) -> bool:
        """Whether the connection has ended (its protocol's ``connection_lost`` ran)."""
        return self._lost

    @property
    def error(self) -> BaseException | None:
        """What the connection ended with (``None`` while open or after a clean end)."""
        return self._error

    def wait_for(self, condition: Callable[[], _T], timeout: float = DEFAULT_TIMEOUT) -> _T:
        """Run the protocol's callbacks until ``condition()`` is true; return its value.

        Raises ``TimeoutError`` after ``timeout`` seconds, and
        :class:`~weft.protocols.errors.ClosedResourceError` (with the
        connection's error as its cause) if the connection ends first.
        """
        _check_timeout(timeout)
        self.runtime.run_until(lambda: bool(condition()) or self._lost, timeout)
        if value := condition():
            return value
        if self._lost:
            raise ClosedResourceError("the connection ended before the condition held") from self._error
        raise TimeoutError(f"the condition did not hold within {timeout:g} s")

    def wait_until_closed(self, timeout: float = DEFAULT_TIMEOUT) -> BaseException | None:
        """Run the callbacks until the connection ends; return what it ended with (``None``: cleanly).

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        _check_timeout(timeout)
        if not self.runtime.run_until(lambda: self._lost, timeout):
            raise TimeoutError(f"the connection was still open after {timeout:g} s")
        return self._error

    def wait_for_exit(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Run the callbacks until the child process has exited; return its status.

        Only for a connection made by :func:`spawn_process`.  The status is
        the exit code, or ``-signum`` for a child a signal ended.  Raises
        ``TimeoutError`` after ``timeout`` seconds.
        """
        _check_timeout(timeout)
        process = self.process
        if process is None:
            raise ArgumentError("this connection is not to a child process")
        if not self.runtime.run_until(process.exited.done, timeout):
            raise TimeoutError(f"the child {process.pid} was still running after {timeout:g} s")
        return process.exited.result()

    def run_for(self, seconds: float) -> None:
        """Run the callbacks (data, timers) for ``seconds``, then return."""
        _check_timeout(seconds)
        self.runtime.run_until(lambda: False, seconds)

    def close(self, timeout: float | None = None) -> BaseException | None:
        """Flush and close; wait (``timeout``, default :attr:`timeout`) for the end.

        Aborts the connection and raises ``TimeoutError`` if the peer has not
        taken everything in time.  Returns what the connection ended with.
        """
        self.transport.close()
        try:
            return self.wait_until_closed(self.timeout if timeout is None else timeout)
        except TimeoutError:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop what is unsent and end the connection now (a TCP peer gets a reset)."""
        self.transport.abort()
        self.runtime.run_until(lambda: self._lost, self.timeout)

    def __enter__(self) -> Connection[_P]:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            if not self._lost:
                if exc_type is None:
                    self.close()
                else:
                    self.abort()
        finally:
            self.runtime.close()

    def __repr__(self) -> str:
        return f"<Connection {self.transport!r} {'closed' if self._lost else 'open'}>"


def connect_tcp(
    protocol: _P, host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT, max_connections: int = 1
) -> Connection[_P]:
    """Connect ``protocol`` to ``host:port``; ``connection_made`` has run when this returns.

    Raises ``ConnectionRefusedError`` and the like (with the address in
    the message), ``TimeoutError`` after ``timeout`` seconds (which is also
    the default timeout of the connection's :meth:`Connection.close`).
    """
    _check_timeout(timeout)
    runtime = BlockingRuntime(max_connections=max_connections)
    return _finish(
        runtime, protocol, runtime.connect_tcp(lambda: protocol, host, port, timeout=timeout), timeout
    )


def connect_unix(protocol: _P, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> Connection[_P]:
    """Connect ``protocol`` to the UNIX-domain socket at ``path`` (as :func:`connect_tcp`).

    While the listener's accept backlog is full it waits for room, as a
    blocking ``connect`` does, up to ``timeout`` seconds; then it raises
    :class:`~weft.drivers.ListenerBacklogFullError` (a ``TimeoutError``).
    """
    _check_timeout(timeout)
    runtime = BlockingRuntime()
    return _finish(runtime, protocol, runtime.connect_unix(lambda: protocol, path, timeout=timeout), timeout)


def connect_pipes(
    protocol: _P, read_fd: int, write_fd: int, *, close_fds: bool = True, timeout: float = DEFAULT_TIMEOUT
) -> Connection[_P]:
    """Run ``protocol`` over two descriptors (a child's stdout and stdin, say)."""
    _check_timeout(timeout)
    runtime = BlockingRuntime()
    try:
        transport = runtime.connect_pipes(lambda: protocol, read_fd, write_fd, close_fds=close_fds)
    except BaseException:
        runtime.close()
        raise
    return Connection(runtime, protocol, transport, timeout)


def spawn_process(
    protocol: _P,
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stderr: StderrOption = None,
    pty: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Connection[_P]:
    """Start ``args`` (no shell) with ``protocol`` on its stdin and stdout (or a PTY).

    The connection's :attr:`Connection.process` is the child (``pid``,
    ``returncode``, ``send_signal``, ``terminate``, ``kill``), and
    :meth:`Connection.wait_for_exit` waits for its status.  Leaving the
    ``with`` block closes the child's stdin (after what was written) and
    releases the threads; a child still running then is reaped by a thread
    whenever it exits.  Options as the reactor's ``spawn_process``.
    """
    _check_timeout(timeout)
    runtime = BlockingRuntime()
    try:
        process = runtime.spawn_process(lambda: protocol, args, env=env, cwd=cwd, stderr=stderr, pty=pty)
    except BaseException:
        runtime.close()
        raise
    connection = Connection(runtime, protocol, process.transport, timeout)
    connection.process = process
    return connection


def _finish(
    runtime: BlockingRuntime, protocol: _P, connecting: Future[Transport], timeout: float
) -> Connection[_P]:
    try:
        # The connect thread has its own timeout; this one only bounds the wait.
        if not runtime.run_until(connecting.done, timeout + 1.0):
            raise TimeoutError(f"no connection within {timeout:g} s")
        return Connection(runtime, protocol, connecting.result(), timeout)
    except BaseException:
        runtime.close()
        raise


def _check_timeout(timeout: float) -> None:
    if not timeout >= 0 or math.isinf(timeout):
        raise ArgumentError(f"timeout must be a finite number of seconds >= 0, not {timeout!r}")
