"""Connecting to a UNIX-domain stream socket whose listener's backlog may be full.

A TCP ``connect`` on a non-blocking socket says ``EINPROGRESS`` and goes on
in the background: the socket polls writable once it has connected or
failed, and ``SO_ERROR`` says which.  A UNIX-domain ``connect`` does not go
on: when the listener's accept queue is full, Linux fails it with
``EAGAIN`` and the socket is left as it was, unconnected.  An unconnected
UNIX socket polls writable at once, with ``SO_ERROR`` 0, so the usual
"``EAGAIN``/``EINPROGRESS``, wait for writability, check ``SO_ERROR``" dance
declares connected a socket that never was.  asyncio's ``sock_connect`` (and
so ``create_unix_connection``) and Trio's ``socket.connect`` do exactly
that.  Twisted's ``connectUNIX`` would call ``connect`` again once the
socket polls writable, but it watches for reading too, and the hang-up an
unconnected UNIX socket polls with ends the attempt at once, reported as
a failed connect whose reason is ``ConnectionDone`` ("closed cleanly").

Here the connect is simply tried again: :class:`UnixConnect` makes one
non-blocking attempt at a time (:meth:`UnixConnect.attempt`), and, while
the backlog is full, says how long to wait before the next
(:meth:`UnixConnect.next_delay`: :data:`FIRST_RETRY` doubling up to
:data:`LAST_RETRY`, so a listener that accepts soon is reached soon, and
one that does not costs at most a few dozen wake-ups a second).  A connect
only counts as made when the socket has a peer (``getpeername``), never on
``SO_ERROR`` alone.  Whoever runs the attempts keeps the deadline; when it
passes while the backlog is still full, :meth:`UnixConnect.timeout_error`
is a :class:`ListenerBacklogFullError` naming the path.

The attempts are run three ways, one per kind of driver:
:class:`RetriedUnixConnect` on a loop's ``call_later`` (the reactor, the
Twisted driver), :func:`connect_unix_socket` in a coroutine (asyncio,
weft's asyncio event loop, Trio: whatever ``sleep`` it is given), and
:func:`connect_unix_blocking` on a thread of its own (the blocking driver).
"""

from __future__ import annotations

import enum
import errno
import os
import socket
from collections.abc import Awaitable, Callable

from weft.protocols.contract import TimerHandle
from weft.protocols.errors import InvalidStateError, WeftError

__all__ = [
    "FIRST_RETRY",
    "LAST_RETRY",
    "ListenerBacklogFullError",
    "RetriedUnixConnect",
    "UnixConnect",
    "UnixConnectState",
    "connect_unix_blocking",
    "connect_unix_socket",
]

#: The first wait, in seconds, before trying a full backlog again; each
#: further wait doubles, up to :data:`LAST_RETRY`.
FIRST_RETRY = 0.001

#: The longest wait between two tries of a full backlog, in seconds.
LAST_RETRY = 0.05

#: What ``connect`` on a non-blocking UNIX socket answers when it did not
#: connect and should be tried again: ``EAGAIN`` (the listener's backlog is
#: full, on Linux), and, on systems whose UNIX connects can be under way,
#: ``EINPROGRESS``/``EALREADY`` (trying again then answers ``EISCONN`` once
#: it is done).
_TRY_AGAIN = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINPROGRESS, errno.EALREADY})

#: What ``connect`` answers for a socket that is connected (now, or already).
_CONNECTED = frozenset({0, errno.EISCONN})


class ListenerBacklogFullError(WeftError, TimeoutError):
    """A UNIX-domain connect ran out of time while the listener's accept backlog stayed full.

    The server at the path is alive but is not accepting connections as
    fast as they come (or at all).  A ``TimeoutError`` too, as every
    connect that runs out of time is; ``errno`` is ``EAGAIN``, what the
    kernel answered each try.
    """


class UnixConnectState(enum.Enum):
    """Where one UNIX connect stands."""

    #: Not tried yet.
    NEW = "new"
    #: Tried, and the listener's backlog was full (or the connect under way):
    #: to be tried again after :meth:`UnixConnect.next_delay`.
    WAITING = "waiting"
    #: Connected: the socket has a peer.
    CONNECTED = "connected"
    #: Failed with an error other than a full backlog (no such file, refused).
    FAILED = "failed"


#: Where each state may go next (:meth:`UnixConnect.attempt` moves it).
_TRANSITIONS: dict[UnixConnectState, frozenset[UnixConnectState]] = {
    UnixConnectState.NEW: frozenset(
        {UnixConnectState.WAITING, UnixConnectState.CONNECTED, UnixConnectState.FAILED}
    ),
    UnixConnectState.WAITING: frozenset(
        {UnixConnectState.WAITING, UnixConnectState.CONNECTED, UnixConnectState.FAILED}
    ),
    UnixConnectState.CONNECTED: frozenset(),
    UnixConnectState.FAILED: frozenset(),
}


class UnixConnect:
    """One connect of a non-blocking UNIX stream socket to ``path``, tried
    until it connects or fails (see the module docstring).

    It holds no timer and no deadline: its runner does.
    """

    def __init__(self, path: str) -> None:
        #: Where it connects to, as the messages name it.
        self.path = path
        self.state = UnixConnectState.NEW
        self._delay = FIRST_RETRY

    def _move(self, state: UnixConnectState) -> None:
        if state not in _TRANSITIONS[self.state]:
            raise InvalidStateError(f"a UNIX connect cannot go from {self.state.value} to {state.value}")
        self.state = state

    def attempt(self, sock: socket.socket) -> bool:
        """Try once: True when ``sock`` is connected (it has a peer), False
        when it is to be tried again; the ``OSError`` when the connect failed
        for good (``FileNotFoundError``, ``ConnectionRefusedError``...: the
        kernel's message, which the caller puts in context as it does its
        other errors)."""
        code = sock.connect_ex(self.path)
        if code in _CONNECTED:
            # Trust nothing but a peer: a UNIX socket that is not connected
            # polls writable and has no pending error, just as one that is.
            try:
                sock.getpeername()
            except OSError as exc:
                if exc.errno != errno.ENOTCONN:
                    return self._failed(exc.errno or errno.ENOTCONN)
                code = errno.EAGAIN  # not connected after all: try again
            else:
                self._move(UnixConnectState.CONNECTED)
                return True
        if code in _TRY_AGAIN:
            self._move(UnixConnectState.WAITING)
            return False
        return self._failed(code)

    def _failed(self, code: int) -> bool:
        self._move(UnixConnectState.FAILED)
        # OSError(errno, ...) builds the matching subclass (FileNotFoundError...).
        raise OSError(code, os.strerror(code))

    def next_delay(self) -> float:
        """How long to wait before the next try: doubling from
        :data:`FIRST_RETRY` up to :data:`LAST_RETRY`."""
        delay = self._delay
        self._delay = min(self._delay * 2, LAST_RETRY)
        return delay

    def timeout_error(self, timeout: float) -> TimeoutError:
        """The error of this connect when ``timeout`` seconds have passed: a
        :class:`ListenerBacklogFullError` when the backlog was full at the last
        try, else the plain ``TimeoutError`` every driver gives."""
        if self.state is UnixConnectState.WAITING:
            return ListenerBacklogFullError(
                errno.EAGAIN,
                f"cannot connect to {self.path}: the listener's accept backlog stayed full for "
                f"{timeout:g} s (the server is not accepting: have it accept sooner or listen "
                "with a larger backlog, or connect with a longer timeout)",
            )
        return TimeoutError(errno.ETIMEDOUT, f"cannot connect to {self.path}: no answer in {timeout:g} s")


class RetriedUnixConnect:
    """A :class:`UnixConnect` run on a loop's timers: the first try now (in
    :meth:`start`), the next ones on ``call_later``; ``connected(sock)`` or
    ``failed(error)`` once it ends.  The caller keeps the deadline: when it
    passes, the caller calls :meth:`cancel`, then closes the socket, which
    stays the caller's."""

    def __init__(
        self,
        sock: socket.socket,
        path: str,
        call_later: Callable[..., TimerHandle],
        connected: Callable[[socket.socket], object],
        failed: Callable[[OSError], object],
    ) -> None:
        self.sock = sock
        self.connect = UnixConnect(path)
        self._call_later = call_later
        self._connected = connected
        self._failed = failed
        self._retry: TimerHandle | None = None

    def start(self) -> None:
        """The first try."""
        self._try()

    def _try(self) -> None:
        self._retry = None
        try:
            done = self.connect.attempt(self.sock)
        except OSError as exc:
            self._failed(exc)
            return
        if done:
            self._connected(self.sock)
        else:
            self._retry = self._call_later(self.connect.next_delay(), self._try)

    def cancel(self) -> None:
        """Try no more."""
        retry, self._retry = self._retry, None
        if retry is not None:
            retry.cancel()


async def connect_unix_socket(
    sock: socket.socket, connect: UnixConnect, sleep: Callable[[float], Awaitable[object]]
) -> None:
    """Connect the non-blocking ``sock`` with ``connect``'s tries, awaiting
    ``sleep(delay)`` (``asyncio.sleep``, ``trio.sleep``) between them.

    Returns once connected; raises the connect's ``OSError``.  It has no
    deadline of its own: the caller's timeout cancels it (and reads
    ``connect.timeout_error`` for the error to give).
    """
    while not connect.attempt(sock):
        await sleep(connect.next_delay())


def connect_unix_blocking(
    sock: socket.socket,
    connect: UnixConnect,
    timeout: float,
    now: Callable[[], float],
    wait: Callable[[float], object],
) -> None:
    """Connect the non-blocking ``sock`` with ``connect``'s tries, calling
    ``wait(delay)`` (on a thread of its own) between them, for at most
    ``timeout`` seconds of ``now()``.

    Returns once connected; raises the connect's ``OSError``, or its
    :meth:`~UnixConnect.timeout_error` when the time is up.
    """
    deadline = now() + timeout
    while not connect.attempt(sock):
        left = deadline - now()
        if left <= 0:
            raise connect.timeout_error(timeout)
        wait(min(connect.next_delay(), left))
