"""Connections that end badly, and a server told to stop in the middle of work.

* **resets mid-write**: a hundred clients reset (``SO_LINGER`` 0) while the
  server writes to them, both a 2 GiB download and an echo; the server
  survives without a traceback and serves the next client;
* **SIGTERM mid-transfer**: a download is in flight when the server gets
  SIGTERM.  It must refuse new clients at once, let the download run for
  the grace period, then cut it and exit 0 a moment later.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time

from .clients import HOST, ClientError, connect, get, request, reset
from .context import Attack
from .results import Figure, at_least, at_most, equals, holds, report
from .settings import GRACE_OPTION

#: A never-reading client's receive buffer (as in hoarders.py).
SMALL_BUFFER = 32 * 1024

#: "At once": how soon a stopping server must refuse new clients.
REFUSED_WITHIN = 0.5
#: How long after the grace period the server may take to cut and exit.
EXIT_SLACK = 2.0


def resets_mid_write(attack: Attack) -> list[Figure]:
    """A hundred clients reset while the server writes to them (HTTP download and echo)."""
    count = attack.scale.resets
    # No access log: its line per request is by design; what is counted is
    # what the resets make the server say.
    http = attack.http("--no-access-log")
    started = time.monotonic()
    downloads = [connect(http.port, rcvbuf=SMALL_BUFFER) for _ in range(count)]
    try:
        for sock in downloads:
            sock.sendall(request("/big.bin"))
        for sock in downloads:
            sock.recv(16384)  # the server is writing now
    finally:
        for sock in downloads:
            reset(sock)
    echo = attack.echo()
    echoes = [connect(echo.port, rcvbuf=SMALL_BUFFER) for _ in range(count)]
    try:
        for sock in echoes:
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.send(b"x" * 1024 * 1024)  # more than comes back before the reset
    finally:
        for sock in echoes:
            reset(sock)
    served = get(http.port, "/small.txt")[0].status == 200
    with connect(echo.port) as sock:
        sock.sendall(b"still there?\n")
        echoed = sock.recv(100) == b"still there?\n"
    lines = [
        line
        for server in (http, echo)
        for _when, line in server.lines(since=started)
        if not line.startswith("listening on")
    ]
    return [
        holds("next client served", served and echoed and http.alive() and echo.alive()),
        equals("tracebacks", sum("Traceback" in line for line in lines), 0),
        at_most("log lines", len(lines), count),
    ]


class _SlowDownload:
    """Reads a download 64 KiB at a time, 10 ms apart, on a thread; notes when it ends."""

    def __init__(self, port: int) -> None:
        self.sock = connect(port, timeout=30.0)
        self.sock.sendall(request("/big.bin"))
        self.received = 0
        self.received_at_signal = 0
        self.ended_at: float | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._started.wait(10.0):
            raise ClientError("the download did not start")

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.ended_at = time.monotonic()
                return
            self.received += len(data)
            if self.received > 256 * 1024:
                self._started.set()
            time.sleep(0.01)

    def wait(self, timeout: float) -> None:
        """Wait for the download to end, then close the socket."""
        self._thread.join(timeout)
        self.sock.close()


def sigterm_mid_transfer(attack: Attack) -> list[Figure]:
    """SIGTERM during a download: refuse at once, finish for the grace period, cut, exit 0."""
    grace = attack.scale.grace
    server = attack.http(GRACE_OPTION, f"{grace:g}")
    download = _SlowDownload(server.port)
    signalled = time.monotonic()
    download.received_at_signal = download.received
    server.signal(signal.SIGTERM)
    refused_after = _refused_after(server.port, signalled)
    status = server.wait(grace + 10.0)
    exited_after = time.monotonic() - signalled
    download.wait(10.0)
    cut_after = None if download.ended_at is None else download.ended_at - signalled
    return [
        at_most("refused after", refused_after, REFUSED_WITHIN, "s"),
        report("bytes after sigterm", f"{(download.received - download.received_at_signal) / 1e6:.1f} MB"),
        at_least("download cut after", cut_after, grace * 0.9, "s"),
        at_most("exited after", exited_after if status is not None else None, grace + EXIT_SLACK, "s"),
        equals("exit status", status, 0),
    ]


def _refused_after(port: int, since: float) -> float | None:
    """Seconds from ``since`` until a new connection is refused (tried every 10 ms, for 3 s)."""
    while time.monotonic() - since < 3.0:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            try:
                sock.connect((HOST, port))
            except ConnectionRefusedError:
                return time.monotonic() - since
            except OSError:
                pass
        time.sleep(0.01)
    return None
