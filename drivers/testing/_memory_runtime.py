"""An in-memory runtime: listeners and connections joined in memory, on a fake clock.

:class:`MemoryRuntime` is for code that calls ``listen_tcp``,
``connect_tcp`` (or their UNIX twins) or runs a
:class:`~weft.drivers.Server`, where :func:`~weft.drivers.testing.connect`
and :func:`~weft.drivers.testing.connect_pair` (which take protocols, not a
runtime) do not reach: a client library, a server's start-up and graceful
stop, a reconnect loop.  Twisted's ``MemoryReactorClock`` plays the same part.

It offers the capabilities that mean something in memory,
:class:`~weft.drivers.LoopRuntime`, :class:`~weft.drivers.TCPRuntime`,
:class:`~weft.drivers.UNIXRuntime` and :class:`~weft.drivers.DatagramRuntime`
(its datagram endpoints are on :attr:`MemoryRuntime.network`, a
:class:`~weft.drivers.testing.MemoryNetwork` on the same clock, lossy on
demand), and not the others: no pipes, processes
or signals (they are the operating system's), and no
``call_soon_threadsafe`` (nothing here waits for another thread).

How it works:

* A listener is an entry in a table, by address.  ``connect_tcp`` to an
  address listened on makes both protocols (the listener's factory's and the
  caller's) and joins them with a :class:`~weft.drivers.testing.Pump` (the
  server's ``connection_made`` first, then the client's, on the runtime's
  next step); the future then has the client's transport.  To an address
  nobody listens on, the future fails with ``ConnectionRefusedError`` (a
  UNIX path: ``FileNotFoundError``), as the operating-system drivers report
  it.  :meth:`MemoryRuntime.refuse_next`, :meth:`~MemoryRuntime.reset_next`
  and :meth:`~MemoryRuntime.drop_next` make the next connection to an
  address be refused, reset once made, or left unanswered until its timeout.
* Time is a :class:`~weft.drivers.testing.FakeClock` (``runtime.clock``).
  The runtime *steps*: :meth:`~MemoryRuntime.run_until_idle` runs what is
  due now and moves every connection's bytes until nothing moves;
  :meth:`~MemoryRuntime.advance` lets fake seconds pass, timer by timer,
  with the bytes moving after each.  ``run()`` and ``run_until()`` do the
  same, jumping from deadline to deadline, so an hour-long timeout takes no
  real time; ``run()`` raises :class:`IdleForeverError` where a real loop
  would wait forever.
* Each connection's pump is in :attr:`MemoryRuntime.pumps`, for a test that
  wants to stall one end, reset it, or move its bytes a few at a time.

Errors are loud, as everywhere in the memory driver: an exception from a
protocol (or a listener's factory) ends its connection and propagates out
of the step that ran it.
"""

from __future__ import annotations

import enum
import errno
import math
import os
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from weft.drivers._core.datagram_sockets import udp_request, unix_paths
from weft.drivers._core.futures import Future
from weft.drivers._core.socket_binding import tcp_port
from weft.drivers._core.timers import Timer
from weft.drivers.testing._fake_clock import FakeClock
from weft.drivers.testing._memory import MemoryTransport, Pump
from weft.drivers.testing._memory_network import MemoryNetwork
from weft.protocols.contract import DatagramTransport, Transport
from weft.protocols.errors import ArgumentError, ClosedResourceError, NotSettledError, WeftError

__all__ = ["IdleForeverError", "MemoryListener", "MemoryRuntime"]

#: Makes one protocol per connection.
ProtocolFactory = Callable[[], Any]

#: A TCP address (``(host, port)``) or a UNIX-socket path.
Address = tuple[str, int] | str

#: Where ports picked for port 0 start (the IANA dynamic range).
FIRST_FREE_PORT = 49152

#: Rounds of byte moving :meth:`MemoryRuntime.run_until_idle` allows before
#: it calls two protocols endless talkers.
MAX_ROUNDS = 100_000

# The hosts a listener on every interface is bound to.
_ANY_HOST = "0.0.0.0"
_ANY_HOSTS = frozenset({"", _ANY_HOST, "::"})


class IdleForeverError(WeftError, RuntimeError):
    """:meth:`MemoryRuntime.run` would never return: no timer is scheduled, no
    byte can move, and nobody called ``stop()`` (a real loop would hang)."""


class _Outcome(enum.Enum):
    """What the next connection to an address meets, when a test says so."""

    REFUSE = "refused"  # ConnectionRefusedError, as if nobody listened
    RESET = "reset"  # made, then reset under both ends
    DROP = "dropped"  # never answered: TimeoutError after the connect's timeout


class _Connect(NamedTuple):
    """A connect waiting for its answer."""

    factory: ProtocolFactory
    address: Address
    target: str
    timeout: float
    result: Future[Transport]


class _State(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    CLOSED = "closed"


class MemoryListener:
    """A listening address in a :class:`MemoryRuntime` (a
    :class:`~weft.drivers.Listener`); made by ``listen_tcp`` and ``listen_unix``."""

    def __init__(self, runtime: MemoryRuntime, factory: ProtocolFactory, address: Address) -> None:
        self._runtime = runtime
        self._factory = factory
        self._address = address
        # Every connection it accepted; the open ones are the connections.
        self._accepted: list[MemoryTransport] = []
        self._closed = False

    @property
    def addresses(self) -> list[Any]:
        """What it listens on: one ``(host, port)`` pair (``0.0.0.0`` for every
        interface), or one path."""
        return [self._address]

    @property
    def port(self) -> int:
        """The TCP port (the one picked when 0 was asked for); ArgumentError for a UNIX listener."""
        return tcp_port(self.addresses)

    @property
    def connections(self) -> set[MemoryTransport]:
        """The server-side transports of the connections accepted and still open."""
        self._accepted = [transport for transport in self._accepted if not transport.connection_lost_called]
        return set(self._accepted)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop accepting (the next connection is refused); open connections are left alone."""
        if not self._closed:
            self._closed = True
            self._runtime._listener_closed(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "listening"
        return f"<MemoryListener {self._address!r} {state} connections={len(self.connections)}>"


class MemoryRuntime:
    """A runtime whose listeners and connections are in memory, on a fake clock.

    It is a :class:`~weft.drivers.LoopRuntime`, :class:`~weft.drivers.TCPRuntime`
    and :class:`~weft.drivers.UNIXRuntime` (see the module docstring), so a
    :class:`~weft.drivers.Server`, the coroutine library's ``open_tcp`` and
    ``serve_tcp``, and any code typed against those run on it unchanged.
    Hosts are taken as written, with no name resolution (``localhost`` is
    ``127.0.0.1``); a listener on ``None``, ``""``, ``0.0.0.0`` or ``::``
    takes its port on every host.
    """

    #: The driver's name.
    name = "memory"

    def __init__(self, *, clock: FakeClock | None = None, network: MemoryNetwork | None = None) -> None:
        if clock is None:
            clock = network.clock if network is not None else FakeClock()
        if network is not None and network.clock is not clock:
            raise ArgumentError("the network runs on another clock than the one given: pass one or the other")
        #: The fake time everything here runs on (pass one to share it).
        self.clock = clock
        #: Where its datagram endpoints are (pass one to set its loss,
        #: duplication and reordering, or its seed).
        self.network = network if network is not None else MemoryNetwork(clock)
        self._listeners: dict[Address, MemoryListener] = {}
        self._pumps: list[Pump] = []
        # Those whose ends are not both lost yet: the ones stepping visits.
        self._live: list[Pump] = []
        self._outcomes: dict[Address, deque[_Outcome]] = {}
        # Connects asked for and not answered yet, answered in order by one
        # clock call (a pump starting its ends steps the clock, which would
        # run a later connect's answer inside an earlier one's).
        self._connecting: deque[_Connect] = deque()
        self._answering = False
        self._next_port = FIRST_FREE_PORT
        self._state = _State.IDLE
        self._stop_asked = False

    # ------------------------------------------------------------- the clock

    def now(self) -> float:
        """The fake time, in seconds."""
        return self.clock.now()

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` at the next step."""
        return self.clock.call_soon(callback, *args)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` once ``delay`` fake seconds have passed."""
        return self.clock.call_later(delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` once the fake time reaches ``when``."""
        return self.clock.call_at(when, callback, *args)

    # ------------------------------------------------------------ listening

    def listen_tcp(
        self, factory: ProtocolFactory, host: str | None = "127.0.0.1", port: int = 0
    ) -> MemoryListener:
        """Listen on ``host:port`` (port 0: a free one from 49152 up; host
        ``None`` or ``""``: every host).  A port another listener holds on
        the same host, or on every host, is ``OSError(EADDRINUSE)``."""
        self._check_open()
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ArgumentError(f"port must be an int from 0 to 65535, not {port!r}")
        host = _listening_host(host)
        if port == 0:
            port = self._free_port()
        elif any(_same_port(taken, host, port) for taken in self._listeners):
            raise _os_error(errno.EADDRINUSE)
        return self._listen(factory, (host, port))

    def listen_unix(self, factory: ProtocolFactory, path: str) -> MemoryListener:
        """Listen on the UNIX-socket path ``path`` (no file is made); a path
        another listener holds is ``OSError(EADDRINUSE)``."""
        self._check_open()
        path = os.fspath(path)
        if path in self._listeners:
            raise _os_error(errno.EADDRINUSE)
        return self._listen(factory, path)

    def _listen(self, factory: ProtocolFactory, address: Address) -> MemoryListener:
        listener = MemoryListener(self, factory, address)
        self._listeners[address] = listener
        return listener

    def _listener_closed(self, listener: MemoryListener) -> None:
        self._listeners.pop(listener.addresses[0], None)

    def _free_port(self) -> int:
        taken = {address[1] for address in self._listeners if isinstance(address, tuple)}
        while self._next_port in taken:
            self._next_port += 1
        if self._next_port > 65535:
            raise _os_error(errno.EADDRNOTAVAIL)
        port = self._next_port
        self._next_port += 1
        return port

    # ----------------------------------------------------------- connecting

    def connect_tcp(
        self, factory: ProtocolFactory, host: str, port: int, *, timeout: float = 30.0
    ) -> Future[Transport]:
        """Connect to ``host:port``, on the next step: the future gets the
        transport once both ends have had ``connection_made``, or the error
        (``ConnectionRefusedError`` where nobody listens, ``TimeoutError``
        after ``timeout`` fake seconds for a connection :meth:`drop_next` drops)."""
        self._check_open()
        return self._connect(factory, (_connecting_host(host), port), f"{host}:{port}", timeout)

    def connect_unix(
        self, factory: ProtocolFactory, path: str, *, timeout: float = 30.0
    ) -> Future[Transport]:
        """Connect to the UNIX-socket path ``path``, as :meth:`connect_tcp`
        (``FileNotFoundError`` where nobody listens)."""
        self._check_open()
        path = os.fspath(path)
        return self._connect(factory, path, path, timeout)

    def _connect(
        self, factory: ProtocolFactory, address: Address, target: str, timeout: float
    ) -> Future[Transport]:
        if math.isnan(timeout) or timeout <= 0:
            raise ArgumentError(f"timeout must be a number of seconds > 0, not {timeout!r}")
        result: Future[Transport] = Future(self.clock.call_soon)
        self._connecting.append(_Connect(factory, address, target, timeout, result))
        if not self._answering:
            self._answering = True
            self.clock.call_soon(self._answer_all)
        return result

    def _answer_all(self) -> None:
        """Answer the connects asked for, in order (on the step after)."""
        try:
            while self._connecting:
                self._answer(self._connecting.popleft())
        finally:
            if self._connecting:  # one raised: the rest are answered next
                self.clock.call_soon(self._answer_all)
            else:
                self._answering = False

    def _answer(self, connect: _Connect) -> None:
        """The far end answers one connect."""
        factory, address, target, timeout, result = connect
        outcome = self._next_outcome(address)
        if outcome is _Outcome.DROP:
            error = TimeoutError(errno.ETIMEDOUT, f"cannot connect to {target}: no answer in {timeout:g} s")
            self.clock.call_later(timeout, result.set_exception, error)
            return
        listener = None if outcome is _Outcome.REFUSE else self._listener_for(address)
        if listener is None:
            missing = isinstance(address, str) and outcome is not _Outcome.REFUSE
            result.set_exception(
                _os_error(errno.ENOENT if missing else errno.ECONNREFUSED, f"cannot connect to {target}")
            )
            return
        try:
            client = factory()
        except Exception as exc:
            result.set_exception(exc)
            return
        try:
            server = listener._factory()
        except Exception:
            result.set_exception(
                ConnectionResetError(
                    errno.ECONNRESET, f"cannot connect to {target}: the server's factory raised"
                )
            )
            raise
        try:
            pump = Pump(client, server, clock=self.clock)
        except Exception as exc:  # a connection_made raised: loud, and the connect failed
            result.set_exception(exc)
            raise
        listener._accepted.append(pump.server_transport)
        self._pumps.append(pump)
        self._live.append(pump)
        result.set_result(pump.client_transport)
        if outcome is _Outcome.RESET:
            pump.reset()

    def _listener_for(self, address: Address) -> MemoryListener | None:
        found = self._listeners.get(address)
        if found is None and isinstance(address, tuple):
            found = self._listeners.get((_ANY_HOST, address[1]))
        return found

    # ------------------------------------------------------------ datagrams

    def open_udp(
        self,
        factory: ProtocolFactory,
        local_address: tuple[Any, ...] | None = None,
        remote_address: tuple[Any, ...] | None = None,
        *,
        family: int = 0,
        reuse_port: bool = False,
        allow_broadcast: bool = False,
    ) -> Future[DatagramTransport]:
        """A UDP endpoint on :attr:`network`, made on the next step: the future
        gets the transport once ``connection_made`` has run, or the error
        (``OSError(EADDRINUSE)``, ``socket.gaierror`` for a name); bad
        arguments raise now.  See :meth:`MemoryNetwork.open_udp`."""
        self._check_open()
        udp_request(
            local_address, remote_address, family, reuse_port=reuse_port, allow_broadcast=allow_broadcast
        )
        return self._open_endpoint(
            lambda: self.network.open_udp(
                factory,
                local_address,
                remote_address,
                family=family,
                reuse_port=reuse_port,
                allow_broadcast=allow_broadcast,
            )
        )

    def open_unix_datagram(
        self,
        factory: ProtocolFactory,
        local_path: str | bytes | os.PathLike[str] | None = None,
        remote_path: str | bytes | os.PathLike[str] | None = None,
    ) -> Future[DatagramTransport]:
        """A UNIX datagram endpoint on :attr:`network`, made on the next step
        (``ConnectionRefusedError`` for a ``remote_path`` nobody holds)."""
        self._check_open()
        unix_paths(local_path, remote_path)
        return self._open_endpoint(lambda: self.network.open_unix_datagram(factory, local_path, remote_path))

    def _open_endpoint(self, make: Callable[[], DatagramTransport]) -> Future[DatagramTransport]:
        result: Future[DatagramTransport] = Future(self.clock.call_soon)

        def open_now() -> None:
            try:
                transport = make()
            except Exception as exc:
                result.set_exception(exc)
                if not isinstance(exc, OSError):
                    raise  # a protocol's own failure: loud, as everywhere here
                return
            result.set_result(transport)

        self.clock.call_soon(open_now)
        return result

    # -------------------------------------------------- failures on demand

    def refuse_next(self, address: Address) -> None:
        """The next connection to ``address`` (``(host, port)`` or a path) is
        refused with ``ConnectionRefusedError``, whether or not anyone listens."""
        self._expect(address, _Outcome.REFUSE)

    def reset_next(self, address: Address) -> None:
        """The next connection to ``address`` is made (both ``connection_made``
        run, the future has its transport), then reset: both ends lose it
        with ``ConnectionResetError``."""
        self._expect(address, _Outcome.RESET)

    def drop_next(self, address: Address) -> None:
        """The next connection to ``address`` is never answered: its future
        fails with ``TimeoutError`` once its ``timeout`` has passed on the clock."""
        self._expect(address, _Outcome.DROP)

    def _expect(self, address: Address, outcome: _Outcome) -> None:
        if isinstance(address, tuple):
            host, port = address
            address = (_connecting_host(host), port)
        self._outcomes.setdefault(address, deque()).append(outcome)

    def _next_outcome(self, address: Address) -> _Outcome | None:
        waiting = self._outcomes.get(address)
        if not waiting:
            return None
        outcome = waiting.popleft()
        if not waiting:
            del self._outcomes[address]
        return outcome

    @property
    def pumps(self) -> list[Pump]:
        """Every connection made, in order: its pump (``pump.client`` is the
        connecting side's protocol, ``pump.server`` the listener's)."""
        return list(self._pumps)

    # -------------------------------------------------------------- stepping

    def run_until_idle(self) -> None:
        """Run what is due now and move every connection's bytes, until nothing
        moves; no time passes.  Two protocols that never stop talking raise
        :class:`~weft.protocols.errors.NotSettledError`."""
        for _ in range(MAX_ROUNDS):
            self.clock.advance(0)
            moved = False
            for pump in list(self._live):
                moved = pump.deliver("client") | moved
                moved = pump.deliver("server") | moved
            self._live = [pump for pump in self._live if not _ended(pump)]
            # A round that moved nothing ran no protocol code after its first
            # advance(0), so nothing is left to move or due.
            if not moved:
                return
        raise NotSettledError(f"the memory runtime still moved data after {MAX_ROUNDS} rounds")

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of fake time pass: each timer falling due runs at its
        deadline, with the bytes it makes move before the next one runs."""
        if not seconds >= 0 or math.isinf(seconds):
            raise ArgumentError(f"cannot advance by {seconds!r} seconds")
        until = self.clock.now() + seconds
        self.run_until_idle()
        while (deadline := self.clock.next_deadline()) is not None and deadline <= until:
            self.clock.advance(max(deadline - self.clock.now(), 0.0))
            self.run_until_idle()
        self.clock.advance(max(until - self.clock.now(), 0.0))
        self.run_until_idle()

    # --------------------------------------------------------------- running

    def run(self) -> None:
        """Step, jumping from deadline to deadline, until :meth:`stop`.

        Raises :class:`IdleForeverError` when nothing is scheduled, no byte can
        move and ``stop()`` was not called: a real loop would wait forever.
        """
        self._start()
        try:
            while True:
                self.run_until_idle()
                if self._stop_asked:
                    return
                deadline = self.clock.next_deadline()
                if deadline is None:
                    raise IdleForeverError(
                        "run() would never return: no timer is scheduled, no byte can move, "
                        "and stop() was not called (schedule one with call_later)"
                    )
                self.clock.advance(max(deadline - self.clock.now(), 0.0))
        finally:
            self._finish()

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Step, jumping from deadline to deadline, until ``condition()`` holds,
        ``timeout`` fake seconds pass, or :meth:`stop`; whether it held.

        Returns ``False`` at once when nothing is scheduled and no byte can
        move: nothing could ever make the condition hold.
        """
        if condition():
            return True
        self._start()
        try:
            until = None if timeout is None else self.clock.now() + timeout
            while True:
                self.run_until_idle()
                if condition():
                    return True
                if self._stop_asked:
                    return False
                deadline = self.clock.next_deadline()
                if deadline is None or (until is not None and deadline > until):
                    if until is None:
                        return False
                    self.clock.advance(max(until - self.clock.now(), 0.0))
                    self.run_until_idle()
                    return condition()
                self.clock.advance(max(deadline - self.clock.now(), 0.0))
        finally:
            self._finish()

    def stop(self) -> None:
        """Make :meth:`run` (or :meth:`run_until`) return after the current step."""
        self._stop_asked = True

    @property
    def running(self) -> bool:
        """Whether :meth:`run` or :meth:`run_until` is running."""
        return self._state is _State.RUNNING

    def close(self) -> None:
        """Close the listeners and abort the connections still open (their
        protocols hear ``connection_lost`` before this returns); not while running."""
        if self._state is _State.RUNNING:
            raise RuntimeError("cannot close a running memory runtime")
        if self._state is _State.CLOSED:
            return
        for listener in list(self._listeners.values()):
            listener.close()
        for pump in self._live:
            pump.client_transport.abort()
            pump.server_transport.abort()
        self.network.close()
        self.run_until_idle()
        self._state = _State.CLOSED

    def __enter__(self) -> MemoryRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<MemoryRuntime {self._state.value} now={self.clock.now():g} "
            f"listeners={len(self._listeners)} connections={len(self._live)}>"
        )

    # ------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClosedResourceError("the memory runtime is closed")

    def _start(self) -> None:
        self._check_open()
        if self._state is _State.RUNNING:
            raise RuntimeError("the memory runtime is already running")
        self._state = _State.RUNNING
        self._stop_asked = False

    def _finish(self) -> None:
        self._state = _State.IDLE


def _ended(pump: Pump) -> bool:
    """Both ends have had ``connection_lost``: nothing can move any more."""
    return pump.client_transport.connection_lost_called and pump.server_transport.connection_lost_called


def _listening_host(host: str | None) -> str:
    if host is None or host in _ANY_HOSTS:
        return _ANY_HOST
    return _connecting_host(host)


def _connecting_host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def _same_port(taken: Address, host: str, port: int) -> bool:
    """Whether a listener on ``taken`` holds ``host:port``: the same port, on
    the same host or with either on every host."""
    return (
        isinstance(taken, tuple) and taken[1] == port and (taken[0] == host or _ANY_HOST in (taken[0], host))
    )


def _os_error(code: int, context: str | None = None) -> OSError:
    """The OSError subclass Python raises for ``code`` (ConnectionRefusedError...),
    worded as the operating-system drivers word it: a failed connect names
    its target; a failed listen is the bare error, which ``Server`` puts in context."""
    message = os.strerror(code) if context is None else f"{context}: {os.strerror(code)}"
    return OSError(code, message)
