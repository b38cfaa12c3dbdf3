"""Child processes for every driver: starting one, its stdio plumbing, its exit and signals.

A runtime's ``spawn_process`` starts a program and hands a protocol ONE
duplex stream transport: what the protocol writes goes to the child's stdin,
what the child prints to stdout arrives as ``data_received``, and
``write_eof`` closes the child's stdin.  So any weft protocol (a line
protocol, TLS) runs over a subprocess exactly as over a socket.  With
``pty=True`` the child runs on a pseudo-terminal instead, in a session of its
own.  This module is what the drivers share: :func:`start_child` (checking
the arguments, making the pipes or the PTY, starting the program),
:func:`start_with_protocols` (that, with the protocols made first) and
:class:`Process`; each driver makes its own transports over the descriptors.

The :class:`Process` tells the exit status (``returncode``, and the
``exited`` future) and sends signals.  The stream and the process end
independently: ``connection_lost`` says the stream is over, ``exited`` that
the process is, and neither waits for the other, because either can outlive
the other (a child can close stdout and go on running; a grandchild can
keep the pipe open after the child has exited).  Wait for both when both
matter.

On the reactor the exit is learned from a pidfd it watches (Linux 5.3 and
later): no ``SIGCHLD`` handler, nothing global, and signals go through the
pidfd too, so they can never hit a recycled PID.  Elsewhere (and on the
blocking driver) a thread per child waits for it and wakes the runtime.
Either way the child is reaped: a child still running when its runtime
closes is waited for by a thread, so it never lingers as a zombie.
"""

from __future__ import annotations

import enum
import fcntl
import os
import signal
import subprocess
import termios
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple, Protocol

from weft.drivers._core.futures import Future
from weft.protocols.errors import ArgumentError

__all__ = [
    "Plumbing",
    "Process",
    "ProcessHost",
    "ReadOnly",
    "Spawned",
    "Stderr",
    "StderrOption",
    "checked_argv",
    "split_stderr",
    "start_child",
    "start_with_protocols",
]

# Looked up at each spawn, so that tests can take it away to exercise the thread.
_pidfd_open: Callable[[int], int] | None = getattr(os, "pidfd_open", None)
_pidfd_send_signal: Callable[[int, int], None] | None = getattr(signal, "pidfd_send_signal", None)

# Run in the child between fork and exec, where the PTY's slave side is
# already its stdin and it leads a new session: make the PTY its controlling
# terminal, so that ^C, job control and a hang-up reach it as on a real
# terminal.  A partial of C functions, so that no Python code runs in the
# forked child (the reason preexec_fn is frowned upon in threaded programs).
_TAKE_CONTROLLING_TERMINAL = partial(fcntl.ioctl, 0, termios.TIOCSCTTY, 0)

#: How a host watches a descriptor for reading (the reactor's ``_set_reader``).
SetReader = Callable[[int, Callable[[], object] | None, Any], None]


class ProcessHost(Protocol):
    """What a :class:`Process` needs from its runtime."""

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Any:
        """Run ``callback(*args)`` on the runtime's next turn."""
        ...

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Any:
        """The same, from another thread."""
        ...


class ReadOnly:
    """Mixed into a stream transport that only reads (a child's stderr): it
    can be paused, resumed and closed, and refuses to write."""

    __slots__ = ()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Refused: there is nobody to write to."""
        raise NotImplementedError("this transport only reads")

    def writelines(self, list_of_data: Any) -> None:
        """Refused, as :meth:`write`."""
        raise NotImplementedError("this transport only reads")

    def write_eof(self) -> None:
        """Refused, as :meth:`write`."""
        raise NotImplementedError("this transport only reads")

    def write_file(self, region: Any) -> None:
        """Refused, as :meth:`write` (the region is closed: the transport was given it)."""
        region.close()
        raise NotImplementedError("this transport only reads")

    def can_write_eof(self) -> bool:
        """False: it has no output."""
        return False


class Stderr(enum.Enum):
    """Where a child's stderr goes, when no protocol factory is given to read it."""

    #: This process's stderr (the default without a PTY).
    INHERIT = "inherit"
    #: Nowhere: ``/dev/null``.
    DEVNULL = "devnull"
    #: Into the transport's read side, mixed with stdout (on a PTY: the terminal, the default).
    STDOUT = "stdout"


class Process:
    """A child started by a runtime's ``spawn_process`` (the reactor's, the
    coroutine driver's, the blocking driver's).

    ``transport`` is the stream to its stdin and stdout (or its PTY);
    ``stderr_transport`` the one its stderr is read from, when a protocol
    factory was given for it.  ``exited`` gets the exit status, as
    ``returncode`` does.
    """

    #: The stream to the child's stdin and from its stdout (or its PTY).
    transport: Any

    def __init__(
        self, host: ProcessHost, popen: subprocess.Popen[bytes], args: tuple[str, ...], registry: set[Process]
    ) -> None:
        self._host = host
        # The runtime's children still running: it detaches them when it closes.
        self._registry = registry
        self._popen = popen
        #: The command line.
        self.args = args
        #: The child's process id.
        self.pid: int = popen.pid
        #: Resolves with the exit status once the child has exited (and been reaped).
        self.exited: Future[int] = Future(host.call_soon)
        #: The stream from the child's stderr, when it is read by a protocol.
        self.stderr_transport: Any = None
        self._returncode: int | None = None
        self._pidfd: int | None = None
        self._set_reader: SetReader | None = None

    @property
    def returncode(self) -> int | None:
        """None while running; then the exit code, or ``-signum`` if a signal ended it (as subprocess)."""
        return self._returncode

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the child; once it has exited, do nothing (as subprocess)."""
        if self._returncode is not None:
            return
        if self._pidfd is not None and _pidfd_send_signal is not None:
            try:
                _pidfd_send_signal(self._pidfd, signum)
            except ProcessLookupError:
                pass  # it exited and something outside weft reaped it
        else:
            # Popen checks, under its lock, that it has not reaped the child.
            self._popen.send_signal(signum)

    def terminate(self) -> None:
        """Ask the child to end: ``SIGTERM``."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """End the child now: ``SIGKILL``."""
        self.send_signal(signal.SIGKILL)

    def __repr__(self) -> str:
        state = "running" if self._returncode is None else f"returncode={self._returncode}"
        return f"<Process pid={self.pid} {state} {self.args[0]!r}>"

    # ------------------------------------------------------- the exit

    def _watch_exit(self, set_reader: SetReader | None) -> None:
        """Learn of the exit: from a pidfd if the host can watch one (``set_reader``), else a thread."""
        pidfd = None if set_reader is None else _open_pidfd(self.pid)
        if set_reader is None or pidfd is None:
            self._wait_in_thread(report=True)
            return
        self._pidfd = pidfd
        self._set_reader = set_reader
        set_reader(pidfd, self._pidfd_ready, None)

    def _pidfd_ready(self) -> None:
        # The pidfd is readable once the child has exited: reap it.
        returncode = self._popen.poll()
        if returncode is not None:
            self._stop_watching()
            self._exit(returncode)

    def _stop_watching(self) -> None:
        if self._pidfd is not None and self._set_reader is not None:
            self._set_reader(self._pidfd, None, None)
            os.close(self._pidfd)
            self._pidfd = None

    def _wait_in_thread(self, *, report: bool) -> None:
        def wait() -> None:
            returncode = self._popen.wait()
            if report:
                self._host.call_soon_threadsafe(self._exit, returncode)

        threading.Thread(target=wait, name=f"weft-wait-{self.pid}", daemon=True).start()

    def _exit(self, returncode: int) -> None:
        if self.exited.done():
            return
        self._returncode = returncode
        self._registry.discard(self)
        self.exited.set_result(returncode)

    def _detach(self) -> None:
        """The runtime is closing: hand the child to a thread that reaps it when it exits."""
        self._registry.discard(self)
        if self._pidfd is not None:
            self._stop_watching()
            self._wait_in_thread(report=False)


def _open_pidfd(pid: int) -> int | None:
    if _pidfd_open is None:
        return None
    try:
        return _pidfd_open(pid)
    except OSError:
        return None  # ENOSYS (a kernel before 5.3), EPERM (a seccomp filter)...


@dataclass
class Plumbing:
    """The descriptors between parent and child: the parent keeps its ends, the child gets the others."""

    read_fd: int  # the child's stdout, or the PTY's master
    write_fd: int  # the child's stdin, or the PTY's master
    stderr_fd: int | None  # the child's stderr, when a protocol reads it
    child_stdin: int
    child_stdout: int
    child_stderr: int | None  # None: inherited; or subprocess.DEVNULL
    child_ends: list[int] = field(default_factory=list)

    @classmethod
    def open(cls, *, pty: bool, stderr: Stderr, capture_stderr: bool) -> Plumbing:
        """Make the pipes (or the PTY) a child with these choices needs; nothing is left open on failure."""
        opened: list[int] = []

        def pair(make: Callable[[], tuple[int, int]]) -> tuple[int, int]:
            ends = make()
            opened.extend(ends)
            return ends

        try:
            if pty:
                master, slave = pair(os.openpty)
                read_fd = write_fd = master
                child_stdin = child_stdout = slave
                child_ends = [slave]
            else:
                child_stdin, write_fd = pair(os.pipe)
                read_fd, child_stdout = pair(os.pipe)
                child_ends = [child_stdin, child_stdout]
            stderr_fd = None
            if capture_stderr:
                stderr_fd, child_stderr = pair(os.pipe)
                child_ends.append(child_stderr)
            elif stderr is Stderr.STDOUT:
                child_stderr = child_stdout
            elif stderr is Stderr.DEVNULL:
                child_stderr = subprocess.DEVNULL
            else:
                child_stderr = None
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        return cls(read_fd, write_fd, stderr_fd, child_stdin, child_stdout, child_stderr, child_ends)

    def close_child_ends(self) -> None:
        """The child has its copies (or was never started): the parent's go."""
        for fd in self.child_ends:
            os.close(fd)
        self.child_ends.clear()

    def close_parent_ends(self) -> None:
        """The child could not be started: nobody will use the parent's ends."""
        for fd in {self.read_fd, self.write_fd, self.stderr_fd}:
            if fd is not None:
                os.close(fd)


# ------------------------------------------------------------------ starting

#: What ``spawn_process`` takes for the child's stderr: a choice, or a
#: protocol factory whose protocol reads it through a read-only transport.
StderrOption = Stderr | Callable[[], Any] | None


def checked_argv(args: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """``args`` as a tuple of strings; TypeError for a string, ArgumentError if empty."""
    if isinstance(args, (str, bytes)):
        raise TypeError("args must be a sequence of a program and its arguments, not a string")
    argv = tuple(os.fspath(arg) for arg in args)
    if not argv:
        raise ArgumentError("args is empty: there is no program to run")
    return argv


def split_stderr(stderr: StderrOption, *, pty: bool) -> tuple[Stderr, Callable[[], Any] | None]:
    """Where stderr goes, and the factory of the protocol reading it (if any).

    None means :attr:`Stderr.INHERIT` without a PTY, the terminal with one.
    """
    if stderr is not None and not isinstance(stderr, Stderr) and not callable(stderr):
        raise TypeError(f"stderr must be a Stderr choice or a protocol factory, not {type(stderr).__name__}")
    factory = None if stderr is None or isinstance(stderr, Stderr) else stderr
    choice = stderr if isinstance(stderr, Stderr) else Stderr.STDOUT if pty else Stderr.INHERIT
    return choice, factory


def start_child(
    host: ProcessHost,
    registry: set[Process],
    argv: tuple[str, ...],
    *,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    stderr: Stderr,
    capture_stderr: bool,
    pty: bool,
    set_reader: SetReader | None,
) -> tuple[Process, Plumbing]:
    """Make the pipes (or the PTY) and start ``argv``; the driver wraps the parent's ends.

    The :class:`Process` returned is in ``registry`` and watched for its
    exit (through a pidfd when ``set_reader`` is given and the kernel has
    pidfds, else by a thread).  A program that cannot be started raises
    here (``FileNotFoundError``, ``PermissionError``) with nothing left open.
    """
    plumbing = Plumbing.open(pty=pty, stderr=stderr, capture_stderr=capture_stderr)
    try:
        popen = subprocess.Popen(
            argv,
            stdin=plumbing.child_stdin,
            stdout=plumbing.child_stdout,
            stderr=plumbing.child_stderr,
            env=env,
            cwd=cwd,
            close_fds=True,
            start_new_session=pty,
            preexec_fn=_TAKE_CONTROLLING_TERMINAL if pty else None,
        )
    except BaseException:
        plumbing.close_parent_ends()
        raise
    finally:
        plumbing.close_child_ends()
    process = Process(host, popen, argv, registry)
    registry.add(process)
    process._watch_exit(set_reader)
    return process, plumbing


class Spawned(NamedTuple):
    """A child :func:`start_with_protocols` started, and the protocols for its transports."""

    process: Process
    plumbing: Plumbing
    #: The protocol on the child's stdin and stdout (or its PTY).
    protocol: Any
    #: The protocol reading the child's stderr, when ``stderr`` was a factory.
    stderr_protocol: Any | None

    @property
    def names(self) -> dict[str, Any]:
        """The extra info every transport of the child gives: the process, and it as the peer."""
        return {"process": self.process, "peername": ("process", self.process.pid)}


def start_with_protocols(
    host: ProcessHost,
    registry: set[Process],
    factory: Callable[[], Any],
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    stderr: StderrOption,
    pty: bool,
    set_reader: SetReader | None,
    check_open: Callable[[], object] | None = None,
) -> Spawned:
    """What every driver's ``spawn_process`` does before it makes its transports.

    Check the arguments (TypeError, ArgumentError), then ``check_open`` (a
    closed runtime raises there), make the protocols, and :func:`start_child`.
    A factory that raises leaves nothing started; a program that cannot be
    started raises with the protocols made and ``connection_made`` never called.
    """
    argv = checked_argv(args)
    choice, stderr_factory = split_stderr(stderr, pty=pty)
    if check_open is not None:
        check_open()
    protocol = factory()
    stderr_protocol = None if stderr_factory is None else stderr_factory()
    process, plumbing = start_child(
        host,
        registry,
        argv,
        env=env,
        cwd=cwd,
        stderr=choice,
        capture_stderr=stderr_protocol is not None,
        pty=pty,
        set_reader=set_reader,
    )
    return Spawned(process, plumbing, protocol, stderr_protocol)
