"""The same coroutine code on every real runtime: real time, real sockets, bounded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import TIMEOUT
from weft.drivers import Future, LoopRuntime, Runtime, TCPRuntime, open_runtime
from weft.drivers.coroutines import (
    Cancelled,
    Host,
    TaskGroup,
    TimedOutError,
    fail_after,
    gather,
    race,
    run,
    sleep,
)
from weft.protocols import EchoProtocol
from weft.protocols.contract import Transport

#: Every test runs on each driver (the TCP one needs TCP, which every driver has).
pytestmark = pytest.mark.drivers(requires={LoopRuntime, TCPRuntime})


@pytest.fixture
def host(driver: str) -> Iterator[Runtime]:
    """A real runtime, closed after the test."""
    runtime = open_runtime(driver)
    try:
        yield runtime
    finally:
        runtime.close()


def test_sleep_and_gather_run_side_by_side_on_the_real_loop(host: Runtime) -> None:
    """Two 50 ms sleeps gathered overlap: each starts before the other ends, so
    they run side by side on the real loop, and neither wakes early."""
    spans: dict[int, tuple[float, float]] = {}

    async def nap(value: int) -> int:
        start = host.now()
        await sleep(0.05)
        spans[value] = (start, host.now())
        return value

    results = run(host, gather(nap(1), nap(2)), timeout=TIMEOUT)
    assert results == [1, 2]
    (start_1, end_1), (start_2, end_2) = spans[1], spans[2]
    assert start_1 < end_2
    assert start_2 < end_1
    # A timer never fires before its time (0.04: the clock's own granularity aside).
    assert end_1 - start_1 >= 0.04
    assert end_2 - start_2 >= 0.04


def test_race_and_timeouts_on_the_real_loop(host: Runtime) -> None:
    """race cancels the loser and fail_after fires, on real time, with cleanup run."""
    cleaned: list[str] = []

    async def slow() -> str:
        try:
            await sleep(5)
        except Cancelled:
            cleaned.append("slow")
            raise
        return "slow"

    async def fast() -> str:
        await sleep(0.01)
        return "fast"

    async def main() -> str:
        winner = await race(slow(), fast())
        try:
            with fail_after(0.02):
                await sleep(5)
        except TimedOutError:
            return winner + " then timeout"
        return winner

    assert run(host, main(), timeout=TIMEOUT) == "fast then timeout"
    assert cleaned == ["slow"]


class Collector(EchoProtocol):
    """A client protocol (callback style) that resolves a Future with the first bytes it receives."""

    def __init__(self, answer: Future[bytes], lost: Future[None]) -> None:
        super().__init__()
        self.answer = answer
        self.lost = lost

    def data_received(self, data: bytes) -> None:
        """Hand the echoed bytes to whoever awaits the future."""
        if not self.answer.done():
            self.answer.set_result(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Tell the coroutine that the connection is gone."""
        self.lost.set_result(None)


def test_a_coroutine_awaits_the_drivers_futures_over_tcp(host: Runtime) -> None:
    """connect_tcp's Future is awaited by a coroutine, and a callback protocol
    hands the echoed bytes to a coroutine through a Future: both styles in one program."""
    listener = host.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    port = listener.addresses[0][1]

    async def main() -> bytes:
        answer: Future[bytes] = Future(host.call_soon)
        lost: Future[None] = Future(host.call_soon)
        transport: Transport = await host.connect_tcp(lambda: Collector(answer, lost), "127.0.0.1", port)
        transport.write(b"hello, coroutines")
        with fail_after(5):
            echoed = await answer
            transport.close()
            await lost
            while listener.connections:  # the server's side of the connection, closing too
                await sleep(0.001)
        return echoed

    try:
        assert run(host, main(), timeout=TIMEOUT) == b"hello, coroutines"
    finally:
        listener.close()


def test_a_task_group_on_the_real_loop(host: Runtime) -> None:
    """A failing child cancels its sibling and surfaces in an ExceptionGroup on a real loop."""
    cleaned: list[str] = []

    async def sibling() -> None:
        try:
            await sleep(5)
        finally:
            cleaned.append("sibling")

    async def failing() -> None:
        await sleep(0.01)
        raise ValueError("real failure")

    async def main() -> None:
        async with TaskGroup() as group:
            group.spawn(sibling())
            group.spawn(failing())

    with pytest.raises(ExceptionGroup) as caught:
        run(host, main(), timeout=TIMEOUT)
    assert [str(error) for error in caught.value.exceptions] == ["real failure"]
    assert cleaned == ["sibling"]


def test_the_runtimes_are_hosts(host: Runtime) -> None:
    """Every runtime conforms to the Host protocol the scheduler needs."""
    assert isinstance(host, Host)
