"""The shared UNIX connect (weft.drivers._core.unix_connecting): tries, backoff, and what counts as connected.

Its socket is a stand-in that answers ``connect_ex`` and ``getpeername``
as told, and time is a FakeClock, so each case is exact.  The drivers'
use of it, over real sockets, is held to the shipped connect checks
(tests/conformance/test_connect_conformance.py).
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.backlog import full_backlog
from weft.drivers import ListenerBacklogFullError
from weft.drivers._core.unix_connecting import (
    FIRST_RETRY,
    LAST_RETRY,
    RetriedUnixConnect,
    UnixConnect,
    UnixConnectState,
    connect_unix_blocking,
)
from weft.drivers.testing import FakeClock


class ScriptedSocket:
    """Answers each ``connect_ex`` with the next code of its script; has a
    peer only when told."""

    def __init__(self, *codes: int, peer: bool = True) -> None:
        self.codes = list(codes)
        self.peer = peer
        self.tries = 0

    def connect_ex(self, _address: Any) -> int:
        self.tries += 1
        return self.codes.pop(0)

    def getpeername(self) -> str:
        if not self.peer:
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        return "/the/listener"


def never(*args: Any) -> None:
    """A callback that must not be called."""
    raise AssertionError(f"called with {args!r}")


def scripted(*codes: int, peer: bool = True) -> Any:
    """A ScriptedSocket, typed as the socket it stands in for."""
    return ScriptedSocket(*codes, peer=peer)


def test_the_waits_double_from_one_millisecond_up_to_fifty() -> None:
    """The backoff: 1 ms, doubling each try, never over 50 ms (no busy loop, no long sleep)."""
    connect = UnixConnect("/p")
    delays = [connect.next_delay() for _ in range(10)]
    assert delays[0] == FIRST_RETRY == 0.001
    assert delays[:6] == [0.001, 0.002, 0.004, 0.008, 0.016, 0.032]
    assert delays[6:] == [LAST_RETRY] * 4


def test_eagain_means_try_again_and_a_timeout_then_says_the_backlog_stayed_full() -> None:
    """EAGAIN is no failure: the connect waits; at its deadline the error is
    ListenerBacklogFullError (a TimeoutError) naming the path and the backlog."""
    connect = UnixConnect("/run/app.sock")
    assert connect.attempt(scripted(errno.EAGAIN)) is False
    assert connect.state is UnixConnectState.WAITING
    error = connect.timeout_error(0.5)
    assert isinstance(error, ListenerBacklogFullError)
    assert isinstance(error, TimeoutError)
    assert error.errno == errno.EAGAIN
    assert "/run/app.sock" in str(error)
    assert "backlog stayed full for 0.5 s" in str(error)


def test_a_timeout_before_any_try_is_the_plain_timeout_error() -> None:
    """Only a connect that found the backlog full blames the backlog."""
    error = UnixConnect("/p").timeout_error(2)
    assert type(error) is TimeoutError
    assert error.errno == errno.ETIMEDOUT


def test_connected_only_with_a_peer() -> None:
    """connect_ex saying 0 is not enough: without a peer (ENOTCONN) the socket
    is not connected and the connect is tried again; with one, it is done."""
    connect = UnixConnect("/p")
    assert connect.attempt(scripted(0, peer=False)) is False
    states = [connect.state]
    assert connect.attempt(scripted(0)) is True
    states.append(connect.state)
    assert states == [UnixConnectState.WAITING, UnixConnectState.CONNECTED]


def test_another_error_fails_for_good_as_its_os_error() -> None:
    """No such file is FileNotFoundError, refused is ConnectionRefusedError; the connect is over."""
    connect = UnixConnect("/p")
    with pytest.raises(FileNotFoundError):
        connect.attempt(scripted(errno.ENOENT))
    assert connect.state is UnixConnectState.FAILED
    with pytest.raises(ConnectionRefusedError):
        UnixConnect("/p").attempt(scripted(errno.ECONNREFUSED))


def test_retried_on_a_clock_waits_between_tries_and_connects_once_there_is_room() -> None:
    """On a loop's timers the tries are spaced by the backoff (1, 2, 4 ms), not
    made back to back; the first that connects ends it."""
    clock = FakeClock()
    sock = scripted(errno.EAGAIN, errno.EAGAIN, errno.EAGAIN, 0)
    connected: list[Any] = []
    retried = RetriedUnixConnect(sock, "/p", clock.call_later, connected.append, never)
    retried.start()
    assert sock.tries == 1
    assert [timer.when() for timer in clock.pending()] == [0.001]  # one timer, no try before it
    for wait, tries in ((0.001, 2), (0.002, 3), (0.004, 4)):
        assert connected == []
        clock.advance(wait)
        assert sock.tries == tries
    assert connected == [sock]
    assert clock.pending() == []


def test_retried_on_a_clock_stops_when_cancelled() -> None:
    """cancel() (the deadline passed) leaves no timer behind."""
    clock = FakeClock()
    sock = scripted(*[errno.EAGAIN] * 10)
    retried = RetriedUnixConnect(sock, "/p", clock.call_later, never, never)
    retried.start()
    retried.cancel()
    clock.advance(1)
    assert sock.tries == 1
    assert clock.pending() == []


def test_retried_on_a_clock_reports_a_failure() -> None:
    """An error other than a full backlog goes to ``failed``, once."""
    clock = FakeClock()
    failures: list[OSError] = []
    sock = scripted(errno.EAGAIN, errno.ENOENT)
    RetriedUnixConnect(sock, "/p", clock.call_later, never, failures.append).start()
    clock.advance(1)
    assert [type(error) for error in failures] == [FileNotFoundError]


def test_blocking_tries_until_the_deadline_then_raises_backlog_full() -> None:
    """On a thread: it waits between tries (never past the deadline), then
    raises ListenerBacklogFullError once the timeout has passed."""
    clock = FakeClock()
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    sock = scripted(*[errno.EAGAIN] * 100)
    with pytest.raises(ListenerBacklogFullError, match="/p"):
        connect_unix_blocking(sock, UnixConnect("/p"), 0.1, clock.now, wait)
    assert waits[:3] == [0.001, 0.002, 0.004]
    assert max(waits) <= LAST_RETRY
    assert sum(waits) == pytest.approx(0.1)


def test_blocking_returns_once_connected() -> None:
    """The first try that connects ends the waits."""
    clock = FakeClock()
    sock = scripted(errno.EAGAIN, 0)
    connect_unix_blocking(sock, UnixConnect("/p"), 1.0, clock.now, lambda seconds: clock.advance(seconds))
    assert sock.tries == 2


def test_a_real_full_backlog_says_eagain_and_leaves_the_socket_unconnected(tmp_path: Any) -> None:
    """What the module is for, on this kernel: connect to a full backlog says
    EAGAIN, the socket has no peer; once the listener accepts, the same socket connects."""
    with full_backlog(str(tmp_path / "s")) as backlog:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            connect = UnixConnect(backlog.path)
            assert connect.attempt(sock) is False
            with pytest.raises(OSError, match="not connected") as raised:
                sock.getpeername()
            assert raised.value.errno == errno.ENOTCONN
            backlog.drain()
            connect_unix_blocking(sock, connect, TIMEOUT, lambda: 0.0, never)
            assert sock.getpeername() == backlog.path
        finally:
            sock.close()
