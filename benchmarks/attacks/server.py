"""The server under attack: ``weft serve`` (or the launcher) as a child process,
measured from ``/proc`` and stopped by its PID.

Memory and CPU come from the kernel's own accounting, so the suite needs no
psutil: ``/proc/PID/status`` (``VmRSS``, ``VmHWM``) and ``/proc/PID/stat``
(``utime`` + ``stime``, in clock ticks).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

#: The repository's root: the launcher runs as ``-m benchmarks.attacks.launcher`` from there.
ROOT = Path(__file__).resolve().parent.parent.parent

#: ``weft`` as the command line runs it.
WEFT = (sys.executable, "-m", "weft")
LAUNCHER = (sys.executable, "-m", "benchmarks.attacks.launcher")

# serve http says it with a URL: listening on http://127.0.0.1:PORT/
_LISTENING = re.compile(r"^listening on (?:https?://)?127\.0\.0\.1:(\d+)/?$")
_TICKS = os.sysconf("SC_CLK_TCK")

#: How long a server may take to start listening.
START_TIMEOUT = 20.0
#: How long a stopped server may take to exit before it is killed.
STOP_TIMEOUT = 10.0


class ServerFailedError(Exception):
    """The server did not start (it exited, or never said it was listening)."""


class ServerProcess:
    """One server, started at once; :meth:`wait_listening` waits for its port.

    Its stderr is read on a thread, line by line, each line stamped with the
    monotonic time it arrived (for the log-rate figures).
    """

    def __init__(self, argv: Sequence[str], *, nofile: int | None = None) -> None:
        self.argv = list(argv)
        preexec: Callable[[], None] | None = None
        if nofile is not None:
            limit = nofile

            def preexec() -> None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            start_new_session=True,  # a Ctrl-C in the terminal goes to us, not to it
            preexec_fn=preexec,
        )
        self.pid = self.process.pid
        self.port = 0
        self._lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._done_reading = False
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        stream = self.process.stderr
        if stream is None:
            return
        for raw in stream:
            with self._changed:
                self._lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._done_reading = True
            self._changed.notify_all()

    # ------------------------------------------------------------ starting

    def wait_listening(self, timeout: float = START_TIMEOUT) -> int:
        """Wait for ``listening on 127.0.0.1:PORT``; return the port, or raise ServerFailedError."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for _when, line in self._lines:
                    if match := _LISTENING.match(line):
                        self.port = int(match.group(1))
                        return self.port
                if self._done_reading:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        self.stop()
        raise ServerFailedError(f"the server did not start: {self.last_words()}")

    def last_words(self) -> str:
        """Its last stderr lines, or its exit status."""
        lines = [line for _when, line in self.lines() if line.strip()]
        if lines:
            return " / ".join(lines[-2:])[:300]
        status = self.process.poll()
        return "no output" if status is None else f"exited with status {status}"

    # ------------------------------------------------------------- figures

    def lines(self, since: float = 0.0) -> list[tuple[float, str]]:
        """The stderr lines that arrived at or after ``since`` (monotonic), with their times."""
        with self._changed:
            return [(when, line) for when, line in self._lines if when >= since]

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.process.poll() is None

    def rss(self) -> int:
        """Resident memory now, in bytes (``VmRSS``)."""
        return self._status_field("VmRSS")

    def peak_rss(self) -> int:
        """The most resident memory it has had, in bytes (``VmHWM``)."""
        return self._status_field("VmHWM")

    def _status_field(self, name: str) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
        raise ServerFailedError(f"/proc/{self.pid}/status has no {name}")

    def cpu_seconds(self) -> float:
        """User + system CPU time so far, every thread included."""
        with open(f"/proc/{self.pid}/stat") as stat:
            text = stat.read()
        # The command name, in parentheses, may hold spaces: count after it.
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def descriptors(self) -> int:
        """How many file descriptors it has open."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def listening(self) -> bool:
        """Whether its port is still in the LISTEN state (from ``/proc/net/tcp``)."""
        wanted = f":{self.port:04X}"
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError), open(table) as entries:
                next(entries, None)
                for entry in entries:
                    fields = entry.split()
                    if fields[1].endswith(wanted) and fields[3] == "0A":
                        return True
        return False

    # ------------------------------------------------------------- stopping

    def signal(self, signum: int) -> None:
        """Send ``signum`` to it, by PID, if it still runs."""
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for it to exit; its status, or None."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; reap it and return its status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.process.kill()
        status = self.process.wait()
        self._reader.join(5.0)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return status


class Servers:
    """The servers one case starts; every one still running is stopped (by PID) at the end."""

    def __init__(self) -> None:
        self.started: list[ServerProcess] = []

    def __enter__(self) -> Servers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for server in self.started:
            server.stop()

    def start(self, argv: Sequence[str], *, nofile: int | None = None) -> ServerProcess:
        """Start ``argv`` and wait until it listens."""
        server = ServerProcess(argv, nofile=nofile)
        self.started.append(server)
        server.wait_listening()
        return server

    def weft(self, protocol: str, driver: str, *options: str, nofile: int | None = None) -> ServerProcess:
        """``weft serve PROTOCOL --port 0 --driver DRIVER OPTIONS``, listening."""
        return self.start(
            [*WEFT, "serve", protocol, "--port", "0", "--driver", driver, *options], nofile=nofile
        )

    def launched(self, protocol: str, driver: str, *options: str) -> ServerProcess:
        """The launcher (weft's Python API, short timeouts), listening."""
        return self.start([*LAUNCHER, protocol, "--driver", driver, *options])


@contextlib.contextmanager
def sampling_rss(server: ServerProcess, interval: float = 0.05) -> Iterator[list[int]]:
    """Sample the server's RSS every ``interval`` seconds while the block runs; the samples."""
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError, ServerFailedError):
                samples.append(server.rss())
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        done.set()
        sampler.join(5.0)
