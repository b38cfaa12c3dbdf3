"""What the datagram checks need of an implementation: a bench, and a harness that makes benches.

A datagram endpoint has no partner made with it, as a stream's connection
has, so the datagram checks open their endpoints themselves, with
``open_udp`` and ``open_unix_datagram``: what they need is a *bench*, a
fresh loop that offers those two (a :class:`~weft.drivers.DatagramRuntime`),
runs until something has happened, reports the exceptions protocol
callbacks raised, and says where a UNIX socket may be made.
:class:`DatagramRuntimeHarness` makes one for any weft runtime, the memory
driver's included, so a new driver needs no harness of its own.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from weft.drivers._core.futures import Future
from weft.drivers._registry import DRIVERS
from weft.drivers.testing._memory_runtime import MemoryRuntime
from weft.drivers.testing.conformance._runtime_harness import _ErrorLog
from weft.protocols.contract import DatagramTransport
from weft.protocols.errors import ArgumentError

__all__ = ["DatagramBench", "DatagramHarness", "DatagramRuntimeHarness", "RuntimeBench"]


@runtime_checkable
class DatagramBench(Protocol):
    """A loop with datagram endpoints, for one check."""

    def open_udp(
        self,
        factory: Callable[[], Any],
        local_address: tuple[Any, ...] | None = None,
        remote_address: tuple[Any, ...] | None = None,
        *,
        family: int = 0,
    ) -> Future[DatagramTransport]:
        """A UDP endpoint, as :meth:`weft.drivers.DatagramRuntime.open_udp`."""
        ...

    def open_unix_datagram(
        self, factory: Callable[[], Any], local_path: str | None = None, remote_path: str | None = None
    ) -> Future[DatagramTransport]:
        """A UNIX datagram endpoint, as :meth:`weft.drivers.DatagramRuntime.open_unix_datagram`."""
        ...

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Run until ``condition()`` holds (True) or ``timeout`` seconds of the
        loop's time pass (False), as :meth:`ConnectedPair.run_until`."""
        ...

    @property
    def callback_errors(self) -> Sequence[BaseException]:
        """The exceptions from protocol callbacks the driver reported so far."""
        ...

    @property
    def has_ipv6(self) -> bool:
        """Whether IPv6 loopback (``::1``) can be used here."""
        ...

    def unix_path(self, name: str) -> str:
        """A path where a UNIX datagram socket called ``name`` may be made."""
        ...

    def close(self) -> None:
        """Release the loop (every endpoint has ended first)."""


@runtime_checkable
class DatagramHarness(Protocol):
    """Makes benches: the datagram checks' one requirement."""

    #: What the reports call it.
    name: str

    def open(self) -> DatagramBench:
        """A fresh bench for one check."""
        ...


class RuntimeBench:
    """A weft runtime as a bench.  A memory runtime's callback errors (which
    it raises to its caller) are recorded and the run goes on; other
    runtimes' are those logged on the ``weft`` logger."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.callback_errors: list[BaseException] = []
        self._memory = isinstance(runtime, MemoryRuntime)
        self._directory: str | None = None
        self._log = _ErrorLog(self.callback_errors)
        logging.getLogger("weft").addHandler(self._log)

    def open_udp(
        self,
        factory: Callable[[], Any],
        local_address: tuple[Any, ...] | None = None,
        remote_address: tuple[Any, ...] | None = None,
        *,
        family: int = 0,
    ) -> Future[DatagramTransport]:
        """The runtime's own."""
        opened: Future[DatagramTransport] = self.runtime.open_udp(
            factory, local_address, remote_address, family=family
        )
        return opened

    def open_unix_datagram(
        self, factory: Callable[[], Any], local_path: str | None = None, remote_path: str | None = None
    ) -> Future[DatagramTransport]:
        """The runtime's own."""
        opened: Future[DatagramTransport] = self.runtime.open_unix_datagram(factory, local_path, remote_path)
        return opened

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """The runtime's own; on the memory runtime, past the errors it raises."""
        if not self._memory:
            return bool(self.runtime.run_until(condition, timeout))
        clock = self.runtime.clock
        until = clock.now() + timeout
        while True:
            try:
                return bool(self.runtime.run_until(condition, max(until - clock.now(), 0.0)))
            except Exception as exc:  # a protocol's, raised by the memory driver
                self.callback_errors.append(exc)

    @property
    def has_ipv6(self) -> bool:
        """Always on the memory network; elsewhere, if ``::1`` can be bound."""
        if self._memory:
            return True
        if not socket.has_ipv6:
            return False
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
                probe.bind(("::1", 0))
        except OSError:
            return False
        return True

    def unix_path(self, name: str) -> str:
        """A path in a temporary directory of the bench's own (on the memory network, any path)."""
        if self._memory:
            return f"/memory/{name}"
        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="weft-datagrams-")
        return os.path.join(self._directory, name)

    def close(self) -> None:
        """Close the runtime, remove the directory."""
        logging.getLogger("weft").removeHandler(self._log)
        try:
            self.runtime.close()
        finally:
            if self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)


class DatagramRuntimeHarness:
    """Benches on a new runtime each.

    ``driver`` is a driver's name in the registry (``"reactor"``,
    ``"asyncio"``, ...), ``"memory"`` for the testing kit's
    :class:`~weft.drivers.testing.MemoryRuntime`, or a function that makes
    a runtime offering :class:`~weft.drivers.DatagramRuntime`.
    """

    def __init__(self, driver: str | Callable[[], Any], *, name: str | None = None) -> None:
        if driver == "memory":
            self.open_runtime: Callable[[], Any] = MemoryRuntime
        elif isinstance(driver, str):
            info = DRIVERS.get(driver)
            if info is None:
                raise ArgumentError(f"no driver called {driver!r}; choose from memory, {', '.join(DRIVERS)}")
            self.open_runtime = info.open
        else:
            self.open_runtime = driver
        self.name = name or (f"{driver}-datagrams" if isinstance(driver, str) else "runtime-datagrams")

    def open(self) -> RuntimeBench:
        """A new runtime, as a bench."""
        return RuntimeBench(self.open_runtime())
