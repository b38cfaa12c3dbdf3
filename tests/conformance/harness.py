"""What the conformance suite needs from a driver, and the memory driver's answer.

Each driver under test supplies a :class:`DriverHarness`: it connects two
protocols through the driver's own transports and runs the driver until a
condition holds.  The suite then checks, the same way for every driver, what
the contract promises.  A driver joins the suite by adding a harness to
``HARNESSES``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from weft.drivers.fake_clock import FakeClock
from weft.drivers.memory import Pump, connect_pair
from weft.drivers.testing import RecordingProtocol

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
        """``end`` resets the connection: its peer must see a ConnectionError."""


class DriverHarness(Protocol):
    """Makes connected pairs on one driver."""

    name: str

    def connect(self, client: Any, server: Any) -> ConnectedPair:
        """Connect ``client`` and ``server`` and run until both have ``connection_made``."""
        ...


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


def _made(protocol: Any) -> bool:
    return not isinstance(protocol, RecordingProtocol) or protocol.made


HARNESSES: dict[str, Callable[[], DriverHarness]] = {"memory": MemoryHarness}
