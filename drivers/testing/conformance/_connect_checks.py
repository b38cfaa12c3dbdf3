"""The connect checks: how a runtime's ``connect_unix`` meets a listener whose backlog is full.

A UNIX-domain ``connect`` to a listener whose accept queue is full does not
go on in the background as TCP's does: it fails with ``EAGAIN``, and the
socket, never connected, still polls writable with no error.  A driver
that runs the usual "wait for writability, read ``SO_ERROR``" dance hands
out a transport over nothing.  These checks hold a runtime to weft's
promise instead (:mod:`weft.drivers._core.unix_connecting`): the connect
waits while the backlog is full, completes once the listener makes room,
with bytes flowing both ways, and otherwise fails at its deadline with
:class:`~weft.drivers.ListenerBacklogFullError`, leaving no descriptor open.

They need a runtime (a :class:`~weft.drivers.testing.conformance.RuntimeHarness`,
whose carrier does not matter) and a real listener of their own, a plain
socket that listens with a backlog of 0 and accepts only when told: the
memory driver, whose listeners are in memory, has no backlog to fill and
steps aside.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import inspect
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from weft.drivers._core.unix_connecting import ListenerBacklogFullError
from weft.drivers._runtime import Runtime, UNIXRuntime
from weft.drivers.testing._memory_runtime import MemoryRuntime
from weft.drivers.testing.conformance._checking import Group
from weft.drivers.testing.conformance._expectations import CheckFailure, NotApplicable, expect, expect_equal
from weft.drivers.testing.conformance._report import ConformanceError, Report, run_check
from weft.drivers.testing.conformance._runtime_harness import RuntimeHarness
from weft.drivers.testing.conformance._session import A_WHILE, TIMEOUT, FlowRecorder
from weft.protocols.errors import ClosedResourceError

__all__ = ["CONNECT_CHECKS", "ConnectCheck", "check_connecting", "run_connect_checks"]

#: The timeout the failing connect is given, in seconds: short, so that the
#: check is quick; only an input, never a bound the check measures.
SHORT_CONNECT_TIMEOUT = 0.2

#: At most this many connections fill a backlog of 0 (Linux queues one).
_MAX_FILLERS = 64


@dataclass(frozen=True)
class ConnectCheck:
    """One connect check: a name that says what it checks, its group, its code.

    Calling it runs it once on a new runtime of the harness's, closed
    afterwards, as a stream :class:`~weft.drivers.testing.conformance.Check`
    runs on connections of its own.
    """

    name: str
    group: Group
    function: Callable[[Runtime], None]

    @property
    def description(self) -> str:
        """What the check proves, from its docstring."""
        return inspect.cleandoc(self.function.__doc__ or self.name)

    def __call__(self, harness: RuntimeHarness) -> None:
        """Run the check on a new runtime of ``harness``'s."""
        runtime = harness.open_runtime()
        try:
            if isinstance(runtime, MemoryRuntime):
                raise NotApplicable("the memory driver's listeners are in memory: no kernel backlog to fill")
            if not isinstance(runtime, UNIXRuntime):
                raise NotApplicable("the runtime has no connect_unix")
            self.function(runtime)
        finally:
            runtime.close()

    def __repr__(self) -> str:
        return f"<ConnectCheck {self.name} ({self.group.value})>"


class _FullBacklog:
    """A UNIX listener with a backlog of 0, which accepts only when told, its
    backlog filled by plain sockets (one, on Linux) until a connect says ``EAGAIN``."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="weft-backlog-")
        self.path = os.path.join(self.directory, "socket")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.fillers: list[socket.socket] = []
        self.accepted: list[socket.socket] = []
        self.listener.bind(self.path)
        self.listener.listen(0)
        self.listener.settimeout(TIMEOUT)
        for _ in range(_MAX_FILLERS):
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            code = filler.connect_ex(self.path)
            if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                filler.close()
                return
            self.fillers.append(filler)
            if code:
                raise CheckFailure(f"filling the backlog: connect said {os.strerror(code)}")
        raise NotApplicable(f"a UNIX backlog of 0 took {_MAX_FILLERS} connections here and was not full")

    def drain(self) -> None:
        """Accept every filler: the backlog has room again."""
        for _ in self.fillers:
            self.accept()

    def accept(self) -> socket.socket:
        """Accept the next connection waiting (the fillers come first)."""
        try:
            sock, _address = self.listener.accept()
        except TimeoutError as exc:
            raise CheckFailure(f"no connection to accept in {TIMEOUT:g} s") from exc
        self.accepted.append(sock)
        return sock

    def close(self) -> None:
        """Close every socket, remove the directory."""
        for sock in (*self.fillers, *self.accepted, self.listener):
            sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def _full_backlog() -> Iterator[_FullBacklog]:
    backlog = _FullBacklog()
    try:
        yield backlog
    finally:
        backlog.close()


def _open_descriptors() -> int | None:
    """How many descriptors the process has open, where the system says (Linux's /proc)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _outcome(future: Any) -> str:
    """What a settled connect came to, for a failure's message."""
    error = future.exception()
    if error is not None:
        return f"it failed with {type(error).__name__}: {error}"
    return f"it gave {future.result()!r}"


def _pending_connect(runtime: Runtime, backlog: _FullBacklog) -> tuple[FlowRecorder, Any]:
    """``connect_unix`` to ``backlog``'s full listener, given a while: the
    client protocol and the future, which must still be pending."""
    client = FlowRecorder()
    connecting = runtime.connect_unix(lambda: client, backlog.path, timeout=TIMEOUT)
    runtime.run_until(connecting.done, A_WHILE)
    if connecting.done():
        raise CheckFailure(f"the connect settled while the backlog was full: {_outcome(connecting)}")
    return client, connecting


def a_unix_connect_waits_while_the_backlog_is_full_and_connects_once_there_is_room(runtime: Runtime) -> None:
    """``connect_unix`` to a listener whose backlog is full stays pending (no
    transport over a socket that never connected); once the listener accepts
    what fills it, the connect completes, and bytes flow both ways."""
    with _full_backlog() as backlog:
        client, connecting = _pending_connect(runtime, backlog)
        expect(not client.made, "connection_made came while the backlog was full")
        backlog.drain()
        expect(
            runtime.run_until(connecting.done, TIMEOUT),
            f"the connect did not complete in {TIMEOUT:g} s once the listener had accepted",
        )
        if connecting.exception() is not None:
            raise CheckFailure(f"once the backlog had room, {_outcome(connecting)}")
        expect(client.made, "the client's connection_made before the future's result")
        accepted = backlog.accept()
        server = FlowRecorder()
        runtime.connect_pipes(lambda: server, accepted.fileno(), accepted.fileno(), close_fds=False)
        try:
            expect(runtime.run_until(lambda: server.made, TIMEOUT), "the accepted end's connection_made")
            client.transport.write(b"ping")
            expect(
                runtime.run_until(lambda: server.received == b"ping", TIMEOUT),
                f"the listener's end got {server.received!r}, not b'ping'",
            )
            server.transport.write(b"pong")
            expect(
                runtime.run_until(lambda: client.received == b"pong", TIMEOUT),
                f"the client got {client.received!r}, not b'pong'",
            )
        finally:
            for protocol in (client, server):
                if protocol.made and not protocol.lost:
                    protocol.transport.abort()
            runtime.run_until(lambda: all(p.lost for p in (client, server) if p.made), TIMEOUT)


def a_unix_connect_to_a_backlog_that_stays_full_fails_at_its_deadline(runtime: Runtime) -> None:
    """``connect_unix`` to a listener whose backlog stays full fails once its
    timeout passes, with ``ListenerBacklogFullError`` (a ``TimeoutError``)
    naming the path and the full backlog; no protocol is made and no
    descriptor is left open."""
    with _full_backlog() as backlog:
        client = FlowRecorder()
        before = _open_descriptors()
        connecting = runtime.connect_unix(lambda: client, backlog.path, timeout=SHORT_CONNECT_TIMEOUT)
        expect(runtime.run_until(connecting.done, TIMEOUT), f"the connect never settled in {TIMEOUT:g} s")
        error = connecting.exception()
        if not isinstance(error, ListenerBacklogFullError):
            raise CheckFailure(f"not ListenerBacklogFullError: {_outcome(connecting)}")
        expect(isinstance(error, TimeoutError), "ListenerBacklogFullError is not a TimeoutError")
        expect(backlog.path in str(error), f"the error does not name the path: {error}")
        expect("backlog" in str(error), f"the error does not say the backlog was full: {error}")
        expect(not client.made, "connection_made came for a connect that failed")
        after = _open_descriptors()
        if before is not None:
            expect_equal(after, before, "the descriptors open after the failed connect (before it)")


def closing_the_runtime_ends_a_unix_connect_under_way(runtime: Runtime) -> None:
    """A runtime closed while ``connect_unix`` waits for room in a full
    backlog ends the connect: its future fails with ``ClosedResourceError``
    naming the path, no protocol is made, and its socket is closed (none is
    left for the garbage collector to find)."""
    with _full_backlog() as backlog:
        client, connecting = _pending_connect(runtime, backlog)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            runtime.close()
            gc.collect()
        expect(connecting.done(), "the connect was still pending once the runtime was closed")
        error = connecting.exception()
        if not isinstance(error, ClosedResourceError):
            raise CheckFailure(f"not ClosedResourceError: {_outcome(connecting)}")
        expect(backlog.path in str(error), f"the error does not name the path: {error}")
        expect(not client.made, "connection_made came for a connect the runtime's close ended")
        leaked = [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)]
        expect(not leaked, f"left to the garbage collector: {leaked}")


CONNECT_CHECKS: tuple[ConnectCheck, ...] = tuple(
    ConnectCheck(function.__name__, Group.WEFT_PROMISE, function)
    for function in (
        a_unix_connect_waits_while_the_backlog_is_full_and_connects_once_there_is_room,
        a_unix_connect_to_a_backlog_that_stays_full_fails_at_its_deadline,
        closing_the_runtime_ends_a_unix_connect_under_way,
    )
)


def run_connect_checks(harness: RuntimeHarness, checks: Iterable[ConnectCheck] = CONNECT_CHECKS) -> Report:
    """Run ``checks`` on ``harness``, each on a runtime of its own; report every outcome."""
    return Report(harness.name, tuple(run_check(check, harness) for check in checks))


def check_connecting(harness: RuntimeHarness) -> Report:
    """Run every connect check: what a weft driver's ``connect_unix`` must pass.

    Returns the report when none failed; raises :class:`ConformanceError`
    naming every check that did.
    """
    report = run_connect_checks(harness)
    if report.failed:
        raise ConformanceError(report)
    return report
