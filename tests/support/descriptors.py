"""Checks that a test leaves no file descriptor open and no child unreaped."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def open_fds() -> set[int]:
    """The descriptors this process has open now."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


@contextlib.contextmanager
def no_new_fds() -> Iterator[None]:
    """Fail if the block leaves behind a descriptor it did not find."""
    before = open_fds()
    yield
    # listdir's own descriptor is open during both listings, and closed after.
    leaked = open_fds() - before
    assert not leaked, f"file descriptors left open: {sorted(leaked)} ({_describe(leaked)})"


def _describe(fds: set[int]) -> str:
    names = []
    for fd in sorted(fds):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            names.append("?")
    return ", ".join(names)


def assert_reaped(pid: int) -> None:
    """``pid`` is no child of ours any more: it was waited for, so it is no zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    raise AssertionError(f"process {pid} is still our child: running, or a zombie nobody reaped")
