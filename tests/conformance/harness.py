"""What the conformance suite needs from a driver, and the memory driver's answer.

Each driver under test supplies a :class:`DriverHarness`: it connects two
protocols through the driver's own transports and runs the driver until a
condition holds.  The suite then checks, the same way for every driver, what
the contract promises.  A driver joins the suite by adding a harness to
``HARNESSES``.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from weft.drivers.reactor import Reactor
from weft.drivers.testing import FakeClock, Pump, RecordingProtocol, connect_pair

End = Literal["client", "server"]


class StuckError(AssertionError):
    """The condition a test waited for can no longer come true (or timed out)."""


class ConnectedPair(Protocol):
    """Two protocols connected through one driver."""

    client: Any
    server: Any
    #: Exceptions that protocol callbacks raised while the driver ran.
    callback_errors: list[BaseException]

    def run_until(self, condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Run the driver until ``condition()`` holds; raise StuckError if it cannot."""

    def reset_from(self, end: End) -> None:
        """``end`` drops the connection abruptly (an abort, a crash): its peer's
        writes must then fail with a ConnectionError."""


class DriverHarness(Protocol):
    """Makes connected pairs on one driver."""

    name: str

    def connect(self, client: Any, server: Any) -> ConnectedPair:
        """Connect ``client`` and ``server`` and run until both have ``connection_made``."""
        ...

    def close(self) -> None:
        """Release whatever the pairs made hold (event loops, descriptors)."""


# ----------------------------------------------------------------- memory


class MemoryPair:
    """A memory pump, run the way the suite wants."""

    def __init__(self, client: Any, server: Any) -> None:
        self.client = client
        self.server = server
        self.clock = FakeClock()
        self.callback_errors: list[BaseException] = []
        self.pump: Pump = connect_pair(client, server, clock=self.clock)

    def run_until(self, condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Pump both ways, and move the fake clock when nothing else moves."""
        start = self.clock.now()
        while not condition():
            moved = self._step("client") | self._step("server")
            if moved:
                continue
            deadline = self.clock.next_deadline()
            if deadline is None or deadline - start > timeout:
                raise StuckError("nothing more can happen, and the condition is still false")
            self._guard(self.clock.advance_to_next)

    def reset_from(self, end: End) -> None:
        """Aborting a memory transport resets its peer."""
        self.pump.transport(end).abort()

    def _step(self, end: End) -> bool:
        return bool(self._guard(lambda: self.pump.deliver(end)))

    def _guard(self, step: Callable[[], object]) -> object:
        # The memory driver re-raises protocol errors to the test after
        # ending the connection; real drivers log them.  Record them alike.
        try:
            return step()
        except Exception as exc:
            self.callback_errors.append(exc)
            return True


class MemoryHarness:
    """The memory driver, first member of the suite."""

    name = "memory"

    def connect(self, client: Any, server: Any) -> MemoryPair:
        """A pump between the two."""
        pair = MemoryPair(client, server)
        pair.run_until(lambda: _made(client) and _made(server))
        return pair

    def close(self) -> None:
        """Nothing to release."""


# ---------------------------------------------------------------- reactor


class _ErrorLog(logging.Handler):
    """Collects the exceptions a driver logs (it logs, rather than raises, them)."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(record.exc_info[1])


class _Runs(Protocol):
    """What a pair needs of a runtime: the reactor's, asyncio's or the blocking driver's run_until."""

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds or ``timeout`` passes; whether it holds."""
        ...


class RuntimePair:
    """Two protocols over real connections on one runtime (any OS driver's)."""

    def __init__(self, runtime: Any, client: Any, server: Any, errors: list[BaseException]) -> None:
        self.runtime = runtime
        self.client = client
        self.server = server
        self.callback_errors = errors

    def run_until(self, condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Run the runtime until the condition holds, or fail after ``timeout`` seconds."""
        runs: _Runs = self.runtime
        if not runs.run_until(condition, timeout):
            raise StuckError(f"the condition was still false after {timeout} s")

    def reset_from(self, end: End) -> None:
        """Abort: a TCP peer gets a reset, a pipe or UNIX-socket peer EPIPE when it writes."""
        protocol = self.client if end == "client" else self.server
        protocol.transport.abort()


class ReactorHarness:
    """The reactor (or a runtime built on it), over TCP or UNIX-domain sockets."""

    def __init__(self, family: str, runtime_class: type[Reactor] = Reactor) -> None:
        self.name = f"{runtime_class.name}-{family}"
        self.family = family
        self.runtime_class = runtime_class
        self.pairs: list[RuntimePair] = []
        self.errors: list[BaseException] = []
        self.log = _ErrorLog(self.errors)
        logging.getLogger("weft").addHandler(self.log)
        self.directory = tempfile.TemporaryDirectory(prefix="weft-conformance-")

    def connect(self, client: Any, server: Any) -> RuntimePair:
        """Listen, connect, and run until both sides have connection_made."""
        reactor = self.runtime_class()
        if self.family == "tcp":
            listener = reactor.listen_tcp(lambda: server, "127.0.0.1", 0)
            connecting = reactor.connect_tcp(lambda: client, "127.0.0.1", listener.addresses[0][1])
        else:
            path = os.path.join(self.directory.name, f"s{len(self.pairs)}")
            listener = reactor.listen_unix(lambda: server, path)
            connecting = reactor.connect_unix(lambda: client, path)
        pair = RuntimePair(reactor, client, server, self.errors)
        self.pairs.append(pair)
        pair.run_until(lambda: connecting.done() and _made(server))
        connecting.result()
        listener.close()
        return pair

    def close(self) -> None:
        """Abort what a test left open, let it end, close the reactors."""
        logging.getLogger("weft").removeHandler(self.log)
        for pair in self.pairs:
            _abort_and_close(pair)
        self.directory.cleanup()


def _made(protocol: Any) -> bool:
    return not isinstance(protocol, RecordingProtocol) or protocol.made


def _abort_and_close(pair: RuntimePair) -> None:
    """Abort both ends, run until their connection_lost has run, close the reactor."""
    reactor: Reactor = pair.runtime
    transports = [
        protocol.transport for protocol in (pair.client, pair.server) if hasattr(protocol, "transport")
    ]
    for transport in transports:
        transport.abort()
    reactor.run_until(lambda: all(t._lost for t in transports) and not reactor._ready, 5)
    reactor.close()


HARNESSES: dict[str, Callable[[], DriverHarness]] = {
    "memory": MemoryHarness,
    "reactor-tcp": lambda: ReactorHarness("tcp"),
    "reactor-unix": lambda: ReactorHarness("unix"),
}


def _discover() -> None:
    """Add the harnesses of every ``harness_*.py`` module beside this one.

    A driver joins the suite by adding such a module with its own
    ``HARNESSES`` dict; nothing here needs editing.
    """
    package = Path(__file__).parent
    for path in sorted(package.glob("harness_*.py")):
        module = importlib.import_module(f"tests.conformance.{path.stem}")
        HARNESSES.update(module.HARNESSES)


_discover()


class FlowRecorder(RecordingProtocol):
    """Records, besides every call, the write buffer size at each flow-control call."""

    def __init__(self, *, keep_open_on_eof: bool = False) -> None:
        super().__init__(keep_open_on_eof=keep_open_on_eof)
        self.buffer_at_pause: list[int] = []
        self.buffer_at_resume: list[int] = []

    def pause_writing(self) -> None:
        self.buffer_at_pause.append(self.transport.get_write_buffer_size())
        super().pause_writing()

    def resume_writing(self) -> None:
        self.buffer_at_resume.append(self.transport.get_write_buffer_size())
        super().resume_writing()
