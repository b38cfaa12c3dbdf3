"""The blocking driver in the conformance suite: TCP, UNIX-domain sockets, and
``connect_pipes`` over two ``os.pipe()`` pairs or a socketpair end as both
descriptors (as inetd hands a server its stdio).

The test's thread is the runtime's scheduler thread (it runs ``run_until``),
so the suite calls transports from the thread protocol code runs on, as it
does on every driver; the reader and writer threads move the bytes meanwhile.
Every check of the suite applies to this driver; none is skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from tests.conformance.harness import DriverHarness, RuntimePair, _ErrorLog, _made
from weft.drivers.blocking import BlockingRuntime, ThreadedTransport


class BlockingHarness:
    """A blocking runtime per pair."""

    def __init__(self, family: str) -> None:
        self.name = f"blocking-{family}"
        self.family = family
        self.pairs: list[RuntimePair] = []
        self.errors: list[BaseException] = []
        self.log = _ErrorLog(self.errors)
        logging.getLogger("weft").addHandler(self.log)
        self.directory = tempfile.TemporaryDirectory(prefix="weft-conformance-")

    def connect(self, client: Any, server: Any) -> RuntimePair:
        """Listen (or make descriptors), connect, run until both have connection_made."""
        runtime = BlockingRuntime()
        pair = RuntimePair(runtime, client, server, self.errors)
        self.pairs.append(pair)
        if self.family.startswith("pipes"):
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
            pair.run_until(lambda: _made(client) and _made(server))
            return pair
        if self.family == "tcp":
            listener = runtime.listen_tcp(lambda: server, "127.0.0.1", 0)
            connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
        else:
            path = os.path.join(self.directory.name, f"s{len(self.pairs)}")
            listener = runtime.listen_unix(lambda: server, path)
            connecting = runtime.connect_unix(lambda: client, path)
        pair.run_until(lambda: connecting.done() and _made(server))
        connecting.result()
        listener.close()
        return pair

    def close(self) -> None:
        """Abort what a test left open, let it end, close the runtimes."""
        logging.getLogger("weft").removeHandler(self.log)
        for pair in self.pairs:
            transports: list[ThreadedTransport] = [
                protocol.transport
                for protocol in (pair.client, pair.server)
                if isinstance(getattr(protocol, "transport", None), ThreadedTransport)
            ]
            for transport in transports:
                transport.abort()
            pair.runtime.run_until(lambda: not pair.runtime.connections, 5)  # noqa: B023
            pair.runtime.close()
        self.directory.cleanup()


HARNESSES: dict[str, Callable[[], DriverHarness]] = {
    "blocking-tcp": lambda: BlockingHarness("tcp"),
    "blocking-unix": lambda: BlockingHarness("unix"),
    "blocking-pipes": lambda: BlockingHarness("pipes"),
    "blocking-pipes-socketpair": lambda: BlockingHarness("pipes-socketpair"),
}
