"""What a driver offers, one capability at a time, so that programs pick a driver with one argument.

A *runtime* is a running driver: the reactor, asyncio (or uvloop) through
weft's adapter, the blocking driver, and later drivers.  What a runtime can
do is split into small *capability* protocols, as Twisted splits its reactor
into ``IReactorTCP``, ``IReactorProcess`` and friends:

* :class:`LoopRuntime`: running (``run``, ``run_until``, ``stop``,
  ``close``) and its clock (``now``, ``call_soon``, ``call_later``); every
  runtime offers it, the testing kit's ``MemoryRuntime`` too;
* :class:`ThreadsRuntime`: ``call_soon_threadsafe``, from another thread or
  a signal handler;
* :class:`TCPRuntime`: ``listen_tcp``, ``connect_tcp``;
* :class:`UNIXRuntime`: ``listen_unix``, ``connect_unix``;
* :class:`PipesRuntime`: ``connect_pipes``, a protocol over two file descriptors;
* :class:`DatagramRuntime`: ``open_udp``, ``open_unix_datagram``, datagram
  endpoints (https://github.com/weft-project/weft/blob/main/docs/datagrams.md);
* :class:`SignalsRuntime`: ``add_signal_handler``, ``remove_signal_handler``;
* :class:`ProcessRuntime`: ``spawn_process``, a child process with a protocol
  on its stdio.

:class:`Runtime` is what every operating-system driver offers: all of them
but :class:`ProcessRuntime`, which the reactor, the coroutine driver, the
blocking driver and the Twisted driver offer and asyncio's adapter does not (yet).  Code that needs
one capability takes that protocol as its type (``open_tcp(runtime:
TCPRuntime, ...)``), so that mypy says which runtimes it can run on; every
capability protocol is ``runtime_checkable``, so code handed a runtime can
also ask (``isinstance(runtime, ProcessRuntime)``) and raise
:class:`CapabilityError` with a useful message.  :data:`CAPABILITIES` lists
them all.  The command line, :func:`weft.drivers.serve` and the examples use
only these protocols, so each runs on any driver::

    runtime = weft.drivers.open_runtime("reactor")   # or "asyncio", "uvloop"
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 8000)
    runtime.run()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from weft.drivers._core.child_processes import Process, StderrOption
from weft.drivers._core.futures import Future
from weft.protocols.contract import DatagramTransport, TimerHandle, Transport
from weft.protocols.errors import WeftError

__all__ = [
    "CAPABILITIES",
    "CapabilityError",
    "DatagramRuntime",
    "Listener",
    "LoopRuntime",
    "PipesRuntime",
    "ProcessRuntime",
    "ProtocolFactory",
    "Runtime",
    "SignalsRuntime",
    "TCPRuntime",
    "ThreadsRuntime",
    "UNIXRuntime",
    "lacks",
]

#: Makes one protocol per connection.
ProtocolFactory = Callable[[], Any]


class CapabilityError(WeftError, NotImplementedError):
    """A runtime was asked for something it does not offer: a process on the
    asyncio driver, a pipe on the memory runtime (see :data:`CAPABILITIES`)."""


class Listener(Protocol):
    """A listening endpoint."""

    @property
    def addresses(self) -> list[Any]:
        """What it is bound to: ``(host, port, ...)`` tuples, or paths."""
        ...

    @property
    def port(self) -> int:
        """The TCP port (the real one when 0 was asked for); ``ArgumentError``
        for a listener on a path."""
        ...

    @property
    def connections(self) -> set[Any]:
        """The transports of the connections accepted and still open."""
        ...

    def close(self) -> None:
        """Stop accepting; open connections are left alone."""


@runtime_checkable
class LoopRuntime(Protocol):
    """A loop and its clock: what every runtime offers."""

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

    def run(self) -> None:
        """Run until :meth:`stop`."""

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds or ``timeout`` passes; whether it held."""
        ...

    def stop(self) -> None:
        """Make :meth:`run` return."""

    def close(self) -> None:
        """Release everything (not while running)."""


@runtime_checkable
class ThreadsRuntime(Protocol):
    """A runtime that other threads (and signal handlers) can hand work to."""

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """:meth:`LoopRuntime.call_soon` from another thread or a signal handler; wakes the loop."""
        ...


@runtime_checkable
class TCPRuntime(Protocol):
    """A runtime that listens and connects over TCP."""

    def listen_tcp(self, factory: ProtocolFactory, host: str | None = "127.0.0.1", port: int = 0) -> Listener:
        """Accept TCP connections; errors (port in use) raise ``OSError`` at once."""
        ...

    def connect_tcp(
        self, factory: ProtocolFactory, host: str, port: int, *, timeout: float = 30.0
    ) -> Future[Transport]:
        """Connect; the future gets the transport, or the error (``ConnectionRefusedError``,
        ``TimeoutError`` after ``timeout`` seconds)."""
        ...


@runtime_checkable
class UNIXRuntime(Protocol):
    """A runtime that listens and connects on UNIX-domain sockets."""

    def listen_unix(self, factory: ProtocolFactory, path: str) -> Listener:
        """Accept connections on a UNIX-domain socket."""
        ...

    def connect_unix(
        self, factory: ProtocolFactory, path: str, *, timeout: float = 30.0
    ) -> Future[Transport]:
        """Connect to a UNIX-domain socket; the future gets the transport, or the error.

        While the listener's accept backlog is full the connect waits for
        room, tried again 1 ms, 2 ms, 4 ms... up to 50 ms apart; if
        ``timeout`` passes first it fails with
        :class:`~weft.drivers.ListenerBacklogFullError` (a ``TimeoutError``
        naming the path).  Never a transport over a socket that is not
        connected.
        """
        ...


@runtime_checkable
class PipesRuntime(Protocol):
    """A runtime that runs a protocol over file descriptors (pipes, stdio)."""

    def connect_pipes(
        self, factory: ProtocolFactory, read_fd: int, write_fd: int, *, close_fds: bool = True
    ) -> Transport:
        """Run a protocol over two file descriptors (stdio, pipes)."""
        ...


@runtime_checkable
class DatagramRuntime(Protocol):
    """A runtime with datagram endpoints: UDP over IPv4 and IPv6, and UNIX datagram sockets.

    Both methods return a :class:`~weft.drivers.Future` that gets the
    transport once the protocol has had ``connection_made`` (or the error:
    ``OSError`` such as ``EADDRINUSE``, ``socket.gaierror`` for a name
    that does not resolve, or what the factory raised); bad arguments
    raise at once.  See https://github.com/weft-project/weft/blob/main/docs/datagrams.md.
    """

    def open_udp(
        self,
        factory: ProtocolFactory,
        local_address: tuple[Any, ...] | None = None,
        remote_address: tuple[Any, ...] | None = None,
        *,
        family: int = 0,
        reuse_port: bool = False,
        allow_broadcast: bool = False,
    ) -> Future[DatagramTransport]:
        """A UDP endpoint bound to ``local_address`` (``(host, port)``; port 0:
        a free one) and connected to ``remote_address`` (then ``sendto``
        needs no address, only that peer is heard, and ICMP errors reach
        ``error_received``); ``family`` when neither says.  The future's
        transport is a :class:`~weft.protocols.contract.DatagramTransport`."""
        ...

    def open_unix_datagram(
        self,
        factory: ProtocolFactory,
        local_path: str | bytes | os.PathLike[str] | None = None,
        remote_path: str | bytes | os.PathLike[str] | None = None,
    ) -> Future[DatagramTransport]:
        """A UNIX datagram endpoint bound to ``local_path`` and connected to
        ``remote_path`` (either may be ``None``)."""
        ...


@runtime_checkable
class SignalsRuntime(Protocol):
    """A runtime that runs a callback in its loop when a signal arrives."""

    def add_signal_handler(self, signum: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop when the signal arrives (main thread only)."""

    def remove_signal_handler(self, signum: int) -> bool:
        """Restore the handler that was there before; whether there was one of ours."""
        ...


@runtime_checkable
class ProcessRuntime(Protocol):
    """A runtime that starts child processes, with a protocol on their stdio."""

    def spawn_process(
        self,
        factory: ProtocolFactory,
        args: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stderr: StderrOption = None,
        pty: bool = False,
    ) -> Process:
        """Start ``args`` (a program and its arguments; no shell) with a protocol on its
        stdin and stdout, or on a PTY.

        ``env`` replaces the environment (None: this one's); ``cwd`` is where
        it starts.  ``stderr`` is a :class:`~weft.drivers.Stderr` choice, or
        a protocol factory whose protocol reads it through a read-only
        transport.  The :class:`~weft.drivers.Process` gives the exit status
        and sends signals.  A program that cannot be started raises here
        (``FileNotFoundError``, ``PermissionError``), with nothing left open.
        See https://github.com/weft-project/weft/blob/main/docs/processes.md.
        """
        ...


@runtime_checkable
class Runtime(
    LoopRuntime,
    ThreadsRuntime,
    TCPRuntime,
    UNIXRuntime,
    PipesRuntime,
    DatagramRuntime,
    SignalsRuntime,
    Protocol,
):
    """What every operating-system driver offers: a loop, threads, TCP, UNIX
    sockets, pipes, datagrams and signals (processes: :class:`ProcessRuntime`,
    on some)."""


#: Every capability protocol, in the order the docs' table lists them.
CAPABILITIES: tuple[type, ...] = (
    LoopRuntime,
    ThreadsRuntime,
    TCPRuntime,
    UNIXRuntime,
    PipesRuntime,
    DatagramRuntime,
    SignalsRuntime,
    ProcessRuntime,
)


def lacks(runtime: object, capability: type, doing: str) -> CapabilityError:
    """The error for ``runtime`` asked to do ``doing`` without ``capability``
    (raise it): ``the 'memory' runtime cannot serve pipes (it is no PipesRuntime)``."""
    name = getattr(runtime, "name", type(runtime).__name__)
    return CapabilityError(
        f"the {name!r} runtime cannot {doing} (it is no {capability.__name__}); "
        "see the capability table in https://github.com/weft-project/weft/blob/main/docs/drivers.md"
    )
