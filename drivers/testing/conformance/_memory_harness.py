"""The memory driver as a harness: two protocols through a pump, on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from weft.drivers.testing._fake_clock import FakeClock
from weft.drivers.testing._memory import End, Pump, connect_pair

__all__ = ["MemoryHarness", "MemoryPair"]

#: Pump steps one run_until may take while data still moves (two protocols
#: that answer each other for ever would otherwise never return).
_MAX_STEPS = 1_000_000


class MemoryPair:
    """A :func:`~weft.drivers.testing.connect_pair` pump, run the way the suite wants.

    ``run_until`` moves bytes both ways while any move, and moves the fake
    clock to its next timer when none do; ``timeout`` is in fake seconds.
    The memory driver raises a protocol callback's exception to its caller
    (after ending that connection); the pair records it in
    ``callback_errors`` and goes on, as a real driver logs and goes on.
    """

    def __init__(self, client: Any, server: Any) -> None:
        self.clock = FakeClock()
        self.callback_errors: list[BaseException] = []
        self.pump: Pump = self._guard(lambda: connect_pair(client, server, clock=self.clock))  # type: ignore[assignment]

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Pump both ways, and move the fake clock when nothing else moves."""
        start = self.clock.now()
        for _ in range(_MAX_STEPS):
            if condition():
                return True
            moved = self._step("client") | self._step("server")
            if moved:
                continue
            deadline = self.clock.next_deadline()
            if deadline is None or deadline - start > timeout:
                # A step may have run a due callback that moved no bytes
                # (a resume_reading's delivery of held data): look once more.
                return condition()
            self._guard(self.clock.advance_to_next)
        return condition()

    def close(self) -> None:
        """Nothing to release: the pump is garbage once the protocols are gone."""

    def _step(self, end: End) -> bool:
        return bool(self._guard(lambda: self.pump.deliver(end)))

    def _guard(self, step: Callable[[], object]) -> object:
        try:
            return step()
        except Exception as exc:
            self.callback_errors.append(exc)
            return True


class MemoryHarness:
    """The memory driver (``weft.drivers.testing``) as a harness; every check passes on it."""

    name = "memory"

    def connect(self, client: Any, server: Any) -> MemoryPair:
        """Two protocols back to back through a new pump on a new fake clock."""
        return MemoryPair(client, server)
