"""What every network driver offers, so that programs pick one with one argument.

A *runtime* is a running driver: the reactor, asyncio (or uvloop) through
weft's adapter, and later drivers.  The command line, :func:`weft.drivers.serve`
and the examples use only this interface, so each runs on any driver::

    runtime = weft.drivers.open_runtime("reactor")   # or "asyncio", "uvloop"
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 8000)
    runtime.run()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from weft.drivers._core.futures import Future
from weft.protocols.contract import TimerHandle, Transport

__all__ = ["Listener", "ProtocolFactory", "Runtime"]

#: Makes one protocol per connection.
ProtocolFactory = Callable[[], Any]


class Listener(Protocol):
    """A listening endpoint."""

    @property
    def addresses(self) -> list[Any]:
        """What it is bound to: ``(host, port, ...)`` tuples, or paths."""
        ...

    @property
    def connections(self) -> set[Any]:
        """The transports of the connections accepted and still open."""
        ...

    def close(self) -> None:
        """Stop accepting; open connections are left alone."""


class Runtime(Protocol):
    """A driver, ready to serve and connect."""

    #: The driver's name ("reactor", "asyncio", ...).
    name: str

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def call_soon(self, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` on the next turn."""
        ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds."""
        ...

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """:meth:`call_soon` from another thread or a signal handler."""
        ...

    def listen_tcp(
        self, factory: ProtocolFactory, host: str | None = "127.0.0.1", port: int = 0
    ) -> Listener:
        """Accept TCP connections; errors (port in use) raise ``OSError`` at once."""
        ...

    def listen_unix(self, factory: ProtocolFactory, path: str) -> Listener:
        """Accept connections on a UNIX-domain socket."""
        ...

    def connect_tcp(
        self, factory: ProtocolFactory, host: str, port: int, *, timeout: float = 30.0
    ) -> Future[Transport]:
        """Connect; the future gets the transport, or the error."""
        ...

    def connect_unix(
        self, factory: ProtocolFactory, path: str, *, timeout: float = 30.0
    ) -> Future[Transport]:
        """Connect to a UNIX-domain socket."""
        ...

    def connect_pipes(
        self, factory: ProtocolFactory, read_fd: int, write_fd: int, *, close_fds: bool = True
    ) -> Transport:
        """Run a protocol over two file descriptors (stdio, pipes)."""
        ...

    def add_signal_handler(self, signum: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop when the signal arrives (main thread only)."""

    def run(self) -> None:
        """Run until :meth:`stop`."""

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds or ``timeout`` passes; whether it held."""
        ...

    def stop(self) -> None:
        """Make :meth:`run` return."""

    def close(self) -> None:
        """Release everything (not while running)."""
