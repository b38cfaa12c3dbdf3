"""Write flow control bookkeeping, shared by every transport."""

from __future__ import annotations

import pytest

from weft.protocols._flow_control import DEFAULT_HIGH_WATER, WriteFlowControl
from weft.protocols.errors import ArgumentError


def test_pause_only_strictly_over_high_and_once() -> None:
    """pause is due when the buffer goes strictly over the high-water mark, and
    only once until a resume."""
    flow = WriteFlowControl(high=100, low=20)
    assert not flow.should_pause(100)
    assert flow.should_pause(101)
    assert flow.paused
    assert not flow.should_pause(500)


def test_resume_at_or_under_low_and_once() -> None:
    """resume is due when the buffer is back at or under the low-water mark, only
    after a pause, and only once."""
    flow = WriteFlowControl(high=100, low=20)
    assert not flow.should_resume(0)
    flow.should_pause(101)
    assert not flow.should_resume(21)
    assert flow.should_resume(20)
    assert not flow.paused
    assert not flow.should_resume(0)


def test_defaults_and_derived_limits_are_asyncios() -> None:
    """64 KiB high and high // 4 low by default; low alone implies high = 4 * low."""
    assert WriteFlowControl().limits() == (DEFAULT_HIGH_WATER // 4, DEFAULT_HIGH_WATER)
    assert WriteFlowControl(low=100).limits() == (100, 400)
    assert WriteFlowControl(high=10).limits() == (2, 10)
    assert WriteFlowControl(high=0).limits() == (0, 0)


@pytest.mark.parametrize(("high", "low"), [(1, 2), (-1, None), (None, -1), (-8, -9)])
def test_bad_limits_are_refused(high: int | None, low: int | None) -> None:
    """Limits that break high >= low >= 0 raise ArgumentError and change nothing."""
    flow = WriteFlowControl(high=50, low=5)
    with pytest.raises(ArgumentError):
        flow.set_limits(high, low)
    assert flow.limits() == (5, 50)
