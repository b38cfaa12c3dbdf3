"""TaskGroup on the fake clock: structured concurrency, failures, cancellation, nesting."""

from __future__ import annotations

import pytest

from weft.drivers.coroutines import Cancelled, TaskGroup, run, sleep, spawn
from weft.drivers.testing import FakeClock
from weft.protocols.errors import InvalidStateError


async def worker(clock: FakeClock, name: str, seconds: float, log: list[str]) -> str:
    """Sleep, then return ``name``; log how it ended, with a cleanup that awaits."""
    try:
        await sleep(seconds)
    except Cancelled:
        await sleep(0.5)  # cleanup that itself awaits
        log.append(f"{name} cancelled, cleaned up at {clock.now():g}")
        raise
    log.append(f"{name} done at {clock.now():g}")
    return name


async def failing(seconds: float, error: Exception) -> None:
    """Sleep, then raise ``error``."""
    await sleep(seconds)
    raise error


def test_the_block_waits_for_every_child() -> None:
    """Leaving `async with` waits until all children are done; their results are on their tasks."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> list[str]:
        async with TaskGroup() as group:
            first = group.spawn(worker(clock, "a", 3, log))
            second = group.spawn(worker(clock, "b", 1, log))
        log.append(f"block left at {clock.now():g}")
        return [first.result(), second.result()]

    assert run(clock, main()) == ["a", "b"]
    assert log == ["b done at 1", "a done at 3", "block left at 3"]


def test_a_failing_child_cancels_its_siblings_and_the_body() -> None:
    """One child's failure cancels the others and the body; it surfaces in an ExceptionGroup."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> None:
        async with TaskGroup() as group:
            group.spawn(worker(clock, "sibling", 10, log))
            group.spawn(failing(2, ValueError("child failed")))
            try:
                await sleep(100)
            except Cancelled:
                log.append(f"body cancelled at {clock.now():g}")
                raise

    with pytest.raises(ExceptionGroup) as caught:
        run(clock, main())
    assert [type(error) for error in caught.value.exceptions] == [ValueError]
    assert str(caught.value.exceptions[0]) == "child failed"
    assert log == ["body cancelled at 2", "sibling cancelled, cleaned up at 2.5"]
    assert clock.now() == 2.5


def test_several_failures_are_all_reported() -> None:
    """Children failing in the same turn all appear in the group; cancelled ones do not."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> None:
        async with TaskGroup() as group:
            group.spawn(failing(1, ValueError("one")))
            group.spawn(failing(1, KeyError("two")))
            group.spawn(worker(clock, "other", 5, log))

    with pytest.raises(ExceptionGroup) as caught:
        run(clock, main())
    assert sorted(type(error).__name__ for error in caught.value.exceptions) == ["KeyError", "ValueError"]
    assert log == ["other cancelled, cleaned up at 1.5"]


def test_an_error_in_the_body_cancels_the_children_and_joins_the_group() -> None:
    """The body raising cancels every child and is reported in the ExceptionGroup."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> None:
        async with TaskGroup() as group:
            group.spawn(worker(clock, "child", 10, log))
            await sleep(1)
            raise RuntimeError("body failed")

    with pytest.raises(ExceptionGroup) as caught:
        run(clock, main())
    assert [str(error) for error in caught.value.exceptions] == ["body failed"]
    assert log == ["child cancelled, cleaned up at 1.5"]


def test_cancelling_the_parent_cancels_the_children_and_propagates() -> None:
    """A cancel from outside reaches every child; the parent ends cancelled, after their cleanup."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> None:
        async with TaskGroup() as group:
            group.spawn(worker(clock, "x", 10, log))
            group.spawn(worker(clock, "y", 10, log))

    task = spawn(clock, main())
    clock.advance(1)
    task.cancel()
    clock.advance(0)
    assert not task.done()  # the children are still cleaning up
    clock.advance(0.5)
    assert task.cancelled()
    assert log == ["x cancelled, cleaned up at 1.5", "y cancelled, cleaned up at 1.5"]


def test_group_cancel_ends_the_block_quietly() -> None:
    """group.cancel() stops the children and the body, and the block ends without an error."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> str:
        async with TaskGroup() as group:
            group.spawn(worker(clock, "child", 10, log))
            await sleep(1)
            group.cancel()
            await sleep(100)
            log.append("never")
        return f"left at {clock.now():g}"

    assert run(clock, main()) == "left at 1.5"
    assert log == ["child cancelled, cleaned up at 1.5"]


def test_nested_groups_an_inner_failure_cancels_the_outer_siblings() -> None:
    """A failure deep in an inner group surfaces as a nested ExceptionGroup and cancels outer siblings."""
    clock = FakeClock()
    log: list[str] = []

    async def inner() -> None:
        async with TaskGroup() as group:
            group.spawn(worker(clock, "inner sibling", 10, log))
            group.spawn(failing(1, ValueError("deep")))

    async def main() -> None:
        async with TaskGroup() as group:
            group.spawn(inner())
            group.spawn(worker(clock, "outer sibling", 10, log))

    with pytest.raises(ExceptionGroup) as caught:
        run(clock, main())
    (inner_group,) = caught.value.exceptions
    assert isinstance(inner_group, ExceptionGroup)
    assert [str(error) for error in inner_group.exceptions] == ["deep"]
    assert sorted(log) == [
        "inner sibling cancelled, cleaned up at 1.5",
        "outer sibling cancelled, cleaned up at 2",
    ]


def test_children_can_spawn_more_children_into_the_group() -> None:
    """A child may spawn into its own group; the block waits for the grandchildren too."""
    clock = FakeClock()
    log: list[str] = []

    async def main() -> None:
        async with TaskGroup() as group:

            async def spawner() -> None:
                await sleep(1)
                group.spawn(worker(clock, "late", 2, log))

            group.spawn(spawner())
        log.append(f"left at {clock.now():g}")

    run(clock, main())
    assert log == ["late done at 3", "left at 3"]


def test_spawn_after_the_group_ended_is_refused() -> None:
    """A finished group refuses spawn() with InvalidStateError (and closes the coroutine)."""
    clock = FakeClock()

    async def nothing() -> None:
        return None

    async def main() -> TaskGroup:
        async with TaskGroup() as group:
            pass
        return group

    group = run(clock, main())
    with pytest.raises(InvalidStateError):
        group.spawn(nothing())
