"""Connecting to ``host:port`` on the blocking driver: Happy Eyeballs (RFC 8305) with a thread per attempt.

:class:`TCPConnect` is :class:`~weft.drivers._core.connecting.AddressByAddress`
run on the scheduler thread: the name looked up on weft's shared resolver
pool, the addresses in RFC 8305's order, the next attempt after the delay
or at once when one fails, the overall timeout on the scheduler's clock.
Each attempt is a short-lived thread that starts a non-blocking ``connect``
and waits in ``poll`` for it to end, so there are never more connect
threads than attempts under way.

The scheduler thread decides; an attempt thread reports (``0`` or the
errno).  Nobody closes a socket while its thread still polls it (a
descriptor closed under ``poll`` may be another connection's by the time
the kernel looks).  To stop the attempts that lost, or all of them when the
connect fails or times out, the scheduler closes one end of a socket pair
every attempt thread polls beside its socket; each wakes and closes its own
socket (the last one the pair), without waiting for a scheduler turn that
may never come.
Each thread's ``poll`` also has its own bound, a moment past the connect's
timeout, so no thread outlives a runtime closed under it for long.
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from weft.drivers._core.connecting import AddressByAddress
from weft.drivers._core.futures import Future
from weft.drivers._core.timers import Timer
from weft.drivers.blocking._channels import SocketChannel
from weft.protocols.contract import Transport

if TYPE_CHECKING:
    from weft.drivers.blocking._plumbing import PoolRuntime

__all__ = ["TCPConnect"]

#: How long past the connect's timeout an attempt thread still waits for
#: the scheduler to stop it (it stops it at the timeout, when it runs).
_GRACE = 1.0


class TCPConnect(AddressByAddress):
    """One connect to ``host:port``; :meth:`start` it on the scheduler thread."""

    def __init__(
        self,
        runtime: PoolRuntime,
        factory: Callable[[], Any],
        result: Future[Transport],
        target: str,
        timeout: float,
        delay: float | None,
    ) -> None:
        super().__init__(runtime.call_soon_threadsafe, target, call_later=runtime.call_later, delay=delay)
        self.runtime = runtime
        self.factory = factory
        self.result = result
        self.timeout = timeout
        #: The attempts under way (their threads polling), by socket.
        self.socks: set[socket.socket] = set()
        # Attempt threads not yet done with their socket; the pair they all
        # poll (its write end closed to wake them), made with the first
        # attempt; the lock the threads and the scheduler share them under.
        self._lock = threading.Lock()
        self._threads = 0
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._timer: Timer | None = None
        self._deadline = math.inf

    def start(self, host: str, port: int) -> None:
        """Arm the timeout and look ``host`` up (or try it, an IP address)."""
        self._deadline = self.runtime.now() + self.timeout + _GRACE
        self._timer = self.runtime.call_later(self.timeout, self.expire)
        self.start_tcp(host, port)

    def _attempt(self, family: int, address: Any) -> None:
        try:
            if self._wake is None:
                self._wake = socket.socketpair()
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors, a family the host lacks
            self.address_failed(exc)
            return
        sock.setblocking(False)
        with self._lock:
            self.socks.add(sock)
            self._threads += 1
        woken = self._wake[0]
        thread = threading.Thread(
            target=self._wait, args=(sock, address, woken), name=f"weft-connect {self.target}", daemon=True
        )
        thread.start()

    def _wait(self, sock: socket.socket, address: Any, woken: socket.socket) -> None:
        """(attempt thread) Connect ``sock`` and report how it ended: 0, the
        errno, or ``None`` when the bound passed first; given up on (woken),
        close it here, so that no socket waits for a scheduler turn that may
        never come (a runtime closed just after)."""
        code: int | None = sock.connect_ex(address)
        if code in (errno.EINPROGRESS, errno.EAGAIN):
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
            poller.register(woken, select.POLLIN)
            remaining = self._deadline - self.runtime.now()
            bound = None if math.isinf(remaining) else max(0, math.ceil(remaining * 1000))
            try:
                ready = {fd for fd, _ in poller.poll(bound)}
            except OSError as exc:  # (not expected: both descriptors are live until reported)
                ready, code = set(), exc.errno
            else:
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if sock.fileno() in ready else None
        with self._lock:
            if sock not in self.socks:
                self._done_with(sock)
                return
        self.runtime.call_soon_threadsafe(self._ended, sock, code)

    def _ended(self, sock: socket.socket, code: int | None) -> None:
        """An attempt thread reported: the socket's fate, and the next step."""
        with self._lock:
            mine = sock in self.socks and not self.result.done()
            self.socks.discard(sock)
            if not mine or code != 0:
                self._done_with(sock)  # given up on meanwhile, or failed
            else:
                self._threads -= 1
        if not mine:
            return
        if code is None:  # its poll's own bound: the timeout is due
            self.expire()
        elif code:
            self.address_failed(OSError(code, os.strerror(code)))
        else:
            self.address_won()
            self._give_up_attempts()
            self._connected(sock)

    def _done_with(self, sock: socket.socket) -> None:
        """(under the lock) An attempt's thread is done and its socket not
        wanted: close it, and the wake-up pair once no thread polls it."""
        sock.close()
        self._threads -= 1
        if self._threads == 0 and not self.socks and self._wake is not None:
            for end in self._wake:
                end.close()
            self._wake = None

    def _connected(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = self.factory()
        except Exception as exc:
            sock.close()
            self.result.set_exception(exc)
            return
        transport = self.runtime._transport(protocol, SocketChannel(sock))
        transport.start()
        self.result.set_result(transport)

    def _give_up_attempts(self) -> None:
        """Stop the timeout and wake every attempt thread still waiting (each
        closes its socket as it wakes)."""
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self.socks.clear()
            if self._wake is not None:
                self._wake[1].close()  # the threads' end reads end-of-file: each wakes
                if self._threads == 0:
                    self._wake[0].close()
                    self._wake = None

    def expire(self) -> None:
        """The timeout passed."""
        self.fail(self.timeout_error(self.timeout))

    def fail(self, error: BaseException) -> None:
        if self.result.done():
            return
        self.stop_trying()
        self._give_up_attempts()
        self.result.set_exception(error)
