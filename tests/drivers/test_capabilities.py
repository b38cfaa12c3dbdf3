"""The capability protocols, the drivers' declarations of them, and the test registry built on both.

mypy proves the static half (the block under ``TYPE_CHECKING`` below: each
driver's runtime class is a ``Runtime`` and offers what it declares, and
asyncio's is no ``ProcessRuntime``; the testing kit's ``MemoryRuntime`` is a
loop with TCP and UNIX sockets and datagrams, and no whole ``Runtime``); the tests prove that what each
registered driver declares in ``weft.drivers.DRIVERS`` is what the runtime
it opens has, and that the registry's selections follow the declarations.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from tests.support.drivers import driver_names, driver_params
from weft.drivers import (
    CAPABILITIES,
    DRIVERS,
    DatagramRuntime,
    DriverInfo,
    LoopRuntime,
    PipesRuntime,
    ProcessRuntime,
    Runtime,
    SignalsRuntime,
    TCPRuntime,
    ThreadsRuntime,
    UNIXRuntime,
)
from weft.drivers.testing import RecordingProtocol
from weft.protocols.contract import FileWriteTransport, file_writer_of

if TYPE_CHECKING:
    from weft.drivers.asyncio import AsyncioRuntime
    from weft.drivers.blocking import BlockingRuntime
    from weft.drivers.coroutine import CoroutineRuntime
    from weft.drivers.reactor import Reactor
    from weft.drivers.testing import MemoryRuntime
    from weft.drivers.trio import TrioRuntime

    def _each_runtime_class_offers_what_it_declares(
        reactor: Reactor,
        coroutine: CoroutineRuntime,
        asyncio: AsyncioRuntime,
        blocking: BlockingRuntime,
        trio: TrioRuntime,
        memory: MemoryRuntime,
    ) -> None:
        """Never called: mypy checks each assignment (and, strict, that each ignore is still needed)."""
        runtimes: list[Runtime] = [reactor, coroutine, asyncio, blocking, trio]
        spawners: list[ProcessRuntime] = [reactor, coroutine, blocking, trio]
        asyncio_spawns: ProcessRuntime = asyncio  # type: ignore[assignment]
        in_memory: tuple[LoopRuntime, TCPRuntime, UNIXRuntime, DatagramRuntime] = (memory,) * 4
        memory_is_whole: Runtime = memory  # type: ignore[assignment]
        memory_pipes: PipesRuntime = memory  # type: ignore[assignment]
        del runtimes, spawners, asyncio_spawns, in_memory, memory_is_whole, memory_pipes


def test_runtime_is_every_capability_but_processes() -> None:
    """Runtime is made of the capability protocols every OS driver offers, and
    CAPABILITIES lists those and ProcessRuntime, each runtime-checkable."""
    parts = {
        LoopRuntime,
        ThreadsRuntime,
        TCPRuntime,
        UNIXRuntime,
        PipesRuntime,
        DatagramRuntime,
        SignalsRuntime,
    }
    assert set(Runtime.__mro__) >= parts
    assert ProcessRuntime not in Runtime.__mro__
    assert set(CAPABILITIES) == parts | {ProcessRuntime}
    for capability in CAPABILITIES:
        assert getattr(capability, "_is_runtime_protocol", False), capability


@pytest.mark.drivers
def test_each_driver_declares_what_its_runtime_has(runtime: Runtime, driver: str) -> None:
    """What DRIVERS says a driver offers is what the runtime it opens has: each
    capability protocol by isinstance, FileWriteTransport by a pipe transport
    it hands out having write_file.  Every OS driver is a whole Runtime."""
    has = {capability for capability in CAPABILITIES if isinstance(runtime, capability)}
    read_end, write_end = os.pipe()
    protocol = RecordingProtocol()
    transport = runtime.connect_pipes(lambda: protocol, read_end, write_end)
    if file_writer_of(transport) is not None:
        has.add(FileWriteTransport)
    transport.abort()
    assert runtime.run_until(lambda: protocol.lost, 10)  # the transport closes both descriptors
    assert has == DRIVERS[driver].capabilities
    assert isinstance(runtime, Runtime)


def test_processes_are_not_everywhere() -> None:
    """The registry's declarations differ where the drivers do: asyncio and
    uvloop start no processes, the others do; every driver offers write_file."""
    assert driver_names(requires={ProcessRuntime}) == [
        "reactor",
        "coroutine",
        "completion",
        "blocking",
        "twisted",
        "trio",
    ]
    assert driver_names(lacks={ProcessRuntime}) == ["asyncio", "uvloop"]
    assert driver_names(requires={FileWriteTransport}) == list(DRIVERS)


def test_selecting_by_name_and_leaving_out_with_a_reason() -> None:
    """only= keeps the drivers named, in the registry's order; exclude= leaves
    some out; a name the registry does not know is an error, not an empty selection."""
    assert driver_names(only=("coroutine", "reactor")) == ["reactor", "coroutine"]
    spawners = driver_names(requires={ProcessRuntime}, exclude={"blocking": "why"})
    assert spawners == ["reactor", "coroutine", "completion", "twisted", "trio"]
    with pytest.raises(KeyError, match="no driver called 'reactr'"):
        driver_names(only=("reactr",))
    with pytest.raises(KeyError, match="no driver called 'blockng'"):
        driver_names(exclude={"blockng": "a typo"})


def test_a_driver_that_cannot_run_here_is_skipped_naming_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered driver whose module is missing is still a case of the
    matrix, skipped with a reason that names the pip extra; one that can run
    has no mark."""

    def never_opened() -> Runtime:
        raise AssertionError("selecting must not open a driver")

    fancy = DriverInfo(
        "fancy",
        "a driver on fancyloop",
        ("weft_no_such_module",),
        "fancy",
        never_opened,
        frozenset({LoopRuntime, TCPRuntime}),
    )
    monkeypatch.setitem(DRIVERS, "fancy", fancy)
    params = {param.id: param for param in driver_params(requires={TCPRuntime})}
    assert list(params) == [*DRIVERS]
    (skip,) = params["fancy"].marks
    assert skip.name == "skip"
    assert skip.kwargs["reason"] == (
        "the fancy driver needs weft_no_such_module, which is not installed: pip install 'weft[fancy]'"
    )
    assert not params["reactor"].marks
    assert "fancy" not in driver_names(requires={UNIXRuntime})


@pytest.mark.drivers(requires={ProcessRuntime})
def test_the_mark_runs_a_test_on_the_drivers_offering_what_it_requires(driver: str) -> None:
    """The drivers mark gives the test only drivers that declare what it requires."""
    assert DRIVERS[driver].offers(ProcessRuntime)
    assert driver != "asyncio"
