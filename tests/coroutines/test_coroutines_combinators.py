"""gather, race and timeouts on the fake clock."""

from __future__ import annotations

from typing import get_type_hints

import pytest

from weft.drivers import Future
from weft.drivers.coroutines import (
    Cancelled,
    FailAfterScope,
    MoveOnScope,
    TimedOutError,
    current_task,
    fail_after,
    gather,
    move_on_after,
    race,
    run,
    sleep,
    spawn,
    wait_for,
)
from weft.drivers.testing import FakeClock


async def value_after(clock: FakeClock, seconds: float, value: str, log: list[str]) -> str:
    """Sleep, then return ``value``; log how it ended."""
    try:
        await sleep(seconds)
    except Cancelled:
        log.append(f"{value} cancelled at {clock.now():g}")
        raise
    log.append(f"{value} done at {clock.now():g}")
    return value


async def fail_after_sleeping(seconds: float, error: BaseException) -> str:
    """Sleep, then raise ``error``."""
    await sleep(seconds)
    raise error


def test_gather_returns_results_in_argument_order_not_finishing_order() -> None:
    """gather's list follows the arguments; all run concurrently (total time is the longest)."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> list[str]:
        return await gather(
            value_after(clock, 3, "a", log), value_after(clock, 1, "b", log), value_after(clock, 2, "c", log)
        )

    assert run(clock, main()) == ["a", "b", "c"]
    assert log == ["b done at 1", "c done at 2", "a done at 3"]
    assert clock.now() == 3.0


def test_gather_mixes_coroutines_tasks_and_callback_futures() -> None:
    """A coroutine, a Task and a Future resolved by a timer callback gather together."""
    clock = FakeClock()
    log: list[str] = []
    future: Future[str] = Future(clock.call_soon)
    clock.call_later(2, future.set_result, "future")

    async def main() -> list[str]:
        task = spawn(clock, value_after(clock, 1, "task", log))
        return await gather(value_after(clock, 1, "coro", log), task, future)

    assert run(clock, main()) == ["coro", "task", "future"]


def test_gather_of_nothing_is_an_empty_list() -> None:
    """gather() with no awaitables returns [] at once."""
    clock = FakeClock()

    async def main() -> list[object]:
        return await gather()

    assert run(clock, main()) == []


def test_the_first_failure_cancels_the_rest_and_is_raised_after_their_cleanup() -> None:
    """gather raises the first failure only once the others were cancelled and finished."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> None:
        try:
            await gather(
                value_after(clock, 10, "slow", log),
                fail_after_sleeping(2, ValueError("boom")),
                value_after(clock, 1, "quick", log),
                fail_after_sleeping(5, KeyError("later")),
            )
        except ValueError:
            log.append(f"gather raised at {clock.now():g}")
            raise

    with pytest.raises(ValueError, match="boom"):
        run(clock, main())
    assert log == ["quick done at 1", "slow cancelled at 2", "gather raised at 2"]


def test_gather_with_return_exceptions_collects_every_outcome() -> None:
    """return_exceptions=True lets each run to its end and lists results and exceptions in order."""
    clock = FakeClock()
    log: list[str] = []
    boom = ValueError("boom")

    async def main() -> list[str | BaseException]:
        return await gather(
            value_after(clock, 3, "a", log), fail_after_sleeping(1, boom), return_exceptions=True
        )

    assert run(clock, main()) == ["a", boom]
    assert log == ["a done at 3"]


def test_cancelling_the_gathering_task_cancels_every_child() -> None:
    """A cancel aimed at the task in gather() reaches all its children, which clean up first."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> None:
        await gather(value_after(clock, 5, "x", log), value_after(clock, 6, "y", log))

    task = spawn(clock, main())
    clock.advance(1)
    task.cancel()
    clock.advance(0)
    assert task.cancelled()
    assert log == ["x cancelled at 1", "y cancelled at 1"]


def test_race_returns_the_first_to_finish_and_cancels_the_others() -> None:
    """The fastest awaitable wins; the losers are cancelled before race() returns."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> str:
        winner = await race(value_after(clock, 5, "slow", log), value_after(clock, 2, "fast", log))
        log.append(f"race returned at {clock.now():g}")
        return winner

    assert run(clock, main()) == "fast"
    assert log == ["fast done at 2", "slow cancelled at 2", "race returned at 2"]


def test_race_raises_when_the_first_to_finish_fails() -> None:
    """A failure that comes first wins the race too, and is raised; the others are cancelled."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> str:
        return await race(value_after(clock, 5, "slow", log), fail_after_sleeping(1, OSError("down")))

    with pytest.raises(OSError, match="down"):
        run(clock, main())
    assert log == ["slow cancelled at 1"]


def test_race_needs_an_awaitable() -> None:
    """race() with nothing to race is a TypeError."""
    clock = FakeClock()

    async def main() -> object:
        return await race()

    with pytest.raises(TypeError):
        run(clock, main())


def test_fail_after_cancels_the_body_and_raises_timed_out() -> None:
    """On expiry the body sees Cancelled (its cleanup runs), then TimedOutError leaves the block."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> None:
        with fail_after(4):
            await value_after(clock, 10, "body", log)

    with pytest.raises(TimedOutError) as caught:
        run(clock, main())
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value.__cause__, Cancelled)
    assert log == ["body cancelled at 4"]


def test_fail_after_is_quiet_when_the_body_is_in_time() -> None:
    """A body that finishes before its deadline is untouched, and the timer is called off."""
    clock = FakeClock()

    async def main() -> str:
        with fail_after(5) as scope:
            await sleep(1)
        assert not scope.expired
        await sleep(10)
        return "fine"

    assert run(clock, main()) == "fine"
    assert clock.pending() == []


def test_a_return_inside_fail_after_ends_the_function() -> None:
    """fail_after never swallows an exception, and says so to type checkers: its
    ``__exit__`` is typed ``-> None`` (mypy --strict, which checks this file,
    accepts ``main`` with its only return inside the block), while
    move_on_after's, which may swallow its deadline's cancellation, is ``-> bool``."""
    clock = FakeClock()

    async def main() -> str:
        with fail_after(5):
            await sleep(1)
            return "in time"

    assert run(clock, main()) == "in time"
    assert get_type_hints(FailAfterScope.__exit__)["return"] is type(None)
    assert get_type_hints(MoveOnScope.__exit__)["return"] is bool


def test_move_on_after_stops_the_body_and_carries_on() -> None:
    """move_on_after cancels the body at its deadline; the code after the block runs, told why."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> bool:
        with move_on_after(2) as scope:
            await value_after(clock, 10, "body", log)
        log.append(f"after the block at {clock.now():g}")
        return scope.cancelled_caught

    assert run(clock, main()) is True
    assert log == ["body cancelled at 2", "after the block at 2"]


def test_a_timeout_never_swallows_a_cancel_from_outside() -> None:
    """If the task is cancelled from outside inside a move_on_after, Cancelled still propagates."""
    clock = FakeClock()
    after: list[str] = []

    async def main() -> None:
        with move_on_after(10):
            await sleep(100)
        after.append("should not run")

    task = spawn(clock, main())
    clock.advance(3)
    task.cancel()
    clock.advance(0)
    assert task.cancelled()
    assert after == []


def test_nested_timeouts_the_inner_one_fires_first() -> None:
    """An inner, shorter deadline raises inside an outer one that has not expired."""
    clock = FakeClock()

    async def main() -> str:
        with fail_after(10):
            try:
                with fail_after(2):
                    await sleep(5)
            except TimedOutError:
                return f"inner at {clock.now():g}"
        return "no timeout"

    assert run(clock, main()) == "inner at 2"


def test_nested_timeouts_the_outer_one_fires_first() -> None:
    """An outer, shorter deadline is reported by the outer scope, not the inner one."""
    clock = FakeClock()
    inner_saw: list[str] = []

    async def main() -> None:
        with fail_after(2):
            try:
                with fail_after(10):
                    await sleep(5)
            except TimedOutError:
                inner_saw.append("inner timed out")

    with pytest.raises(TimedOutError):
        run(clock, main())
    assert inner_saw == []
    assert clock.now() == 2.0


def test_wait_for_returns_the_result_in_time() -> None:
    """wait_for gives the awaitable's result when it finishes before the deadline."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> str:
        return await wait_for(value_after(clock, 1, "quick", log), 5)

    assert run(clock, main()) == "quick"


def test_wait_for_cancels_a_task_on_expiry_and_waits_for_its_cleanup() -> None:
    """A Task given to wait_for is cancelled at the deadline, and done when TimedOutError is raised."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> bool:
        task = spawn(clock, value_after(clock, 10, "task", log))
        try:
            await wait_for(task, 3)
        except TimedOutError:
            return task.cancelled()
        return False

    assert run(clock, main()) is True
    assert log == ["task cancelled at 3"]


def test_a_timeout_scope_needs_a_task() -> None:
    """fail_after outside a task fails clearly (NotInTaskError), since it cancels the current task."""
    from weft.drivers.coroutines import NotInTaskError

    with pytest.raises(NotInTaskError), fail_after(1):
        pass


def test_current_task_inside_a_gather_child_is_the_child() -> None:
    """Each child of gather runs as its own Task, distinct from the gathering task."""
    clock = FakeClock()

    async def who() -> object:
        return current_task()

    async def main() -> bool:
        me = current_task()
        children = await gather(who(), who())
        return me not in children and children[0] is not children[1]

    assert run(clock, main()) is True
