"""The reactor's pipe transport in the conformance suite.

Two protocols talk through ``Reactor.connect_pipes``, the transport stdio,
subprocesses and ``weft ... --stdio`` use, over:

* ``reactor-pipes``: two ``os.pipe()`` pairs, one each way, so reads and
  writes are ``read()``/``write()`` and a half-close is closing the write end;
* ``reactor-pipes-socketpair``: each side gets one end of a
  ``socket.socketpair()`` as both its read and write fd, as a server started
  by inetd (or ``socat EXEC:``) finds its stdin and stdout: ``read()`` and
  ``write()`` on a socket, and a half-close that must be ``shutdown()``,
  since closing the fd would end reading too.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from tests.conformance.harness import DriverHarness, RuntimePair, _abort_and_close, _ErrorLog, _made
from weft.drivers.reactor import Reactor


class PipesHarness:
    """Pairs connected by ``connect_pipes`` over pipes or a socketpair."""

    def __init__(self, kind: str, runtime_class: type[Reactor] = Reactor) -> None:
        self.name = f"{runtime_class.name}-{kind}"
        self.kind = kind
        self.runtime_class = runtime_class
        self.pairs: list[RuntimePair] = []
        self.errors: list[BaseException] = []
        self.log = _ErrorLog(self.errors)
        logging.getLogger("weft").addHandler(self.log)

    def connect(self, client: Any, server: Any) -> RuntimePair:
        """Make the fds, hand each side its two, run until both have connection_made."""
        reactor = self.runtime_class()
        if self.kind == "pipes":
            to_server_read, to_server_write = os.pipe()
            to_client_read, to_client_write = os.pipe()
            client_fds = (to_client_read, to_server_write)
            server_fds = (to_server_read, to_client_write)
        else:
            client_end, server_end = socket.socketpair()
            client_fd, server_fd = client_end.detach(), server_end.detach()
            client_fds, server_fds = (client_fd, client_fd), (server_fd, server_fd)
        reactor.connect_pipes(lambda: server, *server_fds)
        reactor.connect_pipes(lambda: client, *client_fds)
        pair = RuntimePair(reactor, client, server, self.errors)
        self.pairs.append(pair)
        pair.run_until(lambda: _made(client) and _made(server))
        return pair

    def close(self) -> None:
        """Abort what a test left open, let it end, close the reactors."""
        logging.getLogger("weft").removeHandler(self.log)
        for pair in self.pairs:
            _abort_and_close(pair)


HARNESSES: dict[str, Callable[[], DriverHarness]] = {
    "reactor-pipes": lambda: PipesHarness("pipes"),
    "reactor-pipes-socketpair": lambda: PipesHarness("pipes-socketpair"),
}
