"""Server memory under clients that ask for a big file and never read it.

For each driver and connection count, a weft server starts in its own
process; every connection it accepts is sent a whole file (a sparse one,
2 GiB by default) and the clients, N sockets in this process, never read a
byte.  Once every client has received the first bytes and the server's
resident memory (``VmRSS``) has stopped moving, the script prints how much
it grew since the server was listening::

    python benchmarks/slow_readers.py
    python benchmarks/slow_readers.py --drivers asyncio,uvloop --connections 1000
    python benchmarks/slow_readers.py --mode pieces     # the file read in Python, for comparison

``--mode sendfile`` (the default) has each connection call
``transport.write_file(FileSlice.open(path))``: the driver sends with
``os.sendfile``, nothing passes through Python, and what waits is the
kernel's socket buffer (kernel memory, not the server's).  ``--mode
pieces`` is what a server without write_file does: read 64 KiB pieces and
``write`` them until ``pause_writing``, again on ``resume_writing``; each
stuck connection then holds its transport's buffer (over the 64 KiB
high-water mark) in Python.

The server and the clients each need a descriptor per connection (the
server two with ``sendfile``: the socket and the file, three on asyncio
while a file is being sent: a duplicate of the socket); the script raises
its soft limit to the hard one (``ulimit -Hn``).
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PIECE = 64 * 1024
MIB = 1024 * 1024


# ------------------------------------------------------------------ server


def serve(driver: str, path: str, mode: str) -> None:
    """The server process: send ``path`` whole to every connection, print READY."""
    from weft.drivers import FileSlice, open_runtime
    from weft.protocols.contract import Protocol

    class SendFile(Protocol):
        """Sends the file with write_file, then waits for the connection to end."""

        def connection_made(self, transport: Any) -> None:
            transport.write_file(FileSlice.open(path))

    class Pieces(SendFile):
        """Reads the file in 64 KiB pieces and writes them while the transport is not paused."""

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.region = FileSlice.open(path)
            self.paused = False
            self.produce()

        def pause_writing(self) -> None:
            self.paused = True

        def resume_writing(self) -> None:
            self.paused = False
            self.produce()

        def produce(self) -> None:
            while not self.paused and len(self.region):
                self.transport.write(self.region.read(PIECE))

        def connection_lost(self, exc: BaseException | None) -> None:
            self.region.close()

    runtime: Any = open_runtime(driver)
    listener = runtime.listen_tcp(SendFile if mode == "sendfile" else Pieces, HOST, 0)
    print(f"READY {listener.port} {os.getpid()}", flush=True)
    runtime.run()


# ------------------------------------------------------------------ client


def rss(pid: int) -> int:
    """The process's resident memory in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def settled_rss(pid: int, timeout: float = 20.0) -> int:
    """RSS once four samples a quarter second apart agree within 256 KiB."""
    samples = [rss(pid)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        samples.append(rss(pid))
        last = samples[-4:]
        if len(last) == 4 and max(last) - min(last) <= 256 * 1024:
            return max(last)
    return samples[-1]


def measure(driver: str, connections: int, path: Path, mode: str) -> tuple[int, int]:
    """The server's RSS when listening, and once ``connections`` stuck clients are served."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", driver, "--file", str(path), "--mode", mode],
        stdout=subprocess.PIPE,
    )
    clients: list[socket.socket] = []
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode()
        if not line.startswith("READY "):
            raise SystemExit(f"the {driver} server did not start: {line!r}")
        _, port, pid = line.split()
        before = settled_rss(int(pid))
        for _ in range(connections):
            clients.append(socket.create_connection((HOST, int(port))))
        wait_for_first_bytes(clients)
        after = settled_rss(int(pid))
        return before, after
    finally:
        for client in clients:
            client.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for_first_bytes(clients: list[socket.socket], timeout: float = 60.0) -> None:
    """Until every client has bytes waiting (the server is sending to each); nothing is read."""
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client, selectors.EVENT_READ)
    waiting = len(clients)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for key, _events in selector.select(1.0):
            selector.unregister(key.fileobj)
            waiting -= 1
    selector.close()
    if waiting:
        raise SystemExit(f"{waiting} clients got nothing in {timeout:g} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drivers", default="reactor,coroutine,asyncio,uvloop")
    parser.add_argument("--connections", default="200,1000", help="comma-separated client counts")
    parser.add_argument("--size", type=int, default=2048, help="the file's size in MiB (sparse)")
    parser.add_argument("--mode", choices=["sendfile", "pieces"], default="sendfile")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.serve:
        serve(args.serve, args.file, args.mode)
        return 0
    counts = [int(part) for part in args.connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="weft-slow-readers-") as directory:
        path = Path(directory) / "big.bin"
        with open(path, "wb") as file:
            file.truncate(args.size * MIB)
        print(f"{args.size} MiB file, mode {args.mode}, clients that never read")
        header = ("driver", "clients", "RSS before", "RSS after", "growth", "per client")
        print("{:<10} {:>7} {:>11} {:>10} {:>9} {:>11}".format(*header))
        for driver in args.drivers.split(","):
            for count in counts:
                before, after = measure(driver, count, path, args.mode)
                growth = after - before
                print(
                    f"{driver:<10} {count:>7} {before / MIB:>8.1f} MiB {after / MIB:>6.1f} MiB "
                    f"{growth / MIB:>5.1f} MiB {growth / count / 1024:>7.1f} KiB",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
