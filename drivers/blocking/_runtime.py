"""The blocking driver's runtime: weft's Runtime interface over threads and blocking calls.

::

    runtime = BlockingRuntime()
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 8000)
    runtime.run()                      # the calling thread runs the callbacks

One thread, the one inside :meth:`BlockingRuntime.run` (the *scheduler
thread*), runs every protocol callback and timer.  Each connection adds a
reader thread and a writer thread (:mod:`weft.drivers.blocking._transport`),
each listener an accept thread (:mod:`weft.drivers.blocking._sockets`), each
connect a short-lived thread, each child process a thread that waits for its
exit.  See https://github.com/weft-project/weft/blob/main/docs/drivers-blocking.md.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from weft.drivers._core.child_processes import (
    Process,
    StderrOption,
    start_with_protocols,
)
from weft.drivers._core.connecting import HAPPY_EYEBALLS_DELAY
from weft.drivers._core.connection_limit import checked_idle_timeout, checked_max_connections
from weft.drivers._core.datagram_sockets import (
    open_udp_socket,
    start_endpoint,
    udp_candidates,
    udp_request,
    unix_datagram_socket,
    unix_paths,
)
from weft.drivers._core.futures import Future
from weft.drivers._core.listeners import kept_listener
from weft.drivers._core.signal_handlers import SignalHandlers
from weft.drivers._core.socket_binding import DEFAULT_BACKLOG, bind_tcp, bind_unix, format_address
from weft.drivers._core.timers import Timer
from weft.drivers.blocking._channels import Channel, PipeChannel, channel_names
from weft.drivers.blocking._datagrams import ThreadedDatagramTransport
from weft.drivers.blocking._hand_over import SocketHandOver
from weft.drivers.blocking._scheduler import Scheduler
from weft.drivers.blocking._sockets import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    BlockingListener,
    connect,
)
from weft.drivers.blocking._transport import ReadOnlyThreadedTransport, ThreadedTransport
from weft.protocols.contract import DatagramTransport, Transport
from weft.protocols.errors import ClosedResourceError

__all__ = ["BlockingRuntime"]

# How long close() lets aborted connections reach connection_lost.
_CLOSE_WAIT = 5.0


class BlockingRuntime:
    """A :class:`~weft.drivers._runtime.Runtime` on threads and blocking calls.

    Defaults for its listeners (each ``listen_*`` call may say otherwise):
    ``max_connections`` bounds each listener's pool, 256 by default; a
    connection over it gets ``busy_reply`` at once (``None``, the default:
    it is closed with no reply); ``idle_timeout`` closes a served connection
    on which no byte moved either way for that long, 300 s by default
    (``math.inf``: never).  See :class:`~weft.drivers.blocking._sockets.BlockingListener`.
    Connections it makes itself (``connect_*``, ``spawn_process``) have no
    idle timeout.  Its ``now`` and ``call_later`` make it a
    :class:`weft.protocols.contract.Clock` too.
    """

    name = "blocking"

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        busy_reply: bytes | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        #: Each listener's pool size, unless its ``listen_*`` call says otherwise.
        self.max_connections = checked_max_connections(max_connections)
        #: What a connection over a listener's pool is answered (None: nothing).
        self.busy_reply = busy_reply
        #: Seconds without a byte either way before a served connection closes (None: never).
        self.idle_timeout = checked_idle_timeout(idle_timeout)
        self._scheduler = Scheduler()
        self._listeners: set[BlockingListener] = set()
        self._connections: set[ThreadedTransport] = set()
        # The connects under way, each with what ends it (close() does).
        self._connecting: dict[object, Callable[[], object]] = {}
        self._endpoints: set[ThreadedDatagramTransport] = set()
        # Children still running (see spawn_process).
        self._processes: set[Process] = set()
        self._signals = SignalHandlers(self._scheduler.call_soon_threadsafe, self._scheduler.watch_reader)
        # Sockets the accept threads accepted, queued for the scheduler to start.
        self._hand_over = SocketHandOver(self._scheduler.call_soon_threadsafe)

    # -------------------------------------------------------------- clock

    def now(self) -> float:
        """Monotonic seconds."""
        return self._scheduler.now()

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` on the next turn (safe from any thread)."""
        return self._scheduler.call_soon(callback, *args)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds (call it from the scheduler thread)."""
        return self._scheduler.call_later(delay, callback, *args)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Timer:
        """:meth:`call_soon` from any thread or a signal handler; wakes the scheduler."""
        return self._scheduler.call_soon_threadsafe(callback, *args)

    # ---------------------------------------------------------- endpoints

    def listen_tcp(
        self,
        factory: Callable[[], Any],
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        backlog: int = DEFAULT_BACKLOG,
        max_connections: int | None = None,
        busy_reply: bytes | None = None,
        idle_timeout: float | None = None,
    ) -> BlockingListener:
        """Accept TCP connections on every address ``host`` resolves to; port 0 picks a free one.

        A port in use or an unknown host raises ``OSError`` now.  At most
        ``max_connections`` are served at once; a connection over that gets
        ``busy_reply`` at once and is closed.  A served connection with no
        byte either way for ``idle_timeout`` seconds is closed.  ``None``
        means the runtime's value for each of the three.
        """
        self._check_open()
        sockets = bind_tcp(host, port, backlog=backlog)
        return self._listen(factory, sockets, max_connections, busy_reply, idle_timeout)

    def listen_unix(
        self,
        factory: Callable[[], Any],
        path: str,
        *,
        backlog: int = DEFAULT_BACKLOG,
        max_connections: int | None = None,
        busy_reply: bytes | None = None,
        idle_timeout: float | None = None,
    ) -> BlockingListener:
        """Accept connections on a UNIX-domain socket at ``path`` (a stale
        socket file is replaced); the rest as :meth:`listen_tcp`."""
        self._check_open()
        sockets = [bind_unix(path, backlog=backlog)]
        return self._listen(factory, sockets, max_connections, busy_reply, idle_timeout)

    def _listen(
        self,
        factory: Callable[[], Any],
        sockets: list[socket.socket],
        max_connections: int | None,
        busy_reply: bytes | None,
        idle_timeout: float | None,
    ) -> BlockingListener:
        make = partial(
            BlockingListener,
            self,
            factory,
            sockets,
            max_connections=self.max_connections if max_connections is None else max_connections,
            busy_reply=self.busy_reply if busy_reply is None else busy_reply,
            idle_timeout=self.idle_timeout if idle_timeout is None else idle_timeout,
        )
        return kept_listener(make, sockets, self._listeners)

    def connect_tcp(
        self,
        factory: Callable[[], Any],
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        happy_eyeballs_delay: float | None = HAPPY_EYEBALLS_DELAY,
    ) -> Future[Transport]:
        """Connect to ``host:port``, with Happy Eyeballs across its addresses
        (a thread per attempt, the next one ``happy_eyeballs_delay`` seconds
        after the previous; ``None``: one after another).  The future
        (resolved on the scheduler thread) gets the transport once
        ``connection_made`` has run, or the error: ``ConnectionRefusedError``
        and others with the address in the message, ``TimeoutError`` after
        ``timeout`` seconds, ``socket.gaierror``, or what the factory raised."""
        self._check_open()
        target = format_address((host, port))
        return connect(self, factory, socket.AF_INET, (host, port), target, timeout, happy_eyeballs_delay)

    def connect_unix(
        self, factory: Callable[[], Any], path: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT
    ) -> Future[Transport]:
        """Connect to the UNIX-domain socket at ``path`` (errors as :meth:`connect_tcp`),
        waiting for room while the listener's backlog is full, up to
        ``timeout``: then ``ListenerBacklogFullError``."""
        self._check_open()
        return connect(self, factory, socket.AF_UNIX, path, path, timeout)

    def connect_pipes(
        self, factory: Callable[[], Any], read_fd: int, write_fd: int, *, close_fds: bool = True
    ) -> ThreadedTransport:
        """Run a protocol over two descriptors (stdio, pipes, a socket as both).

        ``connection_made`` runs now when called from the scheduler thread,
        else on its next turn.  The descriptors keep their blocking mode;
        with ``close_fds`` they are closed when the connection ends.
        """
        self._check_open()
        protocol = factory()
        transport = self._transport(protocol, PipeChannel(read_fd, write_fd, close_fds=close_fds))
        if self._scheduler.on_scheduler_thread():
            transport.start()
        else:
            self.call_soon_threadsafe(transport.start)
        return transport

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
        """A UDP endpoint (IPv4 or IPv6) served by a thread of its own.

        The arguments and the future are the reactor's
        (:meth:`weft.drivers.reactor.Reactor.open_udp`); the future resolves
        on the scheduler thread, once ``connection_made`` has run there.
        Names are looked up in a short-lived thread.  See
        :mod:`weft.drivers.blocking._datagrams`.
        """
        self._check_open()
        request = udp_request(
            local_address, remote_address, family, reuse_port=reuse_port, allow_broadcast=allow_broadcast
        )
        result: Future[DatagramTransport] = Future(self.call_soon_threadsafe)

        def make() -> None:  # in a thread when a name is to be looked up
            try:
                sock, peer = open_udp_socket(request, udp_candidates(request))
            except OSError as exc:
                self.call_soon_threadsafe(result.set_exception, exc)
                return
            self.call_soon_threadsafe(
                start_endpoint, factory, sock, None, partial(self._endpoint, sock, peer, None), result
            )

        if request.needs_lookup:
            threading.Thread(target=make, name=f"weft-resolve {request.describe()}", daemon=True).start()
        else:
            make()
        return result

    def open_unix_datagram(
        self,
        factory: Callable[[], Any],
        local_path: str | bytes | os.PathLike[str] | None = None,
        remote_path: str | bytes | os.PathLike[str] | None = None,
    ) -> Future[DatagramTransport]:
        """A UNIX datagram endpoint bound to ``local_path`` and connected to
        ``remote_path`` (either may be ``None``), as on the reactor."""
        self._check_open()
        local, remote = unix_paths(local_path, remote_path)
        result: Future[DatagramTransport] = Future(self.call_soon_threadsafe)
        try:
            sock, peer, made = unix_datagram_socket(local, remote)
        except OSError as exc:
            self.call_soon_threadsafe(result.set_exception, exc)
            return result
        self.call_soon_threadsafe(
            start_endpoint, factory, sock, made, partial(self._endpoint, sock, peer, made), result
        )
        return result

    def _endpoint(
        self, sock: socket.socket, peer: Any, socket_file: str | None, protocol: Any
    ) -> ThreadedDatagramTransport:
        """On the scheduler thread: the transport over ``sock``, kept among the runtime's endpoints."""
        transport = ThreadedDatagramTransport(self._scheduler, protocol, sock, peer, socket_file)
        self._endpoints.add(transport)
        transport.on_lost.append(self._endpoints.discard)
        return transport

    def spawn_process(
        self,
        factory: Callable[[], Any],
        args: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stderr: StderrOption = None,
        pty: bool = False,
    ) -> Process:
        """Start ``args`` (no shell) with a protocol on its stdin and stdout, or on a PTY.

        As the reactor's ``spawn_process`` (:mod:`weft.drivers._core.child_processes`):
        ``stderr`` is a :class:`~weft.drivers._core.child_processes.Stderr` choice or
        a protocol factory for a read-only transport; the :class:`Process`
        gives the exit status (``returncode``, ``exited``) and sends signals.
        A thread waits for the child's exit.  ``connection_made`` runs now when
        called from the scheduler thread, else on its next turn.
        """
        self._check_open()
        process, plumbing, protocol, stderr_protocol = spawned = start_with_protocols(
            self._scheduler,
            self._processes,
            factory,
            args,
            env=env,
            cwd=cwd,
            stderr=stderr,
            pty=pty,
            set_reader=None,
        )
        names = spawned.names
        channel = PipeChannel(plumbing.read_fd, plumbing.write_fd, close_fds=True, eio_is_eof=pty)
        started = [
            self._transport(
                protocol, channel, {**names, "sockname": ("pty", plumbing.read_fd)} if pty else names
            )
        ]
        process.transport = started[0]
        if stderr_protocol is not None and plumbing.stderr_fd is not None:
            channel = PipeChannel(plumbing.stderr_fd, plumbing.stderr_fd, close_fds=True)
            process.stderr_transport = self._transport(
                stderr_protocol, channel, names, transport_class=ReadOnlyThreadedTransport
            )
            started.append(process.stderr_transport)
        for transport in started:
            if self._scheduler.on_scheduler_thread():
                transport.start()
            else:
                self.call_soon_threadsafe(transport.start)
        return process

    def _transport(
        self,
        protocol: Any,
        channel: Channel,
        extra: dict[str, Any] | None = None,
        *,
        transport_class: type[ThreadedTransport] | None = None,
        idle_timeout: float | None = None,
    ) -> ThreadedTransport:
        """A transport this runtime keeps track of while it is open (``extra`` adds to its names)."""
        make = ThreadedTransport if transport_class is None else transport_class
        names = {**channel_names(channel), **(extra or {})}
        transport = make(self._scheduler, protocol, channel, names, idle_timeout=idle_timeout)
        self._connections.add(transport)
        transport.on_lost.append(self._connections.discard)
        return transport

    # ------------------------------------------------------------ signals

    def add_signal_handler(self, signum: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the scheduler thread when ``signum`` arrives (main thread only)."""
        self._check_open()
        self._signals.add(signum, callback, *args)

    def remove_signal_handler(self, signum: int) -> bool:
        """Restore the handler that was there before; whether there was one of ours."""
        return self._signals.remove(signum)

    # ------------------------------------------------------------ running

    def run(self) -> None:
        """Run callbacks and timers on the calling thread until :meth:`stop`."""
        self._check_open()
        self._scheduler.run()

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until ``condition()`` holds after a turn or ``timeout`` seconds pass; whether it held."""
        self._check_open()
        return self._scheduler.run_until(condition, timeout)

    def stop(self) -> None:
        """Make :meth:`run` return after the current turn (any thread may call it)."""
        self._scheduler.stop()

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is running."""
        return self._scheduler.running

    @property
    def connections(self) -> set[ThreadedTransport]:
        """Every connection this runtime made that is still open."""
        return self._connections

    def close(self) -> None:
        """Close the listeners, abort the connections and let them end, restore signal handlers.

        Not while :meth:`run` is running.
        """
        if self._scheduler.running:
            raise RuntimeError("cannot close a running runtime")
        if self._scheduler.closed:
            return
        for listener in list(self._listeners):
            listener.close()
        # Accepted, but their start still queued: the scheduler's queue is
        # dropped below, and would leave them to the garbage collector.
        self._hand_over.close()
        self._signals.remove_all()
        for end in list(self._connecting.values()):
            end()
        for transport in list(self._connections):
            transport.abort()
        for endpoint in list(self._endpoints):
            endpoint.abort()
        self._scheduler.run_until(lambda: not self._connections and not self._endpoints, _CLOSE_WAIT)
        for child in list(self._processes):
            child._detach()  # a thread already waits for it: it is reaped whenever it exits
        self._scheduler.close()

    def __enter__(self) -> BlockingRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._scheduler.closed:
            raise ClosedResourceError("the runtime is closed")
