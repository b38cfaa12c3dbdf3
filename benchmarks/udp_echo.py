"""UDP echo benchmark: weft's datagram endpoints on each driver against asyncio's and uvloop's, in one run.

Each server runs in its own process (pinned to core 0 where it can be), an
echo of every datagram back to its sender; this process is the client
(pinned to core 1), keeping ``--window`` datagrams in flight on a
connected socket and counting the answers.  Per server the table gives the
datagrams per second the client saw, the server's CPU time per echoed
datagram (its own accounting over exactly the measured window), and the
ratio to plain asyncio's::

    python benchmarks/udp_echo.py
    python benchmarks/udp_echo.py --servers weft-reactor,asyncio --repeat 9

The best of ``--repeat`` runs per server (lowest CPU per datagram) is
reported, the runs interleaved so that drift hits every server alike.
Every server first frees a 1 MiB block, as benchmarks/servers.py's do, so
that glibc's mmap threshold is where a long-running process has it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

HOST = "127.0.0.1"

#: Every server, by name: weft's drivers, then asyncio's own datagram transports.
SERVERS = (
    "weft-reactor",
    "weft-coroutine",
    "weft-asyncio",
    "weft-uvloop",
    "weft-blocking",
    "asyncio",
    "uvloop",
)


# ------------------------------------------------------------------ servers


def serve(kind: str) -> None:
    """Serve the echo until killed; print the port first."""
    # Every server in the state a long-running process reaches: glibc's mmap
    # threshold raised by one large block freed (asyncio's recvfrom asks for
    # 256 KiB, which a fresh process would mmap and munmap per datagram; see
    # servers.settle_allocator).
    block = bytearray(1024 * 1024)
    del block
    if kind.startswith("weft-"):
        from weft.drivers import open_runtime
        from weft.protocols import DatagramEchoProtocol

        runtime = open_runtime(kind.removeprefix("weft-"))
        opening = runtime.open_udp(DatagramEchoProtocol, (HOST, 0))
        runtime.run_until(opening.done, 10)
        print(opening.result().get_extra_info("sockname")[1], flush=True)
        runtime.run()
        return

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.sendto(data, addr)

    async def main() -> None:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=(HOST, 0))
        print(transport.get_extra_info("sockname")[1], flush=True)
        await asyncio.Event().wait()

    if kind == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def available(kind: str) -> bool:
    """Whether ``kind`` can run here (uvloop installed)."""
    if "uvloop" not in kind:
        return True
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------- client


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (Linux's /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(kind: str, args: argparse.Namespace) -> tuple[float, float]:
    """One measurement: (datagrams per second, server CPU seconds per datagram)."""
    pin: Callable[[], None] | None = None
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:

        def pin() -> None:
            os.sched_setaffinity(0, {0})

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True, preexec_fn=pin
    )
    try:
        if server.stdout is None:
            raise RuntimeError("no pipe from the server")
        port = int(server.stdout.readline())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.connect((HOST, port))
            client.settimeout(1.0)
            payload = b"x" * args.size
            echoed = pump(client, payload, args.window, args.warmup)
            start_cpu, start = cpu_seconds(server.pid), time.perf_counter()
            echoed = pump(client, payload, args.window, args.duration)
            elapsed, cpu = time.perf_counter() - start, cpu_seconds(server.pid) - start_cpu
        return echoed / elapsed, cpu / max(echoed, 1)
    finally:
        server.kill()
        server.wait()


def pump(client: socket.socket, payload: bytes, window: int, seconds: float) -> int:
    """Keep ``window`` datagrams in flight for ``seconds``; the answers counted."""
    deadline = time.perf_counter() + seconds
    for _ in range(window):
        client.send(payload)
    answers = 0
    while time.perf_counter() < deadline:
        try:
            client.recv(65536)
        except TimeoutError:  # a datagram lost: put another in flight
            client.send(payload)
            continue
        answers += 1
        client.send(payload)
    client.settimeout(0.2)
    try:  # the window still in flight: drained, not counted
        while True:
            client.recv(65536)
    except TimeoutError:
        pass
    client.settimeout(1.0)
    return answers


def main(argv: Sequence[str] | None = None) -> int:
    """Run the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated, from: " + ", ".join(SERVERS)
    )
    parser.add_argument("--size", type=int, default=64, help="bytes per datagram (default 64)")
    parser.add_argument("--window", type=int, default=8, help="datagrams in flight (default 8)")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds measured per run (default 1)")
    parser.add_argument("--warmup", type=float, default=0.3, help="seconds before measuring (default 0.3)")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per server; the best is reported (default 5)"
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    chosen = [kind for kind in args.servers.split(",") if available(kind)]
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in chosen}
    for _ in range(args.repeat):
        for kind in chosen:
            results[kind].append(run_once(kind, args))
    best = {kind: min(runs, key=lambda run: run[1]) for kind, runs in results.items()}
    baseline = best.get("asyncio")
    print(f"{'server':<16} {'datagrams/s':>12} {'server us/datagram':>19} {'vs asyncio':>11}")
    for kind, (rate, cpu) in best.items():
        ratio = f"{cpu / baseline[1]:.2f}x" if baseline else "-"
        print(f"{kind:<16} {rate:>12,.0f} {cpu * 1e6:>19.1f} {ratio:>11}")
    runs = f"best of {args.repeat} runs of {args.duration:g} s"
    print(f"({args.size}-byte datagrams, {args.window} in flight, {runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
