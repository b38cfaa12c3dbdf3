"""Write flow control: when to tell a protocol to pause and resume writing.

Shared by every weft transport (the drivers' and the TLS layer's) so that they all agree, and agree with
asyncio: ``pause_writing`` once the buffer goes strictly over the high-water
mark, ``resume_writing`` once it is back at or under the low-water mark, each
exactly once per crossing.  Every path that adds to a buffer (``write``,
``writelines``, a TLS layer's records) must report it here: asyncio once
forgot ``writelines`` (gh-127655) and let a peer that never reads exhaust
memory.
"""

from __future__ import annotations

from weft.protocols.errors import ArgumentError

__all__ = ["DEFAULT_HIGH_WATER", "WriteFlowControl"]

#: asyncio's default high-water mark; the low-water mark defaults to a quarter.
DEFAULT_HIGH_WATER = 64 * 1024


class WriteFlowControl:
    """Water marks and whether the protocol is currently paused."""

    __slots__ = ("high", "low", "paused")

    def __init__(self, high: int | None = None, low: int | None = None) -> None:
        self.high = DEFAULT_HIGH_WATER
        self.low = DEFAULT_HIGH_WATER // 4
        #: Whether ``pause_writing`` was sent and ``resume_writing`` not yet.
        self.paused = False
        self.set_limits(high, low)

    def set_limits(self, high: int | None = None, low: int | None = None) -> None:
        """asyncio's rules: ``high`` defaults to 64 KiB, or ``4 * low`` when only
        ``low`` is given; ``low`` defaults to ``high // 4``; ``high >= low >= 0``."""
        if high is None:
            high = DEFAULT_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ArgumentError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self.high = high
        self.low = low

    def limits(self) -> tuple[int, int]:
        """``(low, high)``, asyncio's order."""
        return (self.low, self.high)

    def should_pause(self, buffered: int) -> bool:
        """Whether ``pause_writing`` is due now that ``buffered`` bytes wait."""
        if self.paused or buffered <= self.high:
            return False
        self.paused = True
        return True

    def should_resume(self, buffered: int) -> bool:
        """Whether ``resume_writing`` is due now that ``buffered`` bytes wait."""
        if not self.paused or buffered > self.low:
            return False
        self.paused = False
        return True
