"""Real processes (the ``weft`` command, the example servers) and real sockets,
with every wait bounded.

A :class:`Child` reads its stdout and stderr on threads, so a test waits on
what the child printed (a ``listening on`` line, a reply) with a timeout,
never on time.  Children start in their own session, so a Ctrl-C in the
terminal running pytest does not reach them, and :class:`Children` kills
each one it started, by PID, when the test ends.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from tests.support import TIMEOUT

#: How long any wait may take before the test fails.  Generous: CI machines
#: are slow and shared; a passing test never waits this long.

ROOT = Path(__file__).resolve().parents[2]

#: Runs the command line as ``python -m weft`` does.
WEFT = (sys.executable, "-m", "weft")

#: The line a server prints on stderr once it is ready.
LISTENING = r"^listening on (?P<address>.+)$"


class Child:
    """A child process whose output is collected as it comes."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        stdin: int | IO[bytes] | None = subprocess.PIPE,
        preexec_fn: Callable[[], object] | None = None,
    ) -> None:
        self.args = list(args)
        self.process = subprocess.Popen(
            self.args,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=ROOT,
            preexec_fn=preexec_fn,
        )
        self._changed = threading.Condition()
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, buffer), daemon=True)
            for stream, buffer in ((self.process.stdout, self._stdout), (self.process.stderr, self._stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, stream: IO[bytes] | None, buffer: bytearray) -> None:
        if stream is None:
            return
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            with self._changed:
                buffer.extend(chunk)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------- output

    @property
    def stdout(self) -> bytes:
        """Everything written to stdout so far."""
        with self._changed:
            return bytes(self._stdout)

    @property
    def stderr(self) -> str:
        """Everything written to stderr so far."""
        with self._changed:
            return self._stderr.decode(errors="replace")

    def wait_for(self, found: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        """Wait until ``found()`` holds (it is asked whenever output arrives)."""
        with self._changed:
            if not self._changed.wait_for(found, timeout):
                raise AssertionError(
                    f"no {what} within {timeout} s; stdout {bytes(self._stdout)!r}, "
                    f"stderr {self._stderr.decode(errors='replace')!r}"
                )

    def wait_for_stdout(self, expected: bytes, timeout: float = TIMEOUT) -> None:
        """Wait until stdout holds ``expected``."""
        self.wait_for(lambda: expected in self._stdout, f"{expected!r} on stdout", timeout)

    def wait_for_stderr(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Wait until a whole line of stderr matches ``pattern``; return the match."""
        compiled = re.compile(pattern)
        found: list[re.Match[str]] = []

        def match() -> bool:
            for line in self._stderr.decode(errors="replace").splitlines():
                if (hit := compiled.search(line)) is not None:
                    found.append(hit)
                    return True
            return False

        self.wait_for(match, f"stderr line matching {pattern!r}", timeout)
        return found[0]

    def listening(self) -> str:
        """Wait for the ``listening on ...`` line; return the address it names
        (``127.0.0.1:8000`` also from ``serve http``'s ``http://127.0.0.1:8000/``)."""
        address = self.wait_for_stderr(LISTENING).group("address")
        url = re.fullmatch(r"https?://(?P<address>[^/]+)/", address)
        return url.group("address") if url is not None else address

    def port(self) -> int:
        """Wait for ``listening on 127.0.0.1:PORT``; return the port."""
        address = self.listening()
        host, _, port = address.rpartition(":")
        if host != "127.0.0.1" or not port.isdigit():
            raise AssertionError(f"not a loopback TCP address: {address!r}")
        return int(port)

    # ------------------------------------------------------------ control

    def write(self, data: bytes) -> None:
        """Write to the child's stdin."""
        stdin = self.process.stdin
        if stdin is None:
            raise AssertionError("stdin is not a pipe of ours")
        stdin.write(data)
        stdin.flush()

    def close_stdin(self) -> None:
        """Send EOF to the child's stdin."""
        if self.process.stdin is not None:
            self.process.stdin.close()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child (its PID only)."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait for the child to exit and its output to be read; return its status."""
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.args} still running after {timeout} s; stderr {self.stderr!r}"
            ) from None
        for reader in self._readers:
            reader.join(timeout)
        return status

    def kill(self) -> None:
        """Kill the child if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)
        for reader in self._readers:
            reader.join(TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class Children:
    """Starts children for one test and kills whichever are left at its end."""

    def __init__(self) -> None:
        self.started: list[Child] = []

    def start(
        self,
        *args: str,
        stdin: int | IO[bytes] | None = subprocess.PIPE,
        preexec_fn: Callable[[], object] | None = None,
    ) -> Child:
        """Start ``args`` as a child (``preexec_fn`` runs in the child before it
        starts: to set a resource limit, say)."""
        child = Child(args, stdin=stdin, preexec_fn=preexec_fn)
        self.started.append(child)
        return child

    def weft(
        self,
        *args: str,
        stdin: int | IO[bytes] | None = subprocess.PIPE,
        preexec_fn: Callable[[], object] | None = None,
    ) -> Child:
        """Start ``python -m weft ARGS``."""
        return self.start(*WEFT, *args, stdin=stdin, preexec_fn=preexec_fn)

    def kill_all(self) -> None:
        """Kill and reap every child still running."""
        for child in self.started:
            child.kill()


@contextlib.contextmanager
def started_children() -> Iterator[Children]:
    """Children for the block, all killed (by PID) when it ends (a test's fixture)."""
    made = Children()
    try:
        yield made
    finally:
        made.kill_all()


# ---------------------------------------------------------------- sockets


def connect(port: int) -> socket.socket:
    """A blocking TCP client on loopback, every call bounded by TIMEOUT."""
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def receive_exactly(sock: socket.socket, expected: bytes) -> bytes:
    """Read until ``len(expected)`` bytes have come (or EOF); return them."""
    received = b""
    while len(received) < len(expected):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def receive_to_eof(sock: socket.socket) -> bytes:
    """Read until the peer's EOF; return everything."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def stop(child: Child, signum: int = signal.SIGTERM) -> int:
    """Signal ``child`` and return its exit status."""
    child.signal(signum)
    return child.wait()
