"""The asyncio driver in the conformance suite: asyncio's default loop and uvloop,
over TCP and UNIX-domain sockets, and over ``connect_pipes``: two
``os.pipe()`` pairs (asyncio's read and write pipe transports joined into one),
or a socketpair end as both descriptors, as inetd hands a server its stdio.

uvloop is in the ``dev`` extra, so it is installed wherever the suite runs;
where it is not, its harnesses skip, saying so, rather than vanish.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

from tests.conformance.harness import DriverHarness, RuntimePair, _ErrorLog, _made
from weft.drivers.asyncio import AsyncioRuntime, AsyncioTransport


class AsyncioHarness:
    """An asyncio runtime per pair, on asyncio's default loop or on uvloop."""

    def __init__(self, loop: str, family: str) -> None:
        if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            pytest.skip("uvloop is not installed (pip install 'weft[uvloop]')")
        self.name = f"{loop}-{family}"
        self.loop = loop
        self.family = family
        self.pairs: list[RuntimePair] = []
        self.errors: list[BaseException] = []
        self.log = _ErrorLog(self.errors)
        logging.getLogger("weft").addHandler(self.log)
        self.directory = tempfile.TemporaryDirectory(prefix="weft-conformance-")

    def connect(self, client: Any, server: Any) -> RuntimePair:
        """Listen, connect, and run until both sides have connection_made."""
        runtime = AsyncioRuntime.with_uvloop() if self.loop == "uvloop" else AsyncioRuntime()
        if self.family.startswith("pipes"):
            return self._connect_pipes(runtime, client, server)
        if self.family == "tcp":
            listener = runtime.listen_tcp(lambda: server, "127.0.0.1", 0)
            connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
        else:
            path = os.path.join(self.directory.name, f"s{len(self.pairs)}")
            listener = runtime.listen_unix(lambda: server, path)
            connecting = runtime.connect_unix(lambda: client, path)
        pair = RuntimePair(runtime, client, server, self.errors)
        self.pairs.append(pair)
        pair.run_until(lambda: connecting.done() and _made(server))
        connecting.result()
        listener.close()
        return pair

    def _connect_pipes(self, runtime: AsyncioRuntime, client: Any, server: Any) -> RuntimePair:
        if self.family == "pipes":
            to_server_read, to_server_write = os.pipe()
            to_client_read, to_client_write = os.pipe()
            client_fds = (to_client_read, to_server_write)
            server_fds = (to_server_read, to_client_write)
        else:
            client_end, server_end = socket.socketpair()
            client_fd, server_fd = client_end.detach(), server_end.detach()
            client_fds, server_fds = (client_fd, client_fd), (server_fd, server_fd)
        runtime.connect_pipes(lambda: server, *server_fds)
        runtime.connect_pipes(lambda: client, *client_fds)
        pair = RuntimePair(runtime, client, server, self.errors)
        self.pairs.append(pair)
        pair.run_until(lambda: _made(client) and _made(server))
        return pair

    def close(self) -> None:
        """Abort what a test left open, let it end, close the runtimes."""
        logging.getLogger("weft").removeHandler(self.log)
        for pair in self.pairs:
            transports: list[AsyncioTransport] = [
                protocol.transport
                for protocol in (pair.client, pair.server)
                if isinstance(getattr(protocol, "transport", None), AsyncioTransport)
            ]
            for transport in transports:
                transport.abort()
            pair.runtime.run_until(lambda: all(t._lost for t in transports), 5)  # noqa: B023
            pair.runtime.close()
        self.directory.cleanup()


HARNESSES: dict[str, Callable[[], DriverHarness]] = {
    "asyncio-tcp": lambda: AsyncioHarness("asyncio", "tcp"),
    "asyncio-unix": lambda: AsyncioHarness("asyncio", "unix"),
    "asyncio-pipes": lambda: AsyncioHarness("asyncio", "pipes"),
    "asyncio-pipes-socketpair": lambda: AsyncioHarness("asyncio", "pipes-socketpair"),
    "uvloop-tcp": lambda: AsyncioHarness("uvloop", "tcp"),
    "uvloop-unix": lambda: AsyncioHarness("uvloop", "unix"),
    "uvloop-pipes": lambda: AsyncioHarness("uvloop", "pipes"),
    "uvloop-pipes-socketpair": lambda: AsyncioHarness("uvloop", "pipes-socketpair"),
}
