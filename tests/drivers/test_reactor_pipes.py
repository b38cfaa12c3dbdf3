"""Pipes, regular files and stdio on the reactor: what the conformance suite cannot show.

The conformance suite runs the pipe transport between two protocols
(``reactor-pipes`` and ``reactor-socketpair`` in ``tests/conformance/``);
this file covers descriptors the suite has no peer for (regular files,
/dev/null, this process's stdio) and
what becomes of descriptors the transport does not own.  Each test runs on
the reactor and on the coroutine driver.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.descriptors import no_new_fds
from weft.drivers import open_runtime
from weft.drivers.reactor import Reactor
from weft.drivers.reactor._pollers import EpollPoller, Poller, PollPoller, SelectorPoller
from weft.drivers.testing import RecordingProtocol

#: This file tests the Reactor class's descriptors, on the drivers that are
#: one: chosen by name, not by capability.
pytestmark = pytest.mark.drivers(only=("reactor", "coroutine"))


@pytest.fixture
def reactor(driver: str) -> Iterator[Reactor]:
    with no_new_fds():
        made = open_runtime(driver)
        if not isinstance(made, Reactor):
            made.close()
            raise TypeError(f"the {driver} driver is no Reactor: this file tests the Reactor class")
        yield made
        made.close()


def turns(reactor: Reactor, count: int) -> None:
    """Run ``count`` turns of the loop (a call_soon chain moves one turn per call)."""
    done = [0]

    def tick() -> None:
        done[0] += 1
        if done[0] < count:
            reactor.call_soon(tick)

    reactor.call_soon(tick)
    assert reactor.run_until(lambda: done[0] >= count, TIMEOUT)


# --------------------------------------------- descriptors epoll refuses


@pytest.mark.parametrize("poller_kind", [EpollPoller, PollPoller, SelectorPoller])
def test_a_regular_file_is_always_ready_until_its_reader_goes(
    poller_kind: type[Poller], tmp_path: Path
) -> None:
    """A reader on a regular file (which epoll refuses with EPERM) is called on
    every turn, with the loop never sleeping, on every poller; once removed it
    is never called again."""
    path = tmp_path / "data"
    path.write_bytes(b"x")
    with no_new_fds(), Reactor(poller_kind()) as reactor, path.open("rb") as file:
        calls = [0]

        def readable() -> None:
            calls[0] += 1

        reactor.add_reader(file.fileno(), readable)
        # No timer and no other fd: a loop that slept in poll would never wake.
        assert reactor.run_until(lambda: calls[0] >= 5, TIMEOUT)
        assert reactor.remove_reader(file.fileno())
        seen = calls[0]
        turns(reactor, 3)
        assert calls[0] == seen


def test_dev_null_takes_a_writer(reactor: Reactor) -> None:
    """A writer on /dev/null (refused by epoll too) is called every turn until removed."""
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        calls = [0]

        def writable() -> None:
            calls[0] += 1

        reactor.add_writer(fd, writable)
        assert reactor.run_until(lambda: calls[0] >= 3, TIMEOUT)
        assert reactor.remove_writer(fd)
        seen = calls[0]
        turns(reactor, 3)
        assert calls[0] == seen
    finally:
        os.close(fd)


def test_connect_pipes_reads_a_regular_file_to_eof(reactor: Reactor, tmp_path: Path) -> None:
    """A protocol over a regular file (stdin redirected from a file) and /dev/null
    gets the whole file, in order, then EOF, then a clean end; both fds are closed."""
    content = random.Random(1).randbytes(300 * 1024)
    path = tmp_path / "input"
    path.write_bytes(content)
    protocol = RecordingProtocol()
    reactor.connect_pipes(lambda: protocol, os.open(path, os.O_RDONLY), os.open(os.devnull, os.O_WRONLY))
    assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
    assert protocol.received == content
    assert protocol.names[-2:] == ["eof_received", "connection_lost"]
    assert protocol.events[-1] == ("connection_lost", None)


def test_connect_pipes_writes_a_regular_file(reactor: Reactor, tmp_path: Path) -> None:
    """Writing to a regular file (stdout redirected to one) stores every byte, in order."""
    content = random.Random(2).randbytes(1024 * 1024)
    path = tmp_path / "output"
    protocol = RecordingProtocol(keep_open_on_eof=True)
    write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    transport = reactor.connect_pipes(lambda: protocol, os.open(os.devnull, os.O_RDONLY), write_fd)
    for offset in range(0, len(content), 10_000):
        transport.write(content[offset : offset + 10_000])
    transport.close()
    assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
    assert path.read_bytes() == content


# ----------------------------------------- descriptors the caller keeps


def test_fds_it_does_not_close_get_their_blocking_mode_back(reactor: Reactor) -> None:
    """With close_fds=False the fds are non-blocking while the connection runs,
    and afterwards are still open, each in the blocking mode it had before."""
    peer_to_us, us_write = os.pipe()
    us_read, peer_from_us = os.pipe()
    os.set_blocking(us_write, False)  # one starts non-blocking, one blocking
    try:
        protocol = RecordingProtocol()
        transport = reactor.connect_pipes(lambda: protocol, us_read, us_write, close_fds=False)
        assert not os.get_blocking(us_read)
        transport.close()
        assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
        assert os.get_blocking(us_read)
        assert not os.get_blocking(us_write)
        os.write(us_write, b"still open")
        assert os.read(peer_to_us, 100) == b"still open"
    finally:
        for fd in (peer_to_us, us_write, us_read, peer_from_us):
            os.close(fd)


def test_write_eof_on_a_kept_pipe_sends_eof_and_keeps_the_number(reactor: Reactor) -> None:
    """write_eof without close_fds still gives the reader EOF (after the data), and
    the write fd stays open, on /dev/null, for its owner to close."""
    peer_read, us_write = os.pipe()
    us_read, peer_write = os.pipe()
    try:
        protocol = RecordingProtocol(keep_open_on_eof=True)
        transport = reactor.connect_pipes(lambda: protocol, us_read, us_write, close_fds=False)
        transport.write(b"last words")
        transport.write_eof()
        assert reactor.run_until(lambda: transport.get_write_buffer_size() == 0, TIMEOUT)
        os.set_blocking(peer_read, False)  # no EOF must fail the test, not hang it
        assert os.read(peer_read, 100) == b"last words"
        assert os.read(peer_read, 100) == b""  # EOF: nobody holds the write end now
        assert os.path.samestat(os.fstat(us_write), os.stat(os.devnull))
        transport.close()
        assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
    finally:
        for fd in (peer_read, us_write, us_read, peer_write):
            os.close(fd)


# ------------------------------------------------------------------ stdio

# A child that serves one echo connection over its stdio, reports on stderr
# what its fds 0 and 1 have become, and (with "--linger") stays alive until
# SIGUSR1, so that its peer can tell the EOF came from the release, not the exit.
STDIO_ECHO = """
import os, signal, sys
from weft.drivers.reactor import Reactor
from weft.protocols import EchoProtocol

class Echo(EchoProtocol):
    lost = False

    def connection_lost(self, exc):
        self.lost = True

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
protocol = Echo()
with Reactor() as reactor:
    reactor.connect_stdio(lambda: protocol)
    reactor.run_until(lambda: protocol.lost, 30)
null = os.stat(os.devnull)
released = [os.path.samestat(os.fstat(fd), null) for fd in (0, 1)]
blocking = [os.get_blocking(fd) for fd in (0, 1)]
print("released", released, "blocking", blocking, file=sys.stderr, flush=True)
if "--linger" in sys.argv:
    signal.sigwait({signal.SIGUSR1})
"""


def test_stdio_serves_a_file_on_stdin_and_releases_both_at_the_end(tmp_path: Path) -> None:
    """A process serving over connect_stdio with a regular file as stdin (`weft
    --stdio < file`) echoes the whole file; at the end fds 0 and 1 are released
    to /dev/null (so the peer saw EOF) and are blocking again."""
    content = random.Random(3).randbytes(200 * 1024)
    path = tmp_path / "input"
    path.write_bytes(content)
    with path.open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-c", STDIO_ECHO], stdin=stdin, capture_output=True, timeout=60, check=False
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == content
    assert b"released [True, True] blocking [True, True]" in result.stderr


def test_stdio_release_gives_the_peer_eof_while_the_process_lives(reactor: Reactor) -> None:
    """Serving over connect_stdio, the end of the connection reaches the peer as
    EOF at once, not when the serving process exits: the child is provably still
    alive (waiting for a signal) when its peer's connection_lost runs."""
    peer = RecordingProtocol()
    report = RecordingProtocol()
    child = reactor.spawn_process(
        lambda: peer, [sys.executable, "-c", STDIO_ECHO, "--linger"], stderr=lambda: report
    )
    peer.transport.write(b"ping")
    peer.transport.write_eof()
    assert reactor.run_until(lambda: peer.lost and report.received.endswith(b"\n"), TIMEOUT)
    assert child.returncode is None
    assert peer.received == b"ping"
    assert peer.events[-1] == ("connection_lost", None)
    assert b"released [True, True]" in report.received
    child.send_signal(signal.SIGUSR1)
    assert reactor.run_until(lambda: child.returncode is not None and report.lost, TIMEOUT)
    assert child.returncode == 0
