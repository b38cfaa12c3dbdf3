"""Bulk transfer: N bytes through an echo server over one connection, MB/s and server CPU per MB.

The client (this process, pinned to its own core) writes ``--total`` bytes
as fast as the server takes them and reads every byte back on the same
connection, both at once through one non-blocking socket; the server is any
kind ``servers.py`` runs (``weft-reactor``, ``weft-completion``,
``asyncio``, ``c-epoll``...), pinned to another core::

    python benchmarks/bulk.py                                   # 1 GiB, reactor and completion
    python benchmarks/bulk.py --servers weft-reactor,weft-completion,asyncio,c-epoll --total 256m
    python benchmarks/bulk.py --repeat 3 --markdown

Every byte that comes back is compared with what was sent (a pattern whose
period does not divide the chunk size, so bytes lost, repeated or reordered
are seen).  A row reports the best run (the lowest server CPU per MB);
``!`` marks a run in which the server waited for its core over 2% of the
time (another task had it), as ``echo.py`` does.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cli
import servers

SERVER_CPU = 0
CLIENT_CPU = 1
#: The client's writes and reads (the servers read at most 64 KiB at a time).
CHUNK = 256 * 1024
#: The pattern's period: a prime, so no chunk boundary lines it up.
PERIOD = 251
MB = 1_000_000
#: Over this share of the wall time waiting for its core, a run is disturbed.
DISTURBED = 0.02


@dataclass
class Run:
    """One transfer: bytes each way, wall seconds, the server's CPU and wait seconds."""

    total: int
    seconds: float
    server_cpu: float
    server_waited: float

    @property
    def rate(self) -> float:
        """MB/s each way."""
        return self.total / self.seconds / MB

    @property
    def cpu_per_mb(self) -> float:
        """Server CPU milliseconds per MB echoed."""
        return self.server_cpu / (self.total / MB) * 1e3

    @property
    def disturbed(self) -> bool:
        """Whether the server waited for its core over DISTURBED of the run."""
        return self.server_waited > DISTURBED * self.seconds


def schedstat(pid: int) -> tuple[float, float]:
    """The process's CPU time and time spent waiting for a core, in seconds, every thread."""
    ran = waited = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
            fields = stat.read().split()
        ran += int(fields[0])
        waited += int(fields[1])
    return ran / 1e9, waited / 1e9


def parse_total(text: str) -> int:
    """``1g``, ``256m``, ``64k`` or a number of bytes."""
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    factors = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    factor = factors.get(cleaned[-1:], 1)
    try:
        number = int(cleaned.rstrip("kmg"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"the size must be positive, not {text!r}")
    return number * factor


def transfer(port: int, total: int, timeout: float) -> float:
    """Push ``total`` bytes through the echo server at ``port`` and read them
    back, checking each; the wall seconds it took."""
    pattern = bytes(index % PERIOD for index in range(CHUNK + PERIOD))
    view = memoryview(pattern)
    incoming = bytearray(CHUNK)
    sock = socket.create_connection((servers.HOST, port))
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent = received = 0
    start = time.monotonic()
    deadline = start + timeout
    try:
        while received < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"{received} of {total} bytes came back in {timeout:g} s")
            for _key, events in selector.select(1.0):
                if events & selectors.EVENT_WRITE and sent < total:
                    offset = sent % PERIOD
                    try:
                        sent += sock.send(view[offset : offset + min(CHUNK, total - sent)])
                    except BlockingIOError:
                        pass
                    if sent == total:
                        selector.modify(sock, selectors.EVENT_READ)
                if events & selectors.EVENT_READ:
                    try:
                        count = sock.recv_into(incoming)
                    except BlockingIOError:
                        continue
                    if not count:
                        raise SystemExit(f"the server closed after {received} of {total} bytes")
                    offset = received % PERIOD
                    if incoming[:count] != view[offset : offset + count]:
                        raise SystemExit(f"the bytes at {received} came back changed")
                    received += count
        return time.monotonic() - start
    finally:
        selector.close()
        sock.close()


def measure(kind: str, total: int) -> Run:
    """One transfer through a fresh ``kind`` server."""
    timeout = 60.0 + total / (2 * MB)  # 2 MB/s at the very least
    with servers.ServerProcess(kind, cpu=SERVER_CPU) as server:
        transfer(server.port, min(total, 16 << 20), timeout)  # warm-up
        cpu_before, waited_before = schedstat(server.pid)
        seconds = transfer(server.port, total, timeout)
        cpu_after, waited_after = schedstat(server.pid)
        server.check_alive()
        if "Traceback" in server.errors():
            raise servers.ServerFailedError(server.errors())
    return Run(total, seconds, cpu_after - cpu_before, waited_after - waited_before)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="weft-reactor,weft-completion", help="comma-separated kinds")
    parser.add_argument("--total", type=parse_total, default=1 << 30, help="bytes each way (1g, 256m...)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per server (the best is shown)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table for docs")
    args = parser.parse_args(argv)
    kinds = cli.choose_servers(args.servers, servers.server_kinds())
    os.sched_setaffinity(0, {CLIENT_CPU % (os.cpu_count() or 1)})
    best: dict[str, Run] = {}
    for _ in range(args.repeat):
        for kind in kinds:  # interleaved, so a busy moment hits every kind alike
            run = measure(kind, args.total)
            mark = " !" if run.disturbed else ""
            print(
                f"[{kind}{mark}] {run.rate:,.0f} MB/s each way, {run.cpu_per_mb:.2f} ms server CPU/MB",
                file=sys.stderr,
                flush=True,
            )
            if kind not in best or run.cpu_per_mb < best[kind].cpu_per_mb:
                best[kind] = run
    size = f"{args.total / (1 << 30):g} GiB" if args.total >= 1 << 30 else f"{args.total / (1 << 20):g} MiB"
    if args.markdown:
        print("| server | each way | MB/s each way | server CPU ms/MB | server busy |")
        print("|---|--:|--:|--:|--:|")
    else:
        print(f"{'server':<20} {'each way':>9} {'MB/s':>8} {'CPU ms/MB':>10} {'busy':>6}")
    for kind in kinds:
        run = best[kind]
        name = kind + (" !" if run.disturbed else "")
        busy = f"{run.server_cpu / run.seconds:.0%}"
        if args.markdown:
            print(f"| {name} | {size} | {run.rate:,.0f} | {run.cpu_per_mb:.2f} | {busy} |")
        else:
            print(f"{name:<20} {size:>9} {run.rate:>8,.0f} {run.cpu_per_mb:>10.2f} {busy:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
