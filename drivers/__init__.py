"""weft's drivers: the runtimes that move bytes between protocols and the world.

Drivers import protocols, never the other way round.  Each driver hands out
transports that conform to :mod:`weft.protocols.contract`; applications
never build one themselves.

This package is the interface every driver shares:

* :class:`Runtime`: what a running driver offers, made of capability
  protocols (:class:`LoopRuntime`, :class:`ThreadsRuntime`,
  :class:`TCPRuntime`, :class:`UNIXRuntime`, :class:`PipesRuntime`,
  :class:`DatagramRuntime`, :class:`SignalsRuntime`; :class:`ProcessRuntime` on the drivers that start
  processes), each listed in :data:`CAPABILITIES`; a runtime asked for one it
  lacks raises :class:`CapabilityError`.  :func:`open_runtime` gives a
  runtime by name, from :data:`DRIVERS`, the registry of every driver, which
  also says what each offers (the table:
  https://github.com/weft-project/weft/blob/main/docs/drivers.md).
* :func:`serve` serves a protocol on any driver until SIGINT, SIGTERM or SIGHUP,
  then stops gracefully (:class:`Server` is the same, without the signals);
  :func:`serve_datagrams` serves a datagram protocol on one UDP or UNIX
  datagram endpoint.
* :class:`ListenerBacklogFullError`, how ``connect_unix`` fails on every
  driver when the listener's accept backlog stays full until its timeout
  (https://github.com/weft-project/weft/blob/main/docs/drivers.md).
* :class:`Future`, the one kind of future callbacks and coroutines share;
  :class:`FileSlice`, a part of a file for ``write_file``; :class:`Process`,
  a child process started by ``spawn_process`` on any driver.

The drivers, one package each:

* :mod:`weft.drivers.reactor`: the callback reactor, the default driver.
* :mod:`weft.drivers.asyncio`: asyncio's loop, or uvloop's.
* :mod:`weft.drivers.coroutine`: the reactor with a task per connection;
  :mod:`weft.drivers.coroutines` is the coroutine library for any driver.
* :mod:`weft.drivers.blocking`: threads and blocking sockets.
* :mod:`weft.drivers.twisted`: a Twisted reactor (the ``twisted`` extra).
* :mod:`weft.drivers.testing`: in memory, for tests, with a fake clock and a
  stepped pump (https://github.com/weft-project/weft/blob/main/docs/testing.md).
"""

from weft.drivers._core.child_processes import Process, Stderr
from weft.drivers._core.file_region import FileSlice
from weft.drivers._core.futures import Future
from weft.drivers._core.unix_connecting import ListenerBacklogFullError
from weft.drivers._datagram_serving import serve_datagrams
from weft.drivers._registry import DRIVERS, DriverInfo, UnavailableDriverError, open_runtime
from weft.drivers._runtime import (
    CAPABILITIES,
    CapabilityError,
    DatagramRuntime,
    Listener,
    LoopRuntime,
    PipesRuntime,
    ProcessRuntime,
    ProtocolFactory,
    Runtime,
    SignalsRuntime,
    TCPRuntime,
    ThreadsRuntime,
    UNIXRuntime,
)
from weft.drivers._serving import Server, serve

__all__ = [
    "CAPABILITIES",
    "DRIVERS",
    "CapabilityError",
    "DatagramRuntime",
    "DriverInfo",
    "FileSlice",
    "Future",
    "Listener",
    "ListenerBacklogFullError",
    "LoopRuntime",
    "PipesRuntime",
    "Process",
    "ProcessRuntime",
    "ProtocolFactory",
    "Runtime",
    "Server",
    "SignalsRuntime",
    "Stderr",
    "TCPRuntime",
    "ThreadsRuntime",
    "UNIXRuntime",
    "UnavailableDriverError",
    "open_runtime",
    "serve",
    "serve_datagrams",
]
