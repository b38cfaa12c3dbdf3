"""Any weft runtime as a harness, over TCP, UNIX-domain sockets, pipes or a socketpair.

Every weft driver's runtime (the reactor, asyncio or uvloop through weft's
adapter, the coroutine driver, the blocking driver, and the drivers still
to come) offers the same ``listen_*``/``connect_*``/``connect_pipes`` and
``run_until``, so one harness runs the suite on any of them: a new driver
needs no harness of its own.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from weft.drivers._registry import DRIVERS
from weft.drivers._runtime import Listener, Runtime
from weft.protocols.errors import ArgumentError

__all__ = ["CARRIERS", "RuntimeHarness", "RuntimePair"]

#: What a :class:`RuntimeHarness` can connect its pairs over.
CARRIERS = ("tcp", "unix", "pipes", "socketpair")

#: How long connecting may take, in seconds.
CONNECT_TIMEOUT = 10.0


class _ErrorLog(logging.Handler):
    """Collects the exceptions logged on the ``weft`` logger: how drivers report callback errors."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


class RuntimePair:
    """Two protocols over real connections on a runtime of their own."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.listener: Listener | None = None
        self.directory: str | None = None
        self.callback_errors: list[BaseException] = []
        self._log = _ErrorLog(self.callback_errors)
        logging.getLogger("weft").addHandler(self._log)

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """The runtime's own run_until."""
        return self.runtime.run_until(condition, timeout)

    def close(self) -> None:
        """Stop listening, close the runtime, remove the socket's directory."""
        logging.getLogger("weft").removeHandler(self._log)
        try:
            if self.listener is not None:
                self.listener.close()
            self.runtime.close()
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)


class RuntimeHarness:
    """Pairs connected through a new runtime each.

    ``driver`` is a driver's name in the registry (``"reactor"``,
    ``"asyncio"``, ... as :func:`weft.drivers.open_runtime` takes it), or a
    function that makes a runtime.  ``carrier`` is one of :data:`CARRIERS`: ``"tcp"`` (loopback),
    ``"unix"`` (a UNIX-domain socket in a temporary directory), ``"pipes"``
    (``connect_pipes`` over two ``os.pipe()`` pairs, one each way), or
    ``"socketpair"`` (``connect_pipes`` with one end of a socketpair as both
    descriptors, as inetd hands a server its stdin and stdout).  The
    exceptions a pair reports are those logged on the ``weft`` logger while
    it is open.
    """

    def __init__(
        self, driver: str | Callable[[], Runtime], carrier: str = "tcp", *, name: str | None = None
    ) -> None:
        if carrier not in CARRIERS:
            raise ArgumentError(f"no carrier called {carrier!r}; choose from {', '.join(CARRIERS)}")
        if isinstance(driver, str):
            info = DRIVERS.get(driver)
            if info is None:
                raise ArgumentError(f"no driver called {driver!r}; choose from {', '.join(DRIVERS)}")
            self.open_runtime: Callable[[], Runtime] = info.open
        else:
            self.open_runtime = driver
        self.carrier = carrier
        self.name = name or f"{driver if isinstance(driver, str) else 'runtime'}-{carrier}"

    def connect(self, client: Any, server: Any) -> RuntimePair:
        """A new runtime, and ``client`` connected to ``server`` through it."""
        pair = RuntimePair(self.open_runtime())
        try:
            self._connect(pair, client, server)
        except BaseException:
            pair.close()
            raise
        return pair

    def _connect(self, pair: RuntimePair, client: Any, server: Any) -> None:
        runtime = pair.runtime
        if self.carrier in ("pipes", "socketpair"):
            client_fds, server_fds = _descriptors(self.carrier)
            runtime.connect_pipes(lambda: server, *server_fds)
            runtime.connect_pipes(lambda: client, *client_fds)
            return
        if self.carrier == "tcp":
            pair.listener = runtime.listen_tcp(lambda: server, "127.0.0.1", 0)
            connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", pair.listener.addresses[0][1])
        else:
            pair.directory = tempfile.mkdtemp(prefix="weft-conformance-")
            path = os.path.join(pair.directory, "socket")
            pair.listener = runtime.listen_unix(lambda: server, path)
            connecting = runtime.connect_unix(lambda: client, path)
        if not runtime.run_until(connecting.done, CONNECT_TIMEOUT):
            raise TimeoutError(f"connecting over {self.carrier} did not finish in {CONNECT_TIMEOUT:g} s")
        connecting.result()


def _descriptors(carrier: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """(read, write) descriptors for the client and for the server."""
    if carrier == "pipes":
        to_server_read, to_server_write = os.pipe()
        to_client_read, to_client_write = os.pipe()
        return (to_client_read, to_server_write), (to_server_read, to_client_write)
    client_end, server_end = socket.socketpair()
    client_fd, server_fd = client_end.detach(), server_end.detach()
    return (client_fd, client_fd), (server_fd, server_fd)
