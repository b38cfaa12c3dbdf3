"""Child processes on the trio driver: weft's shared start, Trio streams over the pipes.

``TrioRuntime.spawn_process`` starts the child with weft's own
:func:`~weft.drivers._core.child_processes.start_child`, shared by every
driver (so the :class:`~weft.drivers.Process` it returns, its exit status
and its signals, are the same everywhere; a thread waits for the exit), and
runs the protocol over the parent's ends with the driver's transport: a
pipe pair (:class:`~weft.drivers.trio._pipes.PipePair`), or the PTY's
master as one ``trio.lowlevel.FdStream``, where ``EIO`` is the EOF it
means.  A child's stderr read by a protocol of its own gets a
:class:`TrioReadOnlyTransport`.  (``trio.lowlevel.open_process`` would give
Trio's ``Process``, with other names and another wait: weft's is kept.)
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import trio

from weft.drivers._core.child_processes import (
    Process,
    ReadOnly,
    StderrOption,
    start_with_protocols,
)
from weft.drivers.trio._pipes import pipe_stream
from weft.drivers.trio._plumbing import TaskHost
from weft.drivers.trio._transport import TrioTransport

__all__ = ["ProcessHost", "TrioReadOnlyTransport", "spawn"]

# The EOF a PTY's master reads once the child side is gone.
_PTY_EOF = frozenset({errno.EIO})


class TrioReadOnlyTransport(ReadOnly, TrioTransport):
    """The trio driver's transport for a descriptor it only reads (a child's stderr)."""


class ProcessHost(TaskHost, Protocol):
    """The trio runtime, as its child processes see it."""

    @property
    def _processes(self) -> set[Process]:
        """The children still running."""
        ...

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Any:
        """From the thread that waits for a child's exit."""
        ...

    def _track(self, transport: TrioTransport) -> TrioTransport:
        """Keep ``transport`` among the runtime's open connections until it ends."""
        ...


def spawn(
    runtime: ProcessHost,
    factory: Callable[[], Any],
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    stderr: StderrOption,
    pty: bool,
) -> Process:
    """Start ``args`` with a protocol on its stdio
    (see :meth:`weft.drivers.trio.TrioRuntime.spawn_process`)."""
    process, plumbing, protocol, stderr_protocol = spawned = start_with_protocols(
        runtime,
        runtime._processes,
        factory,
        args,
        env=env,
        cwd=cwd,
        stderr=stderr,
        pty=pty,
        set_reader=None,
    )
    names = spawned.names
    stream, pipe_names, can_write_eof = pipe_stream(plumbing.read_fd, plumbing.write_fd, close_fds=True)
    extra = {**names, "sockname": ("pty", plumbing.read_fd)} if pty else {**names, "pipe": pipe_names["pipe"]}
    transport = runtime._track(
        TrioTransport(
            runtime,
            protocol,
            stream,
            extra,
            can_write_eof=can_write_eof and not pty,
            eof_errors=_PTY_EOF if pty else frozenset(),
        )
    )
    process.transport = transport
    started = [transport]
    if stderr_protocol is not None and plumbing.stderr_fd is not None:
        stderr_stream = trio.lowlevel.FdStream(plumbing.stderr_fd)
        process.stderr_transport = runtime._track(
            TrioReadOnlyTransport(runtime, stderr_protocol, stderr_stream, names, can_write_eof=False)
        )
        started.append(process.stderr_transport)
    for each in started:
        each.start()
    return process
