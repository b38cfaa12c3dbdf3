"""Connections accepted per second, and the server's CPU time per connection.

Each server (the echo servers of ``servers.py``: weft on each driver, bare
asyncio and uvloop) runs pinned to one core; this script, pinned to the
other, keeps ``--concurrency`` connection attempts going for ``--duration``
seconds: connect, send one byte, wait for its echo, close with a reset
(``SO_LINGER`` 0, so no ``TIME_WAIT`` uses up the ephemeral ports).  It
prints connections per second as the client saw them and the server's CPU
time per connection (from ``/proc/<pid>/task/*/schedstat``, over the same
window), the best of ``--repeat`` runs::

    python benchmarks/accept_rate.py
    python benchmarks/accept_rate.py --servers weft-asyncio,asyncio --repeat 5

The client is Python too, so connections/s may be the client's limit (the
"server busy" column says: near 100 % means the server is the bottleneck);
CPU per connection is the server's cost either way.
"""

from __future__ import annotations

import argparse
import errno
import os
import selectors
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cli
import servers

_LINGER_ZERO = struct.pack("ii", 1, 0)
SERVER_CPU, CLIENT_CPU = (0, 1) if {0, 1} <= os.sched_getaffinity(0) else (None, None)


@dataclass(frozen=True)
class Run:
    """One server, one window."""

    connections: int
    seconds: float
    server_cpu: float

    @property
    def per_second(self) -> float:
        """Connections completed per second."""
        return self.connections / self.seconds

    @property
    def cpu_per_connection(self) -> float:
        """The server's CPU microseconds per connection."""
        return self.server_cpu / self.connections * 1e6

    @property
    def busy(self) -> float:
        """The server's CPU time over the wall time."""
        return self.server_cpu / self.seconds


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (the scheduler's run time of every thread)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def hammer(port: int, concurrency: int, duration: float) -> int:
    """Keep ``concurrency`` connect-echo-reset cycles going for ``duration`` s; return how many completed."""
    selector = selectors.DefaultSelector()
    address = (servers.HOST, port)
    done = 0

    def start() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(code, os.strerror(code))
        selector.register(sock, selectors.EVENT_WRITE, "connecting")

    for _ in range(concurrency):
        start()
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        for key, _mask in selector.select(1.0):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            if key.data == "connecting":
                sock.send(b"x")
                selector.modify(sock, selectors.EVENT_READ, "echo")
                continue
            if sock.recv(16):
                done += 1
            selector.unregister(sock)
            sock.close()
            start()
    for key in list(selector.get_map().values()):
        selector.unregister(key.fileobj)
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    return done


def measure(kind: str, args: argparse.Namespace) -> Run:
    with servers.ServerProcess(kind, cpu=SERVER_CPU) as server:
        hammer(server.port, args.concurrency, args.warmup)
        before, start = cpu_seconds(server.pid), time.monotonic()
        count = hammer(server.port, args.concurrency, args.duration)
        seconds = time.monotonic() - start
        used = cpu_seconds(server.pid) - before
        server.check_alive()
        if "Traceback" in server.errors():
            raise servers.ServerFailedError(server.errors())
    return Run(count, seconds, used)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--servers", help="comma-separated server kinds (default: weft's drivers, asyncio, uvloop)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connection attempts in flight")
    parser.add_argument("--duration", type=float, default=2.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=0.3, help="unmeasured seconds before each run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per server (the best is shown)")
    args = parser.parse_args(argv)
    kinds = [
        kind
        for kind in servers.server_kinds()
        if kind.name.startswith("weft-") or kind.name in ("asyncio", "uvloop")
    ]
    chosen = cli.choose_servers(args.servers, kinds)
    chosen = [name for name in chosen if name != "weft-blocking" or args.servers]
    if CLIENT_CPU is not None:
        os.sched_setaffinity(0, {CLIENT_CPU})
    results: dict[str, list[Run]] = {name: [] for name in chosen}
    for _ in range(args.repeat):  # interleaved, so drift touches every server alike
        for name in chosen:
            results[name].append(measure(name, args))
    print(f"{'server':<16} {'conn/s':>9} {'CPU µs/conn':>12} {'median':>8} {'server busy':>12}")
    for name, runs in results.items():
        best = min(runs, key=lambda run: run.cpu_per_connection)
        median = sorted(run.cpu_per_connection for run in runs)[len(runs) // 2]
        rate, cpu = best.per_second, best.cpu_per_connection
        print(f"{name:<16} {rate:>9.0f} {cpu:>12.1f} {median:>8.1f} {best.busy:>11.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
