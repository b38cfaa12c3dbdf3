"""A DNS stub resolver as a datagram protocol: a query, a deadline per attempt, retries.

Open it on a datagram endpoint *connected* to one server (``remote_address=
(server, 53)``): the kernel (or the memory network) then lets only that
server's datagrams in, and tells of a closed port.  Each
:meth:`DNSResolverProtocol.resolve` sends an A (or AAAA) query with a fresh
id and waits ``timeout`` seconds, on the transport's clock, for the answer;
without one it sends the same query again, ``attempts`` times in all, then
gives up with :class:`DNSTimeoutError`.  Ids come from ``next_id``, which
the caller hands in (entropy, like time, is handed to protocols: use
``lambda: secrets.randbits(16)``); a datagram whose id, or question, is not
one being waited for is ignored, as is one that is not DNS at all, so a
stray or forged datagram cannot end a lookup that the real answer may
still complete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from weft.protocols.contract import Clock, DatagramProtocol, DatagramTransport, TimerHandle, clock_of
from weft.protocols.dns._errors import (
    DNSError,
    DNSNameError,
    DNSServerError,
    DNSTimeoutError,
    DNSTruncatedError,
)
from weft.protocols.dns._wire import TYPE_A, build_query, encode_name, parse_answer
from weft.protocols.errors import ArgumentError, ClosedResourceError, MalformedFrameError, NotConnectedError

__all__ = ["DEFAULT_ATTEMPTS", "DEFAULT_TIMEOUT", "DNSResolverProtocol", "Lookup"]

#: Seconds each attempt waits for its answer (glibc's default is 5, with 2 attempts).
DEFAULT_TIMEOUT = 2.0
#: Queries sent for one lookup before it fails.
DEFAULT_ATTEMPTS = 3

# Ids drawn before giving up on finding one not already waiting.
_ID_DRAWS = 64

_RCODE_NXDOMAIN = 3


class Lookup:
    """One name being resolved: done once :attr:`addresses` or :attr:`error` is set."""

    def __init__(
        self, name: str, record_type: int, query: bytes, callback: Callable[[Lookup], object]
    ) -> None:
        #: The name looked up, as given.
        self.name = name
        #: The record type asked for (1: A, 28: AAAA).
        self.record_type = record_type
        #: The addresses of the answer (possibly none: the name has no such record).
        self.addresses: list[str] = []
        #: Why it failed, once it has; None while waiting or after success.
        self.error: DNSError | None = None
        #: Queries sent so far.
        self.attempts = 0
        #: Whether it is over.
        self.done = False
        self._query = query
        self._callback = callback
        self._timer: TimerHandle | None = None

    def __repr__(self) -> str:
        state = "waiting" if not self.done else repr(self.error) if self.error else repr(self.addresses)
        return f"<Lookup {self.name!r} {state} after {self.attempts} attempt(s)>"


class DNSResolverProtocol(DatagramProtocol):
    """Resolves names over one connected datagram endpoint (see the module docstring).

    ``resolve(name, callback)`` calls ``callback(lookup)`` once, when the
    :class:`Lookup` is done: with ``lookup.addresses``, or ``lookup.error``
    (:class:`DNSTimeoutError`, :class:`DNSNameError` for NXDOMAIN,
    :class:`DNSServerError`, :class:`DNSTruncatedError`).  ``ignored``
    counts the datagrams that answered nothing waited for.
    """

    transport: DatagramTransport

    def __init__(
        self,
        *,
        next_id: Callable[[], int],
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        if not timeout > 0:
            raise ArgumentError(f"timeout must be a number of seconds > 0, not {timeout!r}")
        if type(attempts) is not int or attempts < 1:
            raise ArgumentError(f"attempts must be an int of at least 1, not {attempts!r}")
        self.timeout = timeout
        self.attempts = attempts
        self.ignored = 0
        self._next_id = next_id
        self._clock: Clock | None = None
        self._waiting: dict[int, Lookup] = {}
        self._ended = False

    # ------------------------------------------------------------- asking

    def resolve(
        self, name: str, callback: Callable[[Lookup], object], *, record_type: int = TYPE_A
    ) -> Lookup:
        """Look ``name`` up; ``callback(lookup)`` runs once it is done.

        Raises at once for a name that cannot be a DNS name
        (:class:`~weft.protocols.errors.UnencodableFrameError`), before
        ``connection_made``
        (:class:`~weft.protocols.errors.NotConnectedError`) and after the
        end (:class:`~weft.protocols.errors.ClosedResourceError`).
        """
        if self._ended:
            raise ClosedResourceError("the resolver's endpoint has ended: make a new resolver")
        if self._clock is None:
            raise NotConnectedError(
                "DNSResolverProtocol.resolve() was used before the resolver was connected: open its "
                "datagram endpoint first (runtime.open_udp(lambda: resolver, remote_address=server)) "
                "and resolve from its connection_made() on"
            )
        encode_name(name)  # refuse a bad name before drawing an id
        query_id = self._free_id()
        lookup = Lookup(
            name, record_type, build_query(name, query_id=query_id, record_type=record_type), callback
        )
        self._waiting[query_id] = lookup
        self._send(query_id, lookup)
        return lookup

    def _free_id(self) -> int:
        for _ in range(_ID_DRAWS):
            query_id = self._next_id() & 0xFFFF
            if query_id not in self._waiting:
                return query_id
        raise ArgumentError(f"next_id gave only ids already waiting, {_ID_DRAWS} times: is it random?")

    def _send(self, query_id: int, lookup: Lookup) -> None:
        clock = self._clock
        if clock is None:  # resolve() refuses before connection_made: never here
            raise ClosedResourceError("the resolver has no endpoint")
        lookup.attempts += 1
        lookup._timer = clock.call_later(self.timeout, self._expired, query_id, lookup)
        self.transport.sendto(lookup._query)

    def _expired(self, query_id: int, lookup: Lookup) -> None:
        if lookup.done:
            return
        if lookup.attempts < self.attempts:
            self._send(query_id, lookup)
            return
        self._finish(
            query_id,
            lookup,
            DNSTimeoutError(
                f"no answer for {lookup.name!r} after {lookup.attempts} attempt(s) of {self.timeout:g} s",
                name=lookup.name,
            ),
        )

    def _finish(self, query_id: int, lookup: Lookup, error: DNSError | None) -> None:
        self._waiting.pop(query_id, None)
        lookup.done = True
        lookup.error = error
        if lookup._timer is not None:
            lookup._timer.cancel()
            lookup._timer = None
        lookup._callback(lookup)

    # ----------------------------------------------------------- callbacks

    def connection_made(self, transport: Any) -> None:
        """Keep the transport and its clock."""
        self.transport = transport
        self._clock = clock_of(transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """An answer: finish the lookup it answers, or ignore it."""
        try:
            answer = parse_answer(data)
        except MalformedFrameError:
            self.ignored += 1
            return
        lookup = self._waiting.get(answer.id)
        if lookup is None or answer.question != (_normal(lookup.name), lookup.record_type):
            self.ignored += 1
            return
        error: DNSError | None = None
        if answer.truncated:
            error = DNSTruncatedError(
                f"the answer for {lookup.name!r} needs TCP (truncated)", name=lookup.name
            )
        elif answer.rcode == _RCODE_NXDOMAIN:
            error = DNSNameError(f"{lookup.name!r} does not exist (NXDOMAIN)", name=lookup.name)
        elif answer.rcode:
            error = DNSServerError(
                f"the server answered {lookup.name!r} with error code {answer.rcode}",
                name=lookup.name,
                rcode=answer.rcode,
            )
        else:
            lookup.addresses = answer.addresses(lookup.record_type)
        self._finish(answer.id, lookup, error)

    def error_received(self, exc: Exception) -> None:
        """The server cannot be reached (its port is closed): every lookup fails now."""
        self._fail_all(
            lambda name: DNSServerError(
                f"cannot reach the server for {name!r}: {exc}", name=name, rcode=None
            ),
            exc,
        )

    def connection_lost(self, exc: BaseException | None) -> None:
        """The endpoint ended: every lookup still waiting fails."""
        self._ended = True
        self._fail_all(
            lambda name: DNSServerError(
                f"the resolver's endpoint ended while {name!r} waited", name=name, rcode=None
            ),
            exc,
        )

    def _fail_all(self, error: Callable[[str], DNSServerError], cause: BaseException | None) -> None:
        for query_id, lookup in list(self._waiting.items()):
            failure = error(lookup.name)
            failure.__cause__ = cause
            self._finish(query_id, lookup, failure)


def _normal(name: str) -> str:
    """A name as parse_answer reports it: lower case, no final dot, IDNA."""
    text = name[:-1] if name.endswith(".") else name
    return text.encode("idna").decode("ascii").lower()
