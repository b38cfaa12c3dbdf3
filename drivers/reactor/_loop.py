"""The reactor's event loop: readiness, timers, and calls from other threads.

One thread, one poller.  The hot path is short on purpose: the poller reports
``(fd, mask)`` pairs and the loop calls the bound method registered for that
fd, with no handle object, context switch or intermediate list in between
(asyncio builds a handle per event and runs it from a queue; here a
transport's ``_read_ready`` is called straight from the poll results).

Registration is persistent.  A connection's fd is registered once when it
starts reading and stays registered; write interest is added only while a
write could not be sent at once.  So a steady exchange of small messages
makes no registration change at all (``poller.changes`` stays put), where
the 2012 prototype re-registered twice per read.

An exception from a callback never stops the loop.  It is logged with its
traceback, and if the callback belongs to a connection (its fd's owner, or a
timer scheduled through the connection's clock) that connection, and only
that one, ends with the exception.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVarTuple, Unpack

from weft.drivers._core import accelerator, polled_datagrams
from weft.drivers._core.connecting import HAPPY_EYEBALLS_DELAY
from weft.drivers._core.futures import Future
from weft.drivers._core.signal_handlers import SignalHandlers
from weft.drivers._core.timers import Timer, TimerQueue
from weft.drivers.reactor import _pipes as pipes
from weft.drivers.reactor import _process as process
from weft.drivers.reactor import _sockets as sockets
from weft.drivers.reactor._datagrams import ReactorDatagramTransport
from weft.drivers.reactor._descriptor_transport import LENT_READ_SIZE, READ_SIZE, DescriptorTransport
from weft.drivers.reactor._plumbing import FdOwner, InlineReader
from weft.drivers.reactor._pollers import (
    ERROR,
    HANGUP,
    READABLE,
    WRITABLE,
    EpollPoller,
    Poller,
    best_poller,
)
from weft.drivers.reactor._process import Process, Stderr
from weft.drivers.reactor._sockets import ReactorListener
from weft.protocols.contract import DatagramTransport, Transport
from weft.protocols.errors import ArgumentError, BusyResourceError, ClosedResourceError

__all__ = ["Reactor"]

logger = logging.getLogger("weft.drivers.reactor")

_Ts = TypeVarTuple("_Ts")

# A hang-up or error wakes whichever side is watching, so that its read or
# write meets the error and the connection ends.
_READ_EVENTS = READABLE | ERROR | HANGUP
_WRITE_EVENTS = WRITABLE | ERROR | HANGUP


class Reactor:
    """A single-threaded callback reactor.  Make as many as you like: there is
    no global one.  Conforms to :class:`weft.protocols.contract.Clock` and to
    :class:`weft.drivers._runtime.Runtime`."""

    name = "reactor"

    #: The class of the byte-stream transports this reactor makes (sockets,
    #: pipes, processes).  A runtime that moves the bytes another way (the
    #: coroutine driver) subclasses the reactor and names its own.
    stream_transport_class: type[DescriptorTransport] = DescriptorTransport
    #: The class of read-only transports (a child's stderr).
    read_only_transport_class: type[DescriptorTransport] = pipes.ReadPipeTransport

    def __init__(self, poller: Poller | None = None) -> None:
        self._poller: Poller = poller if poller is not None else best_poller()
        self._readers: dict[int, Callable[[], object]] = {}
        # The readers that are descriptor transports, read inline by the loop.
        self._streams: dict[int, InlineReader] = {}
        # The buffer lent to protocols that take their bytes in one
        # (``buffer_received``, weft's TLS layer): every such read goes
        # into it, and the protocol copies what it keeps during the call.
        # One per reactor, since a reactor runs on one thread.
        self._read_buffer = memoryview(bytearray(LENT_READ_SIZE))
        #: Listeners and transports still open, with what ends each: close()
        #: ends them, so closing a reactor never leaks a descriptor.
        self._open: dict[object, Callable[[], object]] = {}
        self._writers: dict[int, Callable[[], object]] = {}
        self._owners: dict[int, FdOwner] = {}
        self._masks: dict[int, int] = {}
        # fd -> mask, for fds the poller refuses (see _watch).
        self._always_ready: dict[int, int] = {}
        # Children whose exit is still to be learned (see close).
        self._processes: set[Process] = set()
        # What close() runs first, while the loop can still turn (call_before_close).
        self._before_close: list[Timer] = []
        self._timers = TimerQueue()
        self._ready: deque[Timer] = deque()
        self._running = False
        self._stopping = False
        self._closed = False
        self._thread_id: int | None = None
        self._signals = SignalHandlers(self.call_soon_threadsafe, self._watch_signal_wakeup)
        # Asked after every turn whether to stop (run_until's condition).
        self._after_turn: Callable[[], bool] | None = None
        # The C accelerator's copy of the loop's handing out of events (see
        # _loop), or None on the pure-Python path.  On epoll it waits too.
        epoll = self._poller if isinstance(self._poller, EpollPoller) else None
        self._dispatch = accelerator.dispatcher(
            self,
            self._streams,
            self._readers,
            self._writers,
            READ_SIZE,
            READABLE,
            _READ_EVENTS,
            _WRITE_EVENTS,
            -1 if epoll is None else epoll.fileno(),
        )
        # The poller's own poll, which the dispatcher's turn() replaces (a
        # poll wrapped since, to count or to script turns, is called instead).
        self._own_poll = None if epoll is None else epoll.poll
        self._wake_read, self._wake_write = _wakeup_pair()
        self._set_reader(self._wake_read, self._drain_wakeup, None)

    # ------------------------------------------------------------- clock

    def now(self) -> float:
        """Monotonic seconds (``time.monotonic``)."""
        return time.monotonic()

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` on the next turn of the loop, in call order."""
        timer = Timer(0.0, callback, args, None)
        self._ready.append(timer)
        return timer

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds (a negative delay counts as 0)."""
        if delay != delay:  # NaN
            raise ArgumentError("delay is NaN")
        return self._timers.schedule(time.monotonic() + max(delay, 0.0), callback, args)

    def call_at(self, when: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` once :meth:`now` reaches ``when``."""
        if when != when:
            raise ArgumentError("when is NaN")
        return self._timers.schedule(when, callback, args)

    def call_soon_threadsafe(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """:meth:`call_soon` from any thread (or a signal handler); wakes the loop."""
        timer = Timer(0.0, callback, args, None)
        self._ready.append(timer)  # deque.append is atomic
        self._wake()
        return timer

    # --------------------------------------------------- file descriptors

    def add_reader(self, fd: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is readable.

        Raises :class:`~weft.protocols.errors.BusyResourceError` if ``fd``
        already has a reader (asyncio would silently replace it) and
        :class:`~weft.protocols.errors.ClosedResourceError` if ``fd`` is not
        open.
        """
        if fd in self._readers:
            raise BusyResourceError(f"file descriptor {fd} already has a reader")
        self._set_reader(fd, partial(callback, *args) if args else callback, None)

    def remove_reader(self, fd: int) -> bool:
        """Stop watching ``fd`` for reading; return whether it was watched."""
        if fd not in self._readers:
            return False
        self._set_reader(fd, None, None)
        return True

    def add_writer(self, fd: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is writable (errors as :meth:`add_reader`)."""
        if fd in self._writers:
            raise BusyResourceError(f"file descriptor {fd} already has a writer")
        self._set_writer(fd, partial(callback, *args) if args else callback, None)

    def remove_writer(self, fd: int) -> bool:
        """Stop watching ``fd`` for writing; return whether it was watched."""
        if fd not in self._writers:
            return False
        self._set_writer(fd, None, None)
        return True

    @property
    def poller(self) -> Poller:
        """The poller in use (``poller.changes`` counts registration changes)."""
        return self._poller

    def _set_reader(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Install or remove the reader of ``fd`` (transports use this, not add_reader)."""
        if callback is None:
            self._readers.pop(fd, None)
        else:
            self._readers[fd] = callback
        self._update(fd, owner)

    def _watch_signal_wakeup(self, fd: int, callback: Callable[[], object] | None) -> None:
        """Watch (or stop watching) the signal handlers' wake-up pipe."""
        self._set_reader(fd, callback, None)

    def _set_stream_reader(self, fd: int, stream: InlineReader | None) -> None:
        """Install (or remove) a descriptor transport as the reader of ``fd``.

        The loop reads such an fd itself, inline, and hands the bytes
        straight to the protocol: no call between readiness and ``recv``.
        """
        if stream is None:
            self._streams.pop(fd, None)
            self._set_reader(fd, None, None)
        elif stream._recv_into is not None and hasattr(stream._protocol, "buffer_received"):
            # A protocol that takes a lent buffer (weft's TLS layer): not
            # inline; the loop calls _read_into_ready, which reads
            # LENT_READ_SIZE into the reactor's buffer without allocating.
            self._streams.pop(fd, None)
            self._set_reader(fd, stream._read_into_ready, stream)
        else:
            self._set_reader(fd, stream._read_ready, stream)
            self._streams[fd] = stream

    def _set_writer(self, fd: int, callback: Callable[[], object] | None, owner: FdOwner | None) -> None:
        """Install or remove the writer of ``fd``."""
        if callback is None:
            self._writers.pop(fd, None)
        else:
            self._writers[fd] = callback
        self._update(fd, owner)

    def _update(self, fd: int, owner: FdOwner | None) -> None:
        if self._closed:
            raise ClosedResourceError("the reactor is closed")
        mask = (READABLE if fd in self._readers else 0) | (WRITABLE if fd in self._writers else 0)
        old = self._masks.get(fd, 0)
        if mask == old:
            return
        if not old:
            self._watch(fd, mask)
            if owner is not None:
                self._owners[fd] = owner
        elif not mask:
            # Nothing to wait for: leave the poller entirely, or a hang-up
            # (always reported) would wake the loop for nothing, forever.
            self._unwatch(fd)
            self._owners.pop(fd, None)
        elif fd in self._always_ready:
            self._always_ready[fd] = mask
        else:
            self._poller.modify(fd, mask)
        if mask:
            self._masks[fd] = mask
        else:
            del self._masks[fd]

    # ------------------------------------------- fds the poller refuses

    def _watch(self, fd: int, mask: int) -> None:
        try:
            self._poller.register(fd, mask)
        except PermissionError:
            # epoll refuses what cannot block (a regular file, /dev/null:
            # EPERM).  poll(2) calls such a file always ready; so does the
            # loop: its callbacks run every turn, without sleeping, until
            # removed (a transport removes its reader at EOF or pause).
            self._always_ready[fd] = mask

    def _unwatch(self, fd: int) -> None:
        if self._always_ready.pop(fd, None) is None:
            self._poller.unregister(fd)

    # ------------------------------------------------------------ running

    def run(self) -> None:
        """Run until :meth:`stop`; then return (it can be run again).

        A :meth:`stop` made before the run is not lost: the run makes one
        turn, without waiting for I/O, and returns (asyncio's rule for
        ``run_forever``).
        """
        self._start_running()
        try:
            self._loop(None)
        finally:
            self._stopping = False
            self._stop_running()

    def run_once(self, timeout: float | None = None) -> None:
        """Run one turn of the loop, for a host that drives the reactor from its own.

        Waits for I/O at most ``timeout`` seconds (None: until something
        happens or the next timer is due; 0: not at all), then handles what
        is ready and runs the callbacks and timers that are due.  A pending
        :meth:`stop` makes the turn not wait, and is left for :meth:`run`.
        """
        if timeout is not None and not timeout >= 0:  # NaN fails this too
            raise ArgumentError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}")
        self._start_running()
        try:
            self._loop(math.inf if timeout is None else timeout)
        finally:
            self._stop_running()

    def _turn_for_host(self, timeout: float | None, before_dispatch: Callable[[], object]) -> None:
        """One turn, as :meth:`run_once`, for a host that holds the reactor
        running (:meth:`_hosted`) and runs callbacks of its own between the
        poll and the handing out of its events (weft's asyncio event loop
        runs there what was ready before the poll, asyncio's order).

        Between the two the host may close descriptors, so an event can come
        for a descriptor closed meanwhile (nothing is registered for it any
        more, and it is dropped) or reused (its new reader sees a readiness
        that may not hold, as after any spurious wake-up: every descriptor
        here is non-blocking)."""
        self._loop(math.inf if timeout is None else timeout, before_dispatch)

    @contextlib.contextmanager
    def _hosted(self) -> Iterator[None]:
        """Mark the reactor running while a host turns it with
        :meth:`_turn_for_host` (``run``, ``run_once`` and ``close`` refuse
        meanwhile, as while it runs itself)."""
        self._start_running()
        try:
            yield
        finally:
            self._stop_running()

    def _start_running(self) -> None:
        if self._closed:
            raise ClosedResourceError("the reactor is closed")
        if self._running:
            raise RuntimeError("the reactor is already running")
        self._running = True
        self._thread_id = threading.get_ident()

    def _stop_running(self) -> None:
        self._running = False
        self._thread_id = None

    def stop(self) -> None:
        """Make :meth:`run` return after the current turn (any thread may call it)."""
        self._stopping = True
        self._wake()

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is running."""
        return self._running

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds at the end of a turn, or ``timeout`` passes.

        Returns whether the condition held.  For tests and scripts.
        """
        if condition():
            return True
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self.stop()

        def after_turn() -> bool:
            return condition()

        timer = None if timeout is None else self.call_later(timeout, expire)
        self._after_turn = after_turn
        try:
            self.run()
        finally:
            self._after_turn = None
            if timer is not None:
                timer.cancel()
        return not expired or condition()

    def _loop(self, once_waiting: float | None, before_dispatch: Callable[[], object] | None = None) -> None:
        """Turns until :meth:`stop` (``once_waiting`` None), or one turn that
        waits for I/O at most ``once_waiting`` seconds (``math.inf``: as long
        as there is nothing to do).  ``before_dispatch`` runs between the
        poll and the handing out of its events (see :meth:`_turn_for_host`)."""
        poll = self._poller.poll
        readers, writers, streams = self._readers, self._writers, self._streams
        read_size = READ_SIZE
        ready, timers = self._ready, self._timers
        # The queue's own list, tested for emptiness each turn without a call
        # (a method call per turn is a good part of a turn that echoes a few
        # messages); the queue is asked only when it holds a timer.
        timer_heap = timers._heap
        always_ready = self._always_ready
        monotonic = time.monotonic
        dispatch = self._dispatch
        turn = dispatch.turn if dispatch is not None and poll is self._own_poll else None
        while True:
            if self._after_turn is not None and self._after_turn():
                break
            if ready or always_ready or self._stopping:
                timeout = 0.0
            else:
                deadline = timers.next_deadline() if timer_heap else None
                timeout = -1.0 if deadline is None else max(deadline - monotonic(), 0.0)
                if once_waiting is not None and once_waiting < math.inf and not 0 <= timeout <= once_waiting:
                    timeout = once_waiting
            if turn is not None:
                # The poll and the loop below, in C (weft/_speedups.c: epoll's
                # wait, then the same calls, in the same order, the same hooks
                # for every exception).
                turn(timeout, before_dispatch, always_ready)
            else:
                events = poll(timeout)
                if before_dispatch is not None:
                    before_dispatch()
                if always_ready:
                    events += always_ready.items()
                if dispatch is not None:
                    # The loop below, in C (another poller than epoll).
                    dispatch(events)
                else:
                    for fd, mask in events:
                        if mask == READABLE:
                            # The common case: a plain readable event.  For a stream
                            # transport the read is done right here (this is
                            # DescriptorTransport._read_ready, inlined: a function call
                            # is a good part of what a message costs).
                            stream = streams.get(fd)
                            if stream is not None:
                                try:
                                    data = stream._recv(read_size)
                                except (BlockingIOError, InterruptedError):
                                    continue
                                except OSError as exc:
                                    stream._recv_failed(exc)
                                    continue
                                try:
                                    if data:
                                        stream._protocol.data_received(data)
                                    else:
                                        stream._eof()
                                except Exception as exc:
                                    stream._callback_failed(exc)
                                continue
                            reader = readers.get(fd)
                            if reader is not None:
                                try:
                                    reader()
                                except Exception as exc:
                                    self._fd_callback_failed(fd, exc)
                            continue
                        if mask & _READ_EVENTS:
                            reader = readers.get(fd)
                            if reader is not None:
                                try:
                                    reader()
                                except Exception as exc:
                                    self._fd_callback_failed(fd, exc)
                        if mask & _WRITE_EVENTS:
                            writer = writers.get(fd)
                            if writer is not None:
                                try:
                                    writer()
                                except Exception as exc:
                                    self._fd_callback_failed(fd, exc)
            if timer_heap:
                now = monotonic()
                while (timer := timers.pop_due(now)) is not None:
                    ready.append(timer)
            # Only what is ready now: a callback that schedules another
            # does not keep this turn going forever.
            for _ in range(len(ready)):
                timer = ready.popleft()
                try:
                    timer.run()
                except Exception as exc:
                    logger.error("exception in callback %r", timer, exc_info=exc)
            if self._stopping or once_waiting is not None:
                break

    def _fd_callback_failed(self, fd: int, exc: Exception) -> None:
        owner = self._owners.get(fd)
        if owner is None:
            logger.error("exception in a callback for file descriptor %d", fd, exc_info=exc)
        else:
            owner._callback_failed(exc)

    # ----------------------------------------------------------- transports

    def listen_tcp(
        self, factory: Callable[[], Any], host: str | None = "127.0.0.1", port: int = 0
    ) -> ReactorListener:
        """Accept TCP connections on ``host:port``; see :func:`~weft.drivers.reactor._sockets.listen_tcp`."""
        return sockets.listen_tcp(self, factory, host, port)

    def listen_unix(self, factory: Callable[[], Any], path: str) -> ReactorListener:
        """Accept connections on a UNIX-domain socket at ``path``."""
        return sockets.listen_unix(self, factory, path)

    def connect_tcp(
        self,
        factory: Callable[[], Any],
        host: str,
        port: int,
        *,
        timeout: float = sockets.DEFAULT_CONNECT_TIMEOUT,
        happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY,
    ) -> Future[Transport]:
        """Connect to ``host:port``, with Happy Eyeballs across its addresses;
        see :func:`~weft.drivers.reactor._sockets.connect_tcp`."""
        return sockets.connect_tcp(
            self, factory, host, port, timeout=timeout, happy_eyeballs_delay=happy_eyeballs_delay
        )

    def connect_unix(
        self, factory: Callable[[], Any], path: str, *, timeout: float = sockets.DEFAULT_CONNECT_TIMEOUT
    ) -> Future[Transport]:
        """Connect to the UNIX-domain socket at ``path``."""
        return sockets.connect_unix(self, factory, path, timeout=timeout)

    def open_udp(
        self,
        factory: Callable[[], Any],
        local_address: tuple[Any, ...] | None = None,
        remote_address: tuple[Any, ...] | None = None,
        *,
        family: int = 0,
        reuse_port: bool = False,
        allow_broadcast: bool = False,
    ) -> Future[DatagramTransport]:
        """A UDP endpoint (IPv4 or IPv6) for the protocol ``factory`` makes.

        ``local_address`` is ``(host, port)`` to bind (host ``None`` or
        ``""``: every interface; port 0: a free one); ``remote_address``
        connects the endpoint to ``(host, port)``: ``sendto`` then needs no
        address, only that peer is heard, and ICMP errors reach
        ``error_received``.  Without either, ``family`` (``AF_INET``,
        ``AF_INET6``) says what to make.  ``allow_broadcast`` sets
        ``SO_BROADCAST`` and makes ``remote_address`` only the default
        destination (not connected), as in asyncio; ``reuse_port`` sets
        ``SO_REUSEPORT``.

        Always a :class:`~weft.drivers.Future`: it gets the transport once
        ``connection_made`` has run, on a later turn, or the error
        (``OSError`` such as ``EADDRINUSE``, ``socket.gaierror``, or what
        the factory raised).  Names are looked up in a thread, so the loop
        never blocks; numeric addresses need none.  Bad arguments raise at
        once (``ArgumentError``, ``TypeError``).  See https://github.com/weft-project/weft/blob/main/docs/datagrams.md.
        """
        return polled_datagrams.open_udp(
            self,
            partial(ReactorDatagramTransport, self),
            factory,
            local_address,
            remote_address,
            family=family,
            reuse_port=reuse_port,
            allow_broadcast=allow_broadcast,
        )

    def open_unix_datagram(
        self,
        factory: Callable[[], Any],
        local_path: str | bytes | os.PathLike[str] | None = None,
        remote_path: str | bytes | os.PathLike[str] | None = None,
    ) -> Future[DatagramTransport]:
        """A UNIX datagram endpoint bound to ``local_path`` and connected to
        ``remote_path`` (either may be ``None``; without ``local_path`` it can
        send but not be answered).

        A stale socket file at ``local_path`` is replaced (a live one is
        ``OSError(EADDRINUSE)``), and the file is removed when the endpoint
        ends.  A :class:`~weft.drivers.Future` as :meth:`open_udp`'s.
        """
        return polled_datagrams.open_unix_datagram(
            self, partial(ReactorDatagramTransport, self), factory, local_path, remote_path
        )

    def connect_pipes(
        self, factory: Callable[[], Any], read_fd: int, write_fd: int, *, close_fds: bool = True
    ) -> DescriptorTransport:
        """Run a protocol over two pipe ends (or any fds that read() and write()).

        ``connection_made`` runs now.  The fds are made non-blocking; with
        ``close_fds`` they are closed when the connection ends, without it
        they are left open in the blocking mode they had.  ``write_eof``
        closes ``write_fd`` (a pipe signals EOF no other way; without
        ``close_fds``, /dev/null takes its number).  Regular files and
        /dev/null work too.  See :mod:`weft.drivers.reactor._pipes`.
        """
        return pipes.connect_pipes(self, factory, read_fd, write_fd, close_fds=close_fds)

    def connect_stdio(self, factory: Callable[[], Any]) -> DescriptorTransport:
        """Run a protocol over this process's stdin and stdout (one connection, inetd style).

        When the connection ends both are released: pointed at /dev/null,
        which closes the streams (the peer sees EOF) and keeps fds 0 and 1
        taken.  See :func:`weft.drivers.reactor._pipes.connect_stdio`.
        """
        return pipes.connect_stdio(self, factory)

    def spawn_process(
        self,
        factory: Callable[[], Any],
        args: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stderr: Stderr | Callable[[], Any] | None = None,
        pty: bool = False,
    ) -> Process:
        """Start a child with a protocol on its stdin and stdout (or a PTY); see
        :func:`~weft.drivers.reactor._process.spawn_process`."""
        return process.spawn_process(self, factory, args, env=env, cwd=cwd, stderr=stderr, pty=pty)

    # ------------------------------------------------------------ signals

    def add_signal_handler(self, signum: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> None:
        """Run ``callback(*args)`` in the loop when signal ``signum`` arrives.

        Only from the main thread (Python delivers signals there).  Replaces a
        handler this reactor set earlier for the same signal.
        """
        self._signals.add(signum, callback, *args)

    def remove_signal_handler(self, signum: int) -> bool:
        """Restore the handler that was there before; return whether there was one of ours."""
        return self._signals.remove(signum)

    # ------------------------------------------------------------ closing

    def call_before_close(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts) -> Timer:
        """Run ``callback(*args)`` when :meth:`close` begins, while the loop can still turn.

        For what must end on the loop before the loop goes: a Trio guest run
        (:mod:`weft.drivers.trio_guest`) is cancelled there and then given
        turns (``run_until``) until it has finished.  The callbacks run first
        in :meth:`close`, in the order registered, before any listener closes
        or transport is aborted; one that raises is logged and the others
        still run.  Cancel the returned handle to call it off.  Raises
        :class:`~weft.protocols.errors.ClosedResourceError` once closed.
        """
        if self._closed:
            raise ClosedResourceError("the reactor is closed")
        # Handles called off are dropped here, so that many short-lived
        # registrations (one per guest run) do not pile up until close.
        self._before_close = [hook for hook in self._before_close if not hook.cancelled()]
        hook = Timer(0.0, callback, args, None)
        self._before_close.append(hook)
        return hook

    def close(self) -> None:
        """Release the poller, the wake-up fd and signal handlers (not while running).

        First the :meth:`call_before_close` callbacks run (they may turn the
        loop); then listeners still open are closed, transports still
        open are aborted (their protocols hear ``connection_lost`` before
        this returns), and connects still under way fail with
        ``ClosedResourceError``, their sockets closed.
        """
        if self._running:
            raise RuntimeError("cannot close a running reactor")
        if self._closed:
            return
        if self._run_before_close():
            return  # a callback closed the reactor itself
        # What is still open ends now: listeners close, transports are aborted
        # and their protocols hear connection_lost before this returns.
        for end in list(self._open.values()):
            end()
        for _ in range(3):  # connection_lost, and what it schedules in turn
            for _ in range(len(self._ready)):
                timer = self._ready.popleft()
                try:
                    timer.run()
                except Exception as exc:
                    logger.error("exception in callback %r", timer, exc_info=exc)
        for child in list(self._processes):
            child._detach()
        self._signals.remove_all()
        self._set_reader(self._wake_read, None, None)
        self._closed = True
        self._poller.close()
        for fd in {self._wake_read, self._wake_write}:
            os.close(fd)
        self._ready.clear()

    def _run_before_close(self) -> bool:
        """Run the :meth:`call_before_close` callbacks (and those they add);
        whether one of them closed the reactor."""
        # Before anything is ended: a hook may turn the loop, and what it
        # lets happen (a connection accepted meanwhile) is then ended by close.
        while self._before_close:
            hooks, self._before_close = self._before_close, []
            for hook in hooks:
                try:
                    hook.run()
                except Exception as exc:
                    logger.error("exception in a callback before close %r", hook, exc_info=exc)
        return self._closed

    def __enter__(self) -> Reactor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------- wake-up

    def _wake(self) -> None:
        if self._closed:
            return
        try:
            os.write(self._wake_write, _ONE)
        except (BlockingIOError, InterruptedError):
            pass  # already full of wake-ups: the loop will wake
        except OSError:
            # Another thread's stop() can race the loop's own exit and a
            # close() that follows it: a wake-up for a closed reactor is moot.
            if not self._closed:
                raise

    def _drain_wakeup(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.read(self._wake_read, 4096)


# An eventfd takes exactly eight bytes, a native-endian count; a pipe takes anything.
_ONE = (1).to_bytes(8, sys.byteorder)


def _wakeup_pair() -> tuple[int, int]:
    """A non-blocking fd pair for waking the loop: one eventfd where there is
    one (one fd, two roles), a pipe elsewhere."""
    if hasattr(os, "eventfd"):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return fd, fd
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    return read_end, write_end
