"""Child processes on the reactor: a protocol talks to a child over its stdin and stdout.

:func:`spawn_process` starts the program (see :mod:`weft.drivers._core.child_processes`,
shared by every driver, for the process, its exit and its signals) and puts
the reactor's descriptor transports over the descriptors: one duplex transport
for stdin and stdout (or the PTY), and a read-only one for stderr when a
protocol reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from weft.drivers._core.child_processes import (
    Process,
    Stderr,
    StderrOption,
    start_with_protocols,
)
from weft.drivers.reactor._pipes import pipe_transport
from weft.protocols.errors import ClosedResourceError

if TYPE_CHECKING:
    from weft.drivers.reactor._plumbing import TransportLoop

__all__ = ["Process", "Stderr", "spawn_process"]


def spawn_process(
    reactor: TransportLoop,
    factory: Callable[[], Any],
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stderr: StderrOption = None,
    pty: bool = False,
) -> Process:
    """Start ``args`` (a program and its arguments; no shell) with a protocol on its stdio.

    ``env`` replaces the environment (None: this one's); ``cwd`` is where it
    starts.  ``stderr`` is a :class:`Stderr` choice or a protocol factory
    whose protocol reads it through a read-only transport; None is
    :attr:`Stderr.INHERIT` without a PTY, the terminal with one.
    ``connection_made`` runs before this returns.  A program that cannot be
    started raises here (``FileNotFoundError``, ``PermissionError``), with
    ``connection_made`` never called and nothing left open.
    """

    def check_open() -> None:
        if reactor._closed:
            raise ClosedResourceError("the reactor is closed")

    process, plumbing, protocol, stderr_protocol = spawned = start_with_protocols(
        reactor,
        reactor._processes,
        factory,
        args,
        env=env,
        cwd=cwd,
        stderr=stderr,
        pty=pty,
        set_reader=reactor._set_reader,
        check_open=check_open,
    )
    extra = spawned.names
    if pty:
        extra["sockname"] = ("pty", plumbing.read_fd)
    process.transport = pipe_transport(
        reactor, protocol, plumbing.read_fd, plumbing.write_fd, at_end="close", extra=extra, pty=pty
    )
    if stderr_protocol is not None and plumbing.stderr_fd is not None:
        process.stderr_transport = pipe_transport(
            reactor,
            stderr_protocol,
            plumbing.stderr_fd,
            plumbing.stderr_fd,
            at_end="close",
            extra=spawned.names,
            transport_class=reactor.read_only_transport_class,
        )
    process.transport.start()
    if process.stderr_transport is not None:
        process.stderr_transport.start()
    return process
