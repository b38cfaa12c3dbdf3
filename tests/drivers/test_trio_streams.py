"""weft streams are Trio streams, and Trio streams are weft transports: each checked by the other's suite.

One way, :class:`~weft.drivers.trio.TrioStream` presents a weft coroutine
stream (over TCP or pipes, on the trio driver) as a
``trio.abc.HalfCloseableStream``, and Trio's own conformance checks
(``trio.testing.check_half_closeable_stream`` and ``check_two_way_stream``,
with a "clogged" pair for the blocking cases) pass on it, inside a Trio
program and on a runtime of its own.

The other way, weft's shipped conformance suite runs against Trio's
streams through the driver's transport (``TrioRuntime.connect_stream``):
``trio.SocketStream`` passes every check; Trio's in-memory test streams
fail exactly the checks that ``docs/drivers-trio.md`` explains (what they
cannot have: names, a peer that stops taking bytes, bytes held outside the
stream).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from tests.support import TIMEOUT
from weft.drivers.coroutines import Stream, StreamProtocol
from weft.drivers.testing.conformance import ALL_CHECKS, RuntimePair, Verdict, run_checks
from weft.drivers.trio import TrioRuntime, TrioStream, from_weft, open_trio_runtime
from weft.protocols import errors

#: Linux's fcntl to size a pipe (not in the fcntl module before Python 3.10's F_SETPIPE_SZ on all builds).
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

StreamPair = tuple[TrioStream, TrioStream]
Maker = Callable[[], Awaitable[StreamPair]]
#: Makes two connected Trio streams (of Trio's own kinds).
TrioPairMaker = Callable[[], Awaitable[tuple[trio.abc.Stream, trio.abc.Stream]]]


# ------------------------------------------------------------- the makers


def tcp_maker(runtime: TrioRuntime) -> Maker:
    """Pairs of weft streams over loopback TCP: one accepted, one connected."""

    async def make() -> StreamPair:
        accepted: list[Stream] = []
        arrived = trio.Event()

        def on_connection(stream: Stream) -> None:
            accepted.append(stream)
            arrived.set()

        listener = runtime.listen_tcp(lambda: StreamProtocol(on_connection=on_connection), "127.0.0.1", 0)
        client = StreamProtocol()
        await from_weft(runtime, runtime.connect_tcp(lambda: client, "127.0.0.1", listener.addresses[0][1]))
        await arrived.wait()
        listener.close()
        return TrioStream(client.stream, runtime), TrioStream(accepted[0], runtime)

    return make


def pipes_pair(
    runtime: TrioRuntime, *, read_limit: int, write_low_water: int, pipe_size: int | None
) -> StreamPair:
    """Two weft streams joined by two pipes, one each way."""
    a_read, b_write = os.pipe()
    b_read, a_write = os.pipe()
    if pipe_size is not None:
        for fd in (a_write, b_write):
            fcntl.fcntl(fd, F_SETPIPE_SZ, pipe_size)
    ends = [StreamProtocol(read_limit=read_limit, write_low_water=write_low_water) for _ in range(2)]
    runtime.connect_pipes(lambda: ends[0], a_read, a_write)
    runtime.connect_pipes(lambda: ends[1], b_read, b_write)
    return TrioStream(ends[0].stream, runtime), TrioStream(ends[1].stream, runtime)


def pipes_maker(runtime: TrioRuntime) -> Maker:
    """Pairs of weft streams over pipes, with the default limits."""

    async def make() -> StreamPair:
        return pipes_pair(runtime, read_limit=256 * 1024, write_low_water=16 * 1024, pipe_size=None)

    return make


def clogged_maker(runtime: TrioRuntime) -> Maker:
    """Trio's "clogged" pairs: ``send_all`` blocks until the other end receives.

    Over pipes of one page, with no low-water slack and a read limit of one
    byte, each direction filled until a sender blocks.  (Over TCP a full
    connection does not stay full: the kernel takes more as its windows
    reopen, so a clogged pair must be a pipe, whose capacity is fixed.)
    """

    async def make() -> StreamPair:
        pair = pipes_pair(runtime, read_limit=1, write_low_water=0, pipe_size=4096)
        for stream in pair:
            await fill(stream)
        return pair

    return make


async def fill(stream: TrioStream) -> None:
    """Send until every buffer on the way is full and the sender blocks."""

    async def send_for_ever() -> None:
        while True:
            await stream.send_all(b"x" * 1000)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_for_ever)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()


def in_a_trio_program(check: Callable[[TrioRuntime], Awaitable[None]]) -> None:
    """Run ``check`` in ``trio.run``, with the weft runtime inside the Trio program."""

    async def main() -> None:
        with trio.fail_after(TIMEOUT * 3):
            async with open_trio_runtime() as runtime:
                await check(runtime)

    trio.run(main)


# ------------------------------------------------- Trio's checks on weft's streams


def test_weft_tcp_streams_pass_trio_half_closeable_stream_checks() -> None:
    """check_half_closeable_stream (which runs check_two_way_stream first) on
    weft streams over TCP, the clogged cases over pipes."""

    async def check(runtime: TrioRuntime) -> None:
        await trio.testing.check_half_closeable_stream(tcp_maker(runtime), clogged_maker(runtime))

    in_a_trio_program(check)


def test_weft_pipe_streams_pass_trio_half_closeable_stream_checks() -> None:
    """The same checks on weft streams over pipe pairs, whose half-close is closing the pipe."""

    async def check(runtime: TrioRuntime) -> None:
        await trio.testing.check_half_closeable_stream(pipes_maker(runtime), clogged_maker(runtime))

    in_a_trio_program(check)


def test_weft_streams_pass_trio_two_way_stream_checks() -> None:
    """check_two_way_stream on its own: a MiB each way at once in random
    chunks, concurrent receives refused, send-then-close delivered then EOF."""

    async def check(runtime: TrioRuntime) -> None:
        await trio.testing.check_two_way_stream(tcp_maker(runtime), clogged_maker(runtime))

    in_a_trio_program(check)


def test_the_checks_pass_on_a_trio_runtime_of_its_own() -> None:
    """The same checks on ``TrioRuntime()``, whose Trio is a guest run that
    ``run_trio`` drives: weft streams are Trio streams there too."""
    with TrioRuntime() as runtime:

        async def check() -> None:
            await trio.testing.check_half_closeable_stream(tcp_maker(runtime), clogged_maker(runtime))

        runtime.run_trio(check, timeout=TIMEOUT * 3)


class _UntranslatedReceives(TrioStream):
    """A broken adapter: a second concurrent receive_some gets weft's BusyResourceError, not Trio's."""

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            return await super().receive_some(max_bytes)
        except trio.BusyResourceError as exc:
            raise errors.BusyResourceError(str(exc)) from None


def test_trio_checks_fail_an_adapter_that_breaks_the_contract() -> None:
    """The checks can fail: an adapter that answers a second concurrent receive
    with weft's BusyResourceError, not Trio's, fails check_two_way_stream."""

    async def check(runtime: TrioRuntime) -> None:
        plain = tcp_maker(runtime)

        async def broken() -> StreamPair:
            one, two = await plain()
            return _UntranslatedReceives(one.stream, runtime), _UntranslatedReceives(two.stream, runtime)

        with pytest.raises(AssertionError):
            await trio.testing.check_two_way_stream(broken, None)

    in_a_trio_program(check)


def test_errors_come_back_in_trio_terms() -> None:
    """A peer's reset is trio.BrokenResourceError with the OSError as its cause;
    use after aclose is trio.ClosedResourceError; a second sender is
    trio.BusyResourceError (weft's stream itself lets several send)."""

    async def check(runtime: TrioRuntime) -> None:
        mine, peer = await tcp_maker(runtime)()
        peer.stream.transport.abort()  # a reset, as a crashed peer gives

        async def send_for_ever() -> None:
            while True:
                await mine.send_all(b"x" * 65536)

        with pytest.raises(trio.BrokenResourceError) as broken:
            await send_for_ever()
        assert isinstance(broken.value.__cause__, OSError)
        await mine.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await mine.receive_some(1)

        sender, receiver = await clogged_maker(runtime)()

        async def two_senders() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender.send_all, b"one")
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(sender.send_all, b"two")

        with pytest.raises(BaseExceptionGroup) as busy:
            await two_senders()
        assert busy.group_contains(trio.BusyResourceError)
        await trio.aclose_forcefully(sender)
        await trio.aclose_forcefully(receiver)

    in_a_trio_program(check)


# ----------------------------------------------- weft's suite on Trio's streams


async def socket_streams() -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """Two ``trio.SocketStream``\\ s over loopback, made by Trio's own high-level functions."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    for listener in listeners:
        await listener.aclose()
    return client, server


async def memory_streams() -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """``trio.testing.memory_stream_pair()``: unbounded buffers, no names."""
    return trio.testing.memory_stream_pair()


async def lockstep_streams() -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """``trio.testing.lockstep_stream_pair()``: no buffer at all."""
    return trio.testing.lockstep_stream_pair()


class TrioStreamHarness:
    """A conformance harness: two Trio streams from ``make``, each run as a weft
    transport by ``TrioRuntime.connect_stream`` on a runtime of its own."""

    def __init__(self, make: TrioPairMaker) -> None:
        self.make = make
        self.name = f"trio {make.__name__}"

    def connect(self, client: Any, server: Any) -> RuntimePair:
        pair = RuntimePair(TrioRuntime())
        runtime = pair.runtime
        assert isinstance(runtime, TrioRuntime)
        try:
            client_stream, server_stream = runtime.run_trio(self.make, timeout=TIMEOUT)
            runtime.connect_stream(lambda: server, server_stream)
            runtime.connect_stream(lambda: client, client_stream)
        except BaseException:
            pair.close()
            raise
        return pair


#: What each of Trio's in-memory streams fails, and why (docs/drivers-trio.md says the same).
DIFFERENCES: dict[TrioPairMaker, set[str]] = {
    memory_streams: {
        # Unbounded buffers: a peer that never reads never holds a close back.
        "abort_ends_a_close_that_cannot_flush",
        # No addresses: there is nothing to name.
        "peername_and_sockname_are_kept_after_the_end",
    },
    lockstep_streams: {
        "peername_and_sockname_are_kept_after_the_end",
    },
}


def test_trio_socket_streams_pass_weft_conformance_suite() -> None:
    """trio.SocketStream, made by trio.open_tcp_stream and a Trio listener,
    under the trio driver's transport, passes every check of weft's suite."""
    report = run_checks(TrioStreamHarness(socket_streams))
    assert [outcome.check.name for outcome in report.failed] == [], report
    assert len(report.passed) == len(ALL_CHECKS)


@pytest.mark.parametrize("make", [memory_streams, lockstep_streams], ids=lambda make: make.__name__)
def test_trio_memory_streams_fail_only_the_documented_checks(make: TrioPairMaker) -> None:
    """Trio's in-memory test streams pass weft's suite but for the checks in
    DIFFERENCES, each a difference of the stream, not of the adapter."""
    report = run_checks(TrioStreamHarness(make))
    failed = {outcome.check.name for outcome in report.outcomes if outcome.verdict is Verdict.FAILED}
    assert failed == DIFFERENCES[make], report
