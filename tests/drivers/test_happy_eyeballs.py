"""Connecting to a name: the bounded resolver pool, and Happy Eyeballs (RFC 8305).

The attempt scheduling is checked on a fake clock with fake attempts; then,
over loopback only, a name whose first address is black-holed (a listening
socket whose accept queue is full: the kernel drops the SYN, so the connect
neither succeeds nor fails) and whose second is live: the second wins
without waiting for the first's timeout.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft.drivers import Runtime
from weft.drivers._core.connecting import AddressByAddress, ResolverPool, interleaved
from weft.drivers._core.futures import Future
from weft.drivers._runtime import TCPRuntime
from weft.drivers.testing import FakeClock, RecordingProtocol

V4, V6 = socket.AF_INET, socket.AF_INET6


class FakeConnect(AddressByAddress):
    """Attempts that only record themselves; the test ends them."""

    def __init__(self, clock: FakeClock, delay: float | None = 0.25) -> None:
        super().__init__(clock.call_soon, "name.test:80", call_later=clock.call_later, delay=delay)
        self.result: Future[Any] = Future(clock.call_soon)
        self.started: list[tuple[float, Any]] = []
        self.clock = clock

    def _attempt(self, family: int, address: Any) -> None:
        self.started.append((self.clock.now(), address[0]))

    def fail(self, error: BaseException) -> None:
        self.stop_trying()
        if not self.result.done():
            self.result.set_exception(error)


def addresses(*names: str) -> list[tuple[int, Any]]:
    return [(V6 if ":" in name else V4, (name, 80)) for name in names]


def test_families_are_interleaved_the_first_family_first() -> None:
    """RFC 8305 section 4: v6, v4, v6, v4... when getaddrinfo put v6 first;
    each family keeps its own order; one family is left as it is."""
    mixed = addresses("::1", "::2", "::3", "10.0.0.1", "10.0.0.2")
    assert [address[1][0] for address in interleaved(mixed)] == ["::1", "10.0.0.1", "::2", "10.0.0.2", "::3"]
    v4_first = addresses("10.0.0.1", "::1", "::2")
    assert [address[1][0] for address in interleaved(v4_first)] == ["10.0.0.1", "::1", "::2"]
    assert interleaved(addresses("10.0.0.1", "10.0.0.2")) == addresses("10.0.0.1", "10.0.0.2")


def test_the_next_attempt_starts_after_the_delay_or_when_one_fails() -> None:
    """An attempt has 250 ms before the next starts beside it; a failure
    starts the next at once; the first to connect stops the rest."""
    clock = FakeClock()
    connect = FakeConnect(clock)
    connect.try_addresses(addresses("::1", "::2", "10.0.0.1", "10.0.0.2"))
    assert connect.started == [(0.0, "::1")]
    clock.advance(0.249)
    assert len(connect.started) == 1
    clock.advance(0.001)
    assert connect.started == [(0.0, "::1"), (0.25, "10.0.0.1")]
    clock.advance(0.1)
    connect.address_failed(ConnectionRefusedError(111, "refused"))  # one fails: the next, now
    assert connect.started[-1] == (0.35, "::2")
    connect.address_won()
    clock.advance(10)
    assert [address for _, address in connect.started] == ["::1", "10.0.0.1", "::2"]
    assert not connect.result.done()  # the subclass settles it with the winner


def test_when_every_attempt_fails_the_last_error_names_the_target() -> None:
    """The connect fails only when no attempt is left under way, with the last error."""
    clock = FakeClock()
    connect = FakeConnect(clock)
    connect.try_addresses(addresses("::1", "10.0.0.1"))
    clock.advance(0.25)
    connect.address_failed(ConnectionRefusedError(111, "first"))
    assert not connect.result.done()  # the second is still under way
    connect.address_failed(ConnectionRefusedError(111, "Connection refused"))
    with pytest.raises(ConnectionRefusedError, match=r"^\[Errno 111\] cannot connect to name.test:80"):
        connect.result.result()


def test_without_a_delay_the_addresses_are_tried_one_after_another() -> None:
    """delay None: the next attempt starts only when one fails (no timer at all)."""
    clock = FakeClock()
    connect = FakeConnect(clock, delay=None)
    connect.try_addresses(addresses("::1", "10.0.0.1"))
    clock.advance(60)
    assert [address for _, address in connect.started] == ["::1"]
    assert clock.pending() == []
    connect.address_failed(TimeoutError(110, "timed out"))
    assert [address for _, address in connect.started] == ["::1", "10.0.0.1"]


def test_the_resolver_pool_is_bounded_and_runs_everything() -> None:
    """Fifty lookups that block at once start no more threads than the
    pool's bound; released, every one runs."""
    pool = ResolverPool(max_threads=4)
    release = threading.Event()
    done: list[int] = []
    lock = threading.Lock()

    def lookup(number: int) -> None:
        release.wait(TIMEOUT)
        with lock:
            done.append(number)

    for number in range(50):
        pool.submit(lambda number=number: lookup(number))  # type: ignore[misc]
    assert pool.threads == 4
    release.set()
    finished = threading.Event()
    pool.submit(finished.set)
    assert finished.wait(TIMEOUT)
    for _ in range(1000):  # the others finish on the same four threads
        if len(done) == 50:
            break
        threading.Event().wait(0.01)
    assert sorted(done) == list(range(50))
    assert pool.threads == 4


def test_a_call_that_raises_leaves_the_pool_its_thread(caplog: pytest.LogCaptureFixture) -> None:
    """A call that lets an error escape (a lookup reporting to a closed loop)
    is logged, and its thread goes on serving: the pool keeps its bound."""
    pool = ResolverPool(max_threads=1)

    def broken() -> None:
        raise RuntimeError("the loop is closed")

    pool.submit(broken)
    finished = threading.Event()
    pool.submit(finished.set)
    assert finished.wait(TIMEOUT)
    assert pool.threads == 1
    assert "a call on the resolver pool raised" in caplog.text


# ------------------------------------------------------------ over loopback


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port whose SYNs the kernel drops: a listener with a backlog
    of 0 whose accept queue is already full (one connection never accepted)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        yield port
    finally:
        filler.close()
        listener.close()


@pytest.fixture
def live() -> Iterator[socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener
    finally:
        listener.close()


def _stub_resolver(monkeypatch: pytest.MonkeyPatch, runtime: Runtime, found: list[tuple[str, int]]) -> None:
    """Make "eyeballs.test" resolve to ``found``, in order, on this runtime's driver."""
    infos = [(V4, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address) for address in found]

    def getaddrinfo(self: object, host: str, port: int) -> list[Any]:
        assert host == "eyeballs.test"
        return infos

    monkeypatch.setattr(AddressByAddress, "_getaddrinfo", getaddrinfo)
    loop = getattr(runtime, "loop", None)
    if loop is not None:  # asyncio resolves with its own loop.getaddrinfo
        real_getaddrinfo = loop.getaddrinfo

        async def loop_getaddrinfo(host: str, port: int, **options: Any) -> list[Any]:
            if host != "eyeballs.test":  # uvloop's sock_connect checks the addresses it is given
                return await real_getaddrinfo(host, port, **options)  # type: ignore[no-any-return]
            return infos

        monkeypatch.setattr(loop, "getaddrinfo", loop_getaddrinfo)
    if getattr(runtime, "name", None) == "trio":  # Trio resolves with trio.socket.getaddrinfo
        import trio

        real_trio_getaddrinfo = trio.socket.getaddrinfo

        async def trio_getaddrinfo(host: str, port: int, **options: Any) -> list[Any]:
            if host != "eyeballs.test":
                return await real_trio_getaddrinfo(host, port, **options)
            return infos

        monkeypatch.setattr(trio.socket, "getaddrinfo", trio_getaddrinfo)


@pytest.mark.drivers(requires=(TCPRuntime,))
def test_a_black_holed_first_address_costs_the_delay_not_the_timeout(
    runtime: Runtime, black_hole: int, live: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name's first address never answers; 250 ms later the second is
    tried beside it and connects, well before the ten-minute timeout; the
    connection is to the second address."""
    live_port = live.getsockname()[1]
    _stub_resolver(monkeypatch, runtime, [("127.0.0.1", black_hole), ("127.0.0.1", live_port)])
    client = RecordingProtocol()
    connecting = runtime.connect_tcp(lambda: client, "eyeballs.test", 80, timeout=600)
    assert runtime.run_until(connecting.done, TIMEOUT)
    transport = connecting.result()
    assert transport.get_extra_info("peername")[1] == live_port
    transport.close()


@pytest.fixture
def refusing() -> int:
    """A loopback port nobody listens on (bound, then closed): connecting is refused."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        return int(placeholder.getsockname()[1])


@pytest.mark.drivers(requires=(TCPRuntime,))
def test_without_a_delay_a_black_holed_first_address_costs_the_timeout(
    runtime: Runtime, black_hole: int, live: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """happy_eyeballs_delay=None reaches every driver: the live second address
    is never tried while the first hangs, so the connect times out, naming the name."""
    _stub_resolver(monkeypatch, runtime, [("127.0.0.1", black_hole), ("127.0.0.1", live.getsockname()[1])])
    connect_tcp: Any = runtime.connect_tcp  # (happy_eyeballs_delay is not in the TCPRuntime protocol)
    connecting = connect_tcp(RecordingProtocol, "eyeballs.test", 80, timeout=0.5, happy_eyeballs_delay=None)
    assert runtime.run_until(connecting.done, TIMEOUT)
    error = connecting.exception()
    assert isinstance(error, TimeoutError)
    assert "cannot connect to eyeballs.test:80" in str(error)


@pytest.mark.drivers(requires=(TCPRuntime,))
def test_when_every_address_refuses_the_connect_fails_naming_the_name(
    runtime: Runtime, refusing: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both addresses refuse: the connect fails (once both have) with an
    OSError naming the name, ConnectionRefusedError where weft makes the
    attempts (asyncio's own create_connection merges different errors into
    one plain OSError)."""
    _stub_resolver(monkeypatch, runtime, [("127.0.0.1", refusing), ("127.0.0.2", refusing)])
    connecting = runtime.connect_tcp(RecordingProtocol, "eyeballs.test", 80, timeout=TIMEOUT)
    assert runtime.run_until(connecting.done, TIMEOUT)
    error = connecting.exception()
    assert isinstance(error, OSError)
    assert "cannot connect to eyeballs.test:80" in str(error)
    if getattr(runtime, "name", None) != "asyncio":
        assert isinstance(error, ConnectionRefusedError)


@pytest.mark.drivers(requires=(TCPRuntime,))
def test_an_address_that_never_answers_times_out_naming_the_name(
    runtime: Runtime, black_hole: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overall timeout holds over the attempts: the first address never
    answers and the second refuses, so the connect waits on the first until
    the timeout and fails with TimeoutError naming the name (not the
    refusal); a connect made next on the same runtime still works."""
    _stub_resolver(monkeypatch, runtime, [("127.0.0.1", black_hole), ("127.0.0.2", black_hole)])
    connecting = runtime.connect_tcp(RecordingProtocol, "eyeballs.test", 80, timeout=0.5)
    assert runtime.run_until(connecting.done, TIMEOUT)
    error = connecting.exception()
    assert isinstance(error, TimeoutError)
    assert "cannot connect to eyeballs.test:80" in str(error)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        again = runtime.connect_tcp(RecordingProtocol, "127.0.0.1", port, timeout=TIMEOUT)
        assert runtime.run_until(again.done, TIMEOUT)
        again.result().close()
