"""The echo servers the benchmarks compare, and a way to run one in its own process.

Run as a script, it is one server::

    python benchmarks/servers.py weft-reactor --cpu 0

It listens on a free loopback port, prints ``READY <port> <pid>`` on stdout
and echoes until it is sent SIGTERM (the default action: the process just
ends, which works alike for every kind).  The kinds:

* ``weft-<driver>`` for every driver in :data:`weft.drivers._registry.DRIVERS`
  that can run here (``weft-reactor`` today; ``weft-asyncio`` and
  ``weft-uvloop`` once those drivers exist), serving
  :class:`weft.protocols.EchoProtocol` through ``open_runtime(name)``;
* ``asyncio``: a bare ``asyncio.Protocol`` echo server on asyncio's default
  event loop, the baseline every ratio is taken against;
* ``uvloop``: the same protocol on uvloop, when uvloop is installed;
* ``c-epoll``: ``c_echo.c``, the floor (what the kernel alone costs);
* ``c-uring``, ``c-uring-multishot``: ``c_uring_echo.c``, the completion
  model's floor, shaped like weft's completion driver or in io_uring's
  cheapest form.  Not run unless asked for;
* ``twisted``: a bare Twisted ``Protocol`` on its default (epoll) reactor,
  when Twisted is installed.  Not run unless asked for;
* ``twisted-on-weft``: the same Twisted protocol on weft's reactor
  (:mod:`weft.drivers.twisted_reactor`).  Not run unless asked for.
* ``trio``: Trio's own echo (a task per connection, ``receive_some`` and
  ``send_all`` on ``trio.serve_tcp``), when Trio is installed, the
  same-loop peer of ``weft-trio``.  Not run unless asked for.

Every Python server first frees one large block (see
:func:`settle_allocator`) unless started with ``--fresh-malloc``.

Imported, it gives :func:`server_kinds` and :class:`ServerProcess`, which
starts one of these pinned to a core and always stops it (by its PID).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

import native

HOST = "127.0.0.1"
# The LISTEN state as /proc/net/tcp writes it.
_TCP_LISTEN = "0A"
#: Seconds a server may take to start listening.
START_TIMEOUT = 30.0
#: Seconds a server may take to die after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class ServerKind:
    """One kind of echo server."""

    name: str
    description: str
    #: The bare (non-weft) server on the same event loop, for the "vs same loop" ratio.
    same_loop_peer: str | None
    #: Whether a default run includes it.
    default: bool


#: The C io_uring floor servers: kind -> c_uring_echo's --mode.
C_URING_MODES = {"c-uring": "driver", "c-uring-multishot": "multishot"}

#: The drivers whose weft row is compared with the bare server on the same loop.
_SAME_LOOP_PEERS = ("asyncio", "uvloop", "twisted", "trio")
#: The drivers whose weft row a default run leaves out.
_ASKED_FOR_ONLY = ("twisted", "trio")


def server_kinds() -> list[ServerKind]:
    """Every kind that can run here, weft's drivers first."""
    from weft.drivers import DRIVERS

    kinds = [
        ServerKind(
            f"weft-{name}",
            f"weft EchoProtocol on the {name} driver",
            name if name in _SAME_LOOP_PEERS else None,
            # Twisted's and Trio's rows (and their peers) run when asked for:
            # they would double a default run, and answer another question.
            name not in _ASKED_FOR_ONLY,
        )
        for name, info in DRIVERS.items()
        if info.available()
    ]
    kinds.append(ServerKind("asyncio", "asyncio.Protocol echo, default event loop", None, True))
    kinds.append(
        ServerKind(
            "asyncio-streams",
            "asyncio streams echo (start_server; read, write, drain), default event loop",
            None,
            True,
        )
    )
    if find_spec("uvloop") is not None:
        kinds.append(ServerKind("uvloop", "asyncio.Protocol echo on uvloop", None, True))
    kinds.append(ServerKind("c-epoll", "C epoll echo (c_echo.c): the floor", None, True))
    kinds.append(
        ServerKind(
            "c-uring", "C io_uring echo shaped like the completion driver (c_uring_echo.c)", None, False
        )
    )
    kinds.append(
        ServerKind(
            "c-uring-multishot",
            "C io_uring echo, multishot receives on provided buffers (c_uring_echo.c --mode multishot)",
            None,
            False,
        )
    )
    kinds.append(
        ServerKind(
            "py-epoll", "bare select.epoll echo loop in Python: the floor for any Python server", None, True
        )
    )
    if find_spec("twisted") is not None:
        kinds.append(ServerKind("twisted", "twisted Protocol echo, default reactor", None, False))
        kinds.append(
            ServerKind(
                "twisted-on-weft", "the same twisted Protocol echo on weft's reactor", "twisted", False
            )
        )
    if find_spec("trio") is not None:
        kinds.append(ServerKind("trio", "Trio echo: a task per connection on trio.serve_tcp", None, False))
    return kinds


# ------------------------------------------------------------------ servers


def settle_allocator() -> None:
    """Put glibc's malloc where a long-running process's is: free one large block.

    glibc serves a request above its mmap threshold (128 KiB at start) with
    a fresh mmap, and raises the threshold to a block's size once such a
    block is freed whole.  asyncio's selector transports read up to 256 KiB
    at a time and shrink the result to what arrived, which leaves the block
    mmapped, so a fresh asyncio server that has only ever seen small
    messages pays an mmap, an mremap, page faults and an munmap on every
    read, and one that has once freed a large buffer (any big read or reply
    does it) never does.  (uvloop reads into a buffer of its own; weft's
    reactor reads 64 KiB, under the threshold.)  Which
    of the two a process is in depends on its history, so the benchmark puts
    every server, weft's included, in the state a long-running one reaches.
    """
    block = bytearray(1024 * 1024)
    del block


# Each takes a callback to call with the port once listening, then serves
# until the process is killed.


def serve_weft(driver: str, ready: Callable[[int], None]) -> None:
    """weft's EchoProtocol on the named driver, through the registry."""
    from weft.drivers import open_runtime
    from weft.protocols import EchoProtocol

    runtime = open_runtime(driver)
    listener = runtime.listen_tcp(EchoProtocol, HOST, 0)
    ready(int(listener.addresses[0][1]))
    runtime.run()


def serve_asyncio(loop_factory: Callable[[], Any], ready: Callable[[int], None]) -> None:
    """The simplest correct asyncio echo server: a Protocol that writes what it gets."""
    import asyncio

    class Echo(asyncio.Protocol):
        transport: asyncio.Transport

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports are not asyncio.Transport subclasses.
            self.transport = cast(asyncio.Transport, transport)

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    loop = loop_factory()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(Echo, HOST, 0))
    ready(int(server.sockets[0].getsockname()[1]))
    loop.run_forever()


def serve_twisted(ready: Callable[[int], None]) -> None:
    """Twisted's echo: a Protocol on the default reactor (epoll on Linux)."""
    from twisted.internet import protocol
    from twisted.internet import reactor as default_reactor

    # zope.interface declarations do not type-check as calls; the reactor is
    # used through Any.
    reactor: Any = default_reactor

    class Echo(protocol.Protocol):
        transport: Any

        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface=HOST)
    ready(int(port.getHost().port))
    reactor.run()


def serve_trio(ready: Callable[[int], None]) -> None:
    """Trio's echo: a task per connection, ``receive_some`` then ``send_all``, on ``trio.serve_tcp``."""
    import functools

    import trio

    async def echo(stream: trio.SocketStream) -> None:
        try:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(trio.serve_tcp, echo, 0, host=HOST))
            ready(int(listeners[0].socket.getsockname()[1]))

    trio.run(main)


def serve_python_floor(ready: Callable[[int], None]) -> None:
    """The least a Python server can do per message: epoll, recv, send, nothing else.

    No buffering, no flow control, no error handling worth the name: not a
    server anyone should run, but the floor that every Python event loop
    (weft's reactor, asyncio) stands on, so the table shows how much of a
    loop's cost is the loop and how much is Python itself.
    """
    import select
    import socket

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(1024)
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN)
    connections: dict[int, socket.socket] = {}
    ready(int(listener.getsockname()[1]))
    listening = listener.fileno()
    while True:
        for fd, _mask in epoll.poll():
            if fd == listening:
                sock, _ = listener.accept()
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connections[sock.fileno()] = sock
                epoll.register(sock.fileno(), select.EPOLLIN)
                continue
            sock = connections[fd]
            data = sock.recv(65536)
            if data:
                sock.send(data)
            else:
                epoll.unregister(fd)
                del connections[fd]
                sock.close()


def serve(kind: str, ready: Callable[[int], None]) -> None:
    """Run the server called ``kind`` (see :func:`server_kinds`)."""
    if kind.startswith("weft-"):
        serve_weft(kind.removeprefix("weft-"), ready)
    elif kind == "asyncio":
        import asyncio

        serve_asyncio(asyncio.new_event_loop, ready)
    elif kind == "asyncio-streams":
        import asyncio

        # The same server as asyncio_loops.py's streams row (imported here:
        # loop_servers imports this module).
        from loop_servers import serve_streams

        serve_streams(asyncio.new_event_loop(), ready)
    elif kind == "uvloop":
        import uvloop

        serve_asyncio(uvloop.new_event_loop, ready)
    elif kind == "twisted":
        serve_twisted(ready)
    elif kind == "twisted-on-weft":
        from weft.drivers.twisted_reactor import install

        install()
        serve_twisted(ready)
    elif kind == "trio":
        serve_trio(ready)
    elif kind == "py-epoll":
        serve_python_floor(ready)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Run one server (the child side of :class:`ServerProcess`)."""
    parser = argparse.ArgumentParser(description="Run one benchmark echo server on loopback.")
    parser.add_argument("kind")
    parser.add_argument("--cpu", type=int, help="pin the server to this core")
    parser.add_argument(
        "--fresh-malloc", action="store_true", help="skip settle_allocator(): keep a fresh process's malloc"
    )
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if not args.fresh_malloc:
        settle_allocator()
    # SIGTERM ends the process with no Python handler involved; SIGINT too,
    # so a Ctrl-C on the benchmark does not print a traceback per server.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    def ready(port: int) -> None:
        print(f"READY {port} {os.getpid()}", flush=True)

    serve(args.kind, ready)


# ------------------------------------------------------------ the parent side


class ServerFailedError(RuntimeError):
    """A server did not start, or died; the message holds its stderr."""


class ServerProcess:
    """One server in its own process, pinned to ``cpu``; killed on exit.

    ``wrapper`` goes before the Python command (``["strace", "-f", ...]``);
    the server's own PID (not the wrapper's) is :attr:`pid`, read from its
    READY line.  ``script`` is the Python script that runs ``kind`` (this
    one by default; ``http_servers.py`` for the HTTP servers), given
    ``arguments`` after the kind; it takes ``--cpu`` and ``--fresh-malloc``
    as this one does.  Use as a context manager: the server is stopped, and
    the wrapper waited for, whatever happens.
    """

    def __init__(
        self,
        kind: str,
        *,
        cpu: int | None,
        wrapper: Sequence[str] = (),
        fresh_malloc: bool = False,
        script: Path | None = None,
        arguments: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self._wrapped = bool(wrapper)
        if kind == "c-epoll":
            command = [*wrapper, str(native.build("c_echo"))]
        elif kind in C_URING_MODES:
            command = [*wrapper, str(native.build("c_uring_echo")), "--mode", C_URING_MODES[kind]]
        else:
            script = script or Path(__file__).resolve()
            command = [*wrapper, sys.executable, str(script), kind, *arguments]
            if fresh_malloc:
                command.append("--fresh-malloc")
        if cpu is not None:
            command += ["--cpu", str(cpu)]
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr)
        self.pid = 0
        self.port = 0
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        readable, _, _ = select.select([stdout], [], [], START_TIMEOUT)
        line = stdout.readline().decode(errors="replace") if readable else ""
        if not line.startswith("READY "):
            raise ServerFailedError(f"{self.kind} server did not start: {line!r}\n{self.errors()}")
        _, port, pid = line.split()
        self.port, self.pid = int(port), int(pid)

    def errors(self) -> str:
        """What the server wrote on stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def open_connections(self) -> int:
        """How many of the server's TCP connections the kernel still holds open on its side
        (any state but LISTEN, with the server's port as the local one: /proc/net/tcp)."""
        count = 0
        with open("/proc/net/tcp") as table:
            next(table)  # the header
            for line in table:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == self.port and fields[3] != _TCP_LISTEN:
                    count += 1
        return count

    def wait_until_disconnected(self, timeout: float = 30.0) -> None:
        """Wait until the server has closed every connection (after the client closed them)."""
        deadline = time.monotonic() + timeout
        while self.open_connections():
            self.check_alive()
            if time.monotonic() > deadline:
                raise ServerFailedError(f"{self.kind} server did not close its connections in {timeout:g} s")
            time.sleep(0.01)

    def check_alive(self) -> None:
        """Raise ServerFailedError if the server has died."""
        if self._process.poll() is not None:
            raise ServerFailedError(
                f"{self.kind} server died (status {self._process.returncode})\n{self.errors()}"
            )

    def stop(self) -> None:
        """SIGTERM the server (SIGKILL after a timeout) and wait for its process and any wrapper.

        Behind a wrapper, the server itself is signalled: strace then writes
        its report and exits on its own, whereas a signalled strace would
        detach and leave the server running.  While the wrapper runs, its
        child's PID cannot have been reused.
        """
        try:
            if self._process.poll() is None:
                targets = self._server_pids()
                for pid in targets:
                    _kill(pid, signal.SIGTERM)
                if not targets:
                    self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                for pid in self._server_pids():
                    _kill(pid, signal.SIGKILL)
                self._process.kill()
                self._process.wait(STOP_TIMEOUT)
        finally:
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._stderr.close()

    def _server_pids(self) -> list[int]:
        """The server's PID behind a wrapper (its READY line's, or the
        wrapper's children if it never got that far); [] without a wrapper."""
        if not self._wrapped:
            return []
        if self.pid:
            return [self.pid]
        return _children(self._process.pid)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _children(parent: int) -> list[int]:
    """The PIDs of ``parent``'s child processes (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == parent:  # fields after the name: state, ppid, ...
            found.append(int(entry))
    return found


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    main()
