"""The fake clock and the timer queue behind every driver's clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weft.drivers._core.timers import TimerQueue
from weft.drivers.testing import FakeClock
from weft.protocols.contract import Clock, TimerHandle
from weft.protocols.errors import ArgumentError


def test_a_fake_clock_is_a_clock() -> None:
    """FakeClock and its handles conform to the contract's Clock and TimerHandle."""
    clock = FakeClock()
    assert isinstance(clock, Clock)
    assert isinstance(clock.call_later(1, print), TimerHandle)


def test_time_stands_still_until_advanced() -> None:
    """now() starts where asked and moves only with advance()."""
    clock = FakeClock(start=100.0)
    assert clock.now() == 100.0
    clock.advance(2.5)
    assert clock.now() == 102.5
    clock.advance(0)
    assert clock.now() == 102.5


def test_calls_run_at_their_deadline_seeing_their_own_time() -> None:
    """A call runs when its deadline is reached, and now() inside it is that deadline."""
    clock = FakeClock()
    seen: list[float] = []
    clock.call_later(3, lambda: seen.append(clock.now()))
    clock.call_later(1, lambda: seen.append(clock.now()))
    clock.advance(0.5)
    assert seen == []
    clock.advance(10)
    assert seen == [1.0, 3.0]
    assert clock.now() == 10.5


def test_equal_deadlines_run_first_in_first_out() -> None:
    """Calls due at the same moment run in the order they were scheduled."""
    clock = FakeClock()
    order: list[int] = []
    for index in range(50):
        clock.call_later(1.0, order.append, index)
    clock.call_at(1.0, order.append, 50)
    clock.advance(1.0)
    assert order == list(range(51))


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=60))
def test_calls_run_sorted_by_deadline_then_by_order(delays: list[float]) -> None:
    """For any delays, calls run sorted by (deadline, scheduling order)."""
    clock = FakeClock()
    ran: list[int] = []
    for index, delay in enumerate(delays):
        clock.call_later(delay, ran.append, index)
    clock.advance(100)
    assert ran == sorted(range(len(delays)), key=lambda index: (delays[index], index))


def test_cancelled_calls_never_run() -> None:
    """cancel() before the deadline stops the call; cancelling twice or after it ran is harmless."""
    clock = FakeClock()
    ran: list[str] = []
    kept = clock.call_later(1, ran.append, "kept")
    dropped = clock.call_later(1, ran.append, "dropped")
    dropped.cancel()
    dropped.cancel()
    assert dropped.cancelled()
    assert not kept.cancelled()
    clock.advance(1)
    kept.cancel()
    assert ran == ["kept"]
    assert clock.pending() == []


def test_calls_scheduled_while_advancing_run_if_they_fall_due() -> None:
    """A call that schedules another within the advanced span sees it run in the
    same advance; one beyond the span waits."""
    clock = FakeClock()
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        clock.call_later(1, ran.append, "inside")
        clock.call_later(10, ran.append, "beyond")

    clock.call_later(1, first)
    clock.advance(5)
    assert ran == ["first", "inside"]
    assert clock.next_deadline() == 11
    assert clock.advance_to_next()
    assert ran == ["first", "inside", "beyond"]
    assert not clock.advance_to_next()


def test_call_soon_runs_at_the_next_advance_even_zero() -> None:
    """call_soon runs on advance(0), after calls already due."""
    clock = FakeClock()
    ran: list[str] = []
    clock.call_later(0, ran.append, "due")
    clock.call_soon(ran.append, "soon")
    assert ran == []
    clock.advance(0)
    assert ran == ["due", "soon"]


def test_negative_delays_count_as_zero_and_bad_ones_are_refused() -> None:
    """A negative delay runs now (as asyncio); NaN and negative advances are ArgumentErrors."""
    clock = FakeClock(start=5)
    ran: list[str] = []
    clock.call_later(-3, ran.append, "now")
    clock.call_at(1, ran.append, "past")
    clock.advance(0)
    assert ran == ["now", "past"]
    with pytest.raises(ArgumentError):
        clock.call_later(math.nan, print)
    with pytest.raises(ArgumentError):
        clock.advance(-1)
    with pytest.raises(ArgumentError):
        clock.advance(math.nan)


def test_an_exception_propagates_and_later_calls_stay_scheduled() -> None:
    """A raising call propagates out of advance(); calls not yet run still run later."""
    clock = FakeClock()
    ran: list[str] = []

    def fail() -> None:
        raise ValueError("from a timer")

    clock.call_later(1, fail)
    clock.call_later(2, ran.append, "later")
    with pytest.raises(ValueError, match="from a timer"):
        clock.advance(3)
    assert clock.now() == 1
    clock.advance(2)
    assert ran == ["later"]


def test_advance_from_inside_a_call_is_allowed() -> None:
    """A call may advance the clock itself; both advances run what falls due."""
    clock = FakeClock()
    ran: list[str] = []
    clock.call_later(1, lambda: clock.advance(5))
    clock.call_later(4, ran.append, "at 4")
    clock.call_later(8, ran.append, "at 8")
    clock.advance(2)
    assert ran == ["at 4"]
    assert clock.now() == 6
    clock.advance(2)
    assert ran == ["at 4", "at 8"]


def test_a_timer_handle_reports_its_deadline_and_state() -> None:
    """when() is the deadline; repr shows whether it is pending, done or cancelled."""
    clock = FakeClock(start=1)
    handle = clock.call_later(2, print)
    assert handle.when() == 3
    assert "pending" in repr(handle)
    other = clock.call_later(5, print)
    other.cancel()
    assert "cancelled" in repr(other)


def test_the_queue_purges_cancelled_timers() -> None:
    """Cancelling most of many timers shrinks the heap, so memory stays bounded
    for programs that schedule and cancel timeouts all the time."""
    queue = TimerQueue()
    timers = [queue.schedule(float(index), print, ()) for index in range(1000)]
    for timer in timers[:900]:
        timer.cancel()
    assert len(queue) == 100
    assert len(queue._heap) < 1000
    assert [timer.when() for timer in queue.pending()] == [float(index) for index in range(900, 1000)]
    assert queue.next_deadline() == 900.0


def test_a_cancelled_timer_lets_go_of_its_callback() -> None:
    """cancel() drops the callback and arguments at once, so they can be freed."""
    queue = TimerQueue()
    payload = [bytearray(10)]
    timer = queue.schedule(1.0, payload.append, (payload,))
    timer.cancel()
    assert timer._callback is None
    assert timer._args == ()
    timer.run()
    assert len(payload) == 1
