"""weft's drivers: the runtimes that move bytes between protocols and the world.

Drivers import protocols, never the other way round.  Each driver hands out
transports that conform to :mod:`weft.protocols.contract`; applications
never build one themselves.

This package is the interface every driver shares:

* :class:`Runtime`: what a running driver offers (listen, connect, pipes,
  processes, timers); :func:`open_runtime` gives one by name, from
  :data:`DRIVERS`, the registry of every driver.
* :func:`serve` serves a protocol on any driver until SIGINT or SIGTERM,
  then stops gracefully (:class:`Server` is the same, without the signals).
* :class:`Future`, the one kind of future callbacks and coroutines share;
  :class:`FileSlice`, a part of a file for ``write_file``; :class:`Process`,
  a child process started by ``spawn_process`` on any driver.

The drivers, one package each:

* :mod:`weft.drivers.reactor`: the callback reactor, the default driver.
* :mod:`weft.drivers.asyncio`: asyncio's loop, or uvloop's.
* :mod:`weft.drivers.coroutine`: the reactor with a task per connection;
  :mod:`weft.drivers.coroutines` is the coroutine library for any driver.
* :mod:`weft.drivers.blocking`: threads and blocking sockets.
* :mod:`weft.drivers.testing`: in memory, for tests, with a fake clock and a
  stepped pump (``docs/testing.md``).
"""

from weft.drivers._core.child_processes import Process, Stderr
from weft.drivers._core.file_region import FileSlice
from weft.drivers._core.futures import Future
from weft.drivers._registry import DRIVERS, DriverInfo, UnavailableDriverError, open_runtime
from weft.drivers._runtime import Listener, ProtocolFactory, Runtime
from weft.drivers._serving import Server, serve

__all__ = [
    "DRIVERS",
    "DriverInfo",
    "FileSlice",
    "Future",
    "Listener",
    "Process",
    "ProtocolFactory",
    "Runtime",
    "Server",
    "Stderr",
    "UnavailableDriverError",
    "open_runtime",
    "serve",
]
