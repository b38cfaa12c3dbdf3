"""A child process as a stream: ``open_process(runtime, args)``, then send, receive, wait.

The runtime's ``spawn_process`` already gives a protocol ONE duplex
transport to a child (its stdin out, its stdout in; or a PTY), so a child is
a :class:`~weft.drivers.coroutines._streams.StreamProtocol` on that transport
like any peer.  :class:`ProcessStream` is that stream plus the child: its
pid, its exit status (``await wait()``), signals, and its stderr as a second
stream when asked for.

The stream and the exit stay independent, as in the runtime
(https://github.com/weft-project/weft/blob/main/docs/processes.md): closing the stream closes the
child's pipes and does not wait for it to exit, and the child exiting does not close the
stream.  Wait for both when both matter.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from weft.drivers._core.child_processes import Process, Stderr
from weft.drivers._runtime import ProcessRuntime, lacks
from weft.drivers.coroutines._errors import Cancelled
from weft.drivers.coroutines._streams import DEFAULT_READ_LIMIT, Stream, StreamProtocol
from weft.protocols.errors import ArgumentError

__all__ = ["ProcessStream", "StderrChoice", "open_process"]

#: Where :func:`open_process` sends the child's stderr: a :class:`Stderr`
#: choice (``INHERIT``, ``DEVNULL``, ``STDOUT``), ``"stream"`` for a stream of
#: its own (:attr:`ProcessStream.stderr`), or None for the runtime's default.
StderrChoice = Stderr | Literal["stream"] | None


class _StderrProtocol(StreamProtocol):
    """The protocol under a child's stderr stream: read-only, so EOF ends it.

    A plain stream protocol keeps the connection half-open at EOF, for
    sending; a stderr pipe has nothing to send to, and ending at EOF
    releases its descriptor without waiting for :meth:`ProcessStream.close`.
    """

    def eof_received(self) -> bool:
        """Note the end of input and let the transport close."""
        super().eof_received()
        return False


class ProcessStream(Stream):
    """A :class:`Stream` to a child's stdin and from its stdout (or its PTY), and the child.

    Made by :func:`open_process`.  ``send`` writes to the child's stdin,
    ``receive`` and ``readline`` read its stdout, ``send_eof`` closes its
    stdin (not on a PTY: send ``b"\\x04"`` there).  :meth:`wait` gives the
    exit status; :meth:`close` closes the pipes (stderr's too) without
    waiting for the exit or ending the child: most programs end at EOF on
    stdin; ``terminate()`` or ``kill()`` the others.
    """

    def __init__(self, protocol: StreamProtocol, process: Process, stderr: Stream | None = None) -> None:
        super().__init__(protocol)
        self._process = process
        self._stderr = stderr

    @property
    def process(self) -> Process:
        """The runtime's :class:`~weft.drivers.reactor.Process` (also ``get_extra_info("process")``)."""
        return self._process

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while the child runs; then its exit code, or ``-signum`` if a signal ended it."""
        return self._process.returncode

    @property
    def stderr(self) -> Stream | None:
        """The child's stderr as a read-only stream, with ``stderr="stream"``; else None.

        Read it while reading stdout (another task) if the child may write
        much to it: a pipe nobody reads fills, and the child then waits.
        """
        return self._stderr

    async def wait(self) -> int:
        """Wait until the child has exited (and been reaped); its ``returncode``.

        Cancelling the wait leaves the child alone.
        """
        return await self._process.exited

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the child; once it has exited, do nothing."""
        self._process.send_signal(signum)

    def terminate(self) -> None:
        """Ask the child to end: ``SIGTERM``."""
        self._process.terminate()

    def kill(self) -> None:
        """End the child now: ``SIGKILL``."""
        self._process.kill()

    async def close(self) -> None:
        """Close the child's stdin and stdout (flushing what was sent first), and
        its stderr stream; wait until they are closed, not for the exit.

        If the waiting task is cancelled, the pipes are aborted.
        """
        try:
            await super().close()
            if self._stderr is not None:
                await self._stderr.close()
        except Cancelled:
            self.abort()
            raise

    def abort(self) -> None:
        """Close the pipes at once (stderr's too), dropping whatever is unsent."""
        super().abort()
        if self._stderr is not None:
            self._stderr.abort()

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"returncode={self.returncode}"
        return f"{super().__repr__()[:-1]} pid={self.pid} {state}>"


def open_process(
    runtime: ProcessRuntime,
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stderr: StderrChoice = None,
    pty: bool = False,
    read_limit: int = DEFAULT_READ_LIMIT,
) -> ProcessStream:
    """Start ``args`` (a program and its arguments; no shell) on ``runtime``; a stream to it.

    Synchronous, as the runtime's ``spawn_process`` is: the child is running
    when this returns, and a program that cannot be started raises here
    (``FileNotFoundError``, ``PermissionError``), with nothing left open.
    ``env`` replaces the environment (None: this one's); ``cwd`` is where it
    starts; ``pty=True`` runs it on a pseudo-terminal.  ``stderr``:

    * None: this process's stderr (on a PTY: the terminal);
    * ``Stderr.INHERIT``, ``Stderr.DEVNULL``: this process's stderr, nowhere;
    * ``Stderr.STDOUT``: into the stream, mixed with stdout;
    * ``"stream"``: a read-only stream of its own, :attr:`ProcessStream.stderr`.

    Needs a :class:`~weft.drivers.ProcessRuntime` (the reactor, the
    coroutine runtime, the blocking runtime); others (asyncio) raise
    :class:`~weft.drivers.CapabilityError`, a ``NotImplementedError``.
    """
    if not isinstance(runtime, ProcessRuntime):
        raise lacks(runtime, ProcessRuntime, "start processes")
    errors: _StderrProtocol | None = None
    spawn_stderr: Stderr | Callable[[], Any] | None
    if isinstance(stderr, str):
        if stderr != "stream":
            raise ArgumentError(f"stderr must be a Stderr choice, 'stream' or None, not {stderr!r}")
        errors = _StderrProtocol(read_limit=read_limit)
        spawn_stderr = lambda: errors  # noqa: E731 (a factory of this one protocol)
    elif stderr is None or isinstance(stderr, Stderr):
        spawn_stderr = stderr
    else:
        raise TypeError(f"stderr must be a Stderr choice, 'stream' or None, not {type(stderr).__name__}")
    protocol = StreamProtocol(read_limit=read_limit)
    process = runtime.spawn_process(lambda: protocol, args, env=env, cwd=cwd, stderr=spawn_stderr, pty=pty)
    stream = ProcessStream(protocol, process, None if errors is None else errors.stream)
    # The protocol's stream becomes this richer view of the same protocol
    # (a Stream holds no state of its own yet, and nobody has used the plain one).
    protocol.stream = stream
    return stream
