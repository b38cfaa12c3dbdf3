"""Connecting to a name: a bounded pool for the lookups, and Happy Eyeballs (RFC 8305) for the attempts.

The reactor's ``connect_tcp`` and the Twisted driver's make their attempts
differently (a non-blocking ``connect`` the reactor watches; Twisted's
``connectTCP``), but around the attempts they do the same, and
:class:`AddressByAddress` is that part:

* A literal address is tried at once.  A name is looked up with
  ``getaddrinfo`` (which blocks) on :data:`RESOLVER`, one pool of at most
  :data:`RESOLVER_THREADS` daemon threads shared by every runtime in the
  process: a burst of connects to names queues its lookups instead of
  starting a thread each, and a lookup that hangs never holds up the
  program's exit.  (asyncio gives each loop an executor; one pool per
  process bounds the threads however many runtimes there are.)
* The addresses are tried in the order RFC 8305 section 4 gives them:
  families interleaved, starting with the family of ``getaddrinfo``'s
  first answer (IPv6 first where the host can use it, since
  ``getaddrinfo`` sorts by RFC 6724), e.g. ``v6, v4, v6, v4...``.
* With a ``delay`` (Happy Eyeballs; :data:`HAPPY_EYEBALLS_DELAY`, 250 ms,
  as Trio, and asyncio's ``happy_eyeballs_delay`` when given), the next
  attempt starts ``delay`` seconds after the previous one or as soon as
  one fails, whichever comes first, while the earlier ones go on; the first
  to connect wins and the subclass closes the others.  A black-holed
  address then costs ``delay``, not the whole timeout.  With ``delay``
  ``None`` the addresses are tried one after another.
* When every attempt has failed the connect fails with the last error, the
  target named in the message.  The overall timeout is the subclass's.

A subclass makes an attempt (:meth:`~AddressByAddress._attempt`) and says
how it ended (:meth:`~AddressByAddress.address_failed`,
:meth:`~AddressByAddress.address_won`), and fails the connect
(:meth:`~AddressByAddress.fail`).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

from weft.drivers._core.futures import Future
from weft.drivers._core.socket_binding import unique_addresses
from weft.protocols.contract import TimerHandle

__all__ = [
    "HAPPY_EYEBALLS_DELAY",
    "RESOLVER",
    "RESOLVER_THREADS",
    "AddressByAddress",
    "ResolverPool",
    "interleaved",
]

logger = logging.getLogger("weft.drivers._core")

#: ``(family, address)``: one address to try, as ``socket.connect`` takes it.
Address = tuple[int, Any]

#: RFC 8305's "Connection Attempt Delay": how long an attempt has before
#: the next address is tried beside it (the RFC recommends 250 ms).
HAPPY_EYEBALLS_DELAY = 0.25

#: At most this many lookups run at once in the process (asyncio's default
#: executor's size).
RESOLVER_THREADS = min(32, (os.cpu_count() or 1) + 4)


class ResolverPool:
    """A bounded pool of daemon threads for blocking lookups.

    :meth:`submit` queues a call; a thread is started for it only while
    fewer than ``max_threads`` exist, and threads live on, waiting for the
    next call.  Daemon threads, unlike ``concurrent.futures``' workers: a
    ``getaddrinfo`` stuck on a dead DNS server must not hold up the exit.
    """

    def __init__(self, max_threads: int = RESOLVER_THREADS) -> None:
        self.max_threads = max_threads
        self._calls: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    @property
    def threads(self) -> int:
        """How many threads the pool has started (never more than ``max_threads``)."""
        return self._threads

    def submit(self, call: Callable[[], object]) -> None:
        """Run ``call()`` on one of the pool's threads (its exceptions are its own to catch)."""
        with self._lock:
            start = self._idle == 0 and self._threads < self.max_threads
            if start:
                self._threads += 1
            else:
                self._idle -= 1  # (may go below 0: a busy thread takes it when done)
        self._calls.put(call)
        if start:
            threading.Thread(target=self._work, name="weft-resolve", daemon=True).start()

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            try:
                call()
            except Exception:
                # A call's errors are its own; one that escapes (a loop
                # closed under a lookup) must not end the thread, which
                # would lower the pool's bound for good.
                logger.exception("a call on the resolver pool raised")
            finally:
                with self._lock:
                    self._idle += 1


#: The pool every driver's lookups share.
RESOLVER = ResolverPool()


def interleaved(addresses: list[Address]) -> list[Address]:
    """``addresses`` with their families alternating, in RFC 8305's order:
    the first family first, each family's addresses in their own order."""
    by_family: dict[int, list[Address]] = {}
    for address in addresses:
        by_family.setdefault(address[0], []).append(address)
    if len(by_family) < 2:
        return list(addresses)
    queues = list(by_family.values())
    ordered: list[Address] = []
    while queues:
        for each in queues:
            ordered.append(each.pop(0))
        queues = [each for each in queues if each]
    return ordered


class AddressByAddress:
    """One connect, to the addresses of ``target`` (see the module docstring).

    A subclass sets ``result``, the future the connect settles.
    ``call_later`` (the runtime's) is needed when ``delay`` is not ``None``.
    """

    result: Future[Any]

    def __init__(
        self,
        call_soon_threadsafe: Callable[..., object],
        target: str,
        *,
        call_later: Callable[..., TimerHandle] | None = None,
        delay: float | None = None,
        resolver: ResolverPool = RESOLVER,
    ) -> None:
        self._call_soon_threadsafe = call_soon_threadsafe
        self._call_later = call_later
        self._delay = delay if call_later is not None else None
        self._resolver = resolver
        #: ``host:port`` or a path: what the error messages name.
        self.target = target
        #: The addresses not tried yet, in the order they will be.
        self.addresses: list[Address] = []
        #: Each failed address's error, in order.
        self.errors: list[OSError] = []
        # Attempts started and not yet ended; the timer that starts the next.
        self._in_flight = 0
        self._stagger: TimerHandle | None = None

    def start_tcp(self, host: str, port: int) -> None:
        """Try ``host:port`` at once if ``host`` is an IP address, else look it up first."""
        if _is_literal(host):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.try_addresses([(family, (host, port))])
        else:
            self.resolve(host, port)

    def start_unix(self, path: str) -> None:
        """Try the UNIX-domain socket at ``path``."""
        self.try_addresses([(socket.AF_UNIX, path)])

    def resolve(self, host: str, port: int) -> None:
        """Look ``host`` up on the resolver pool, then try what it resolves to
        (or fail with the lookup's error)."""
        call_soon_threadsafe = self._call_soon_threadsafe

        def lookup() -> None:
            try:
                infos = self._getaddrinfo(host, port)
            except OSError as exc:
                call_soon_threadsafe(self.fail, exc)
            else:
                found = [(info[0], info[4]) for info in unique_addresses(infos)]
                call_soon_threadsafe(self.try_addresses, found)

        self._resolver.submit(lookup)

    def _getaddrinfo(self, host: str, port: int) -> list[Any]:
        """``getaddrinfo`` for a stream (on a pool thread; a test may stand in for it)."""
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)

    def try_addresses(self, addresses: list[Address]) -> None:
        """Try ``addresses``, families interleaved (unless the connect is over already)."""
        if self.result.done():
            return
        self.addresses = interleaved(addresses)
        self.next_address()

    def next_address(self) -> None:
        """Start the next attempt now; with none left and none under way,
        fail with the last one's error."""
        stagger, self._stagger = self._stagger, None
        if stagger is not None:
            stagger.cancel()
        if self.result.done():
            return
        if not self.addresses:
            if self._in_flight == 0:
                last = self.errors[-1] if self.errors else OSError(errno.EADDRNOTAVAIL, "no address")
                # OSError(errno, ...) builds the matching subclass (ConnectionRefusedError...).
                self.fail(OSError(last.errno, f"cannot connect to {self.target}: {last.strerror}"))
            return
        family, address = self.addresses.pop(0)
        self._in_flight += 1
        if self.addresses and self._delay is not None and self._call_later is not None:
            # Armed before the attempt: one that fails at once starts the
            # next itself, cancelling this.
            self._stagger = self._call_later(self._delay, self.next_address)
        self._attempt(family, address)

    def address_failed(self, error: OSError) -> None:
        """(subclass) an attempt failed: the next address starts now."""
        self._in_flight -= 1
        self.errors.append(error)
        self.next_address()

    def address_won(self) -> None:
        """(subclass) an attempt connected: no other starts (the subclass closes those under way)."""
        self._in_flight -= 1
        self.addresses.clear()
        stagger, self._stagger = self._stagger, None
        if stagger is not None:
            stagger.cancel()

    def stop_trying(self) -> None:
        """The connect is over (failed, timed out): start nothing more."""
        self.addresses.clear()
        stagger, self._stagger = self._stagger, None
        if stagger is not None:
            stagger.cancel()

    def timeout_error(self, timeout: float) -> TimeoutError:
        """The error of a connect that ran out of time."""
        return TimeoutError(errno.ETIMEDOUT, f"cannot connect to {self.target}: no answer in {timeout:g} s")

    def _attempt(self, family: int, address: Any) -> None:
        """Start connecting to ``address``; report how it ends with
        :meth:`address_failed` or :meth:`address_won`."""
        raise NotImplementedError

    def fail(self, error: BaseException) -> None:
        """End the connect with ``error`` (and call :meth:`stop_trying`)."""
        raise NotImplementedError


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
