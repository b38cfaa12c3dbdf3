"""What guest mode costs a Trio program: the same program under ``trio.run``
and under ``weft.drivers.trio_guest.run_trio`` (Trio as a guest of weft's
reactor), in the same run, as ratios.

The program is a Trio echo server and a Trio client in one process, the
client making small round trips one at a time: the worst case for guest
mode, since Trio goes idle once per round trip, and each time it is idle its
wait for I/O moves to a worker thread and back (Trio's documentation expects
5-10% for most programs).  Reported: wall-clock and CPU time per round trip,
the median of ``--runs`` alternating runs of each.

Run: python benchmarks/trio_guest.py [--round-trips N] [--runs N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import trio

from weft.drivers.trio_guest import run_trio


async def ping_pong(round_trips: int, size: int) -> tuple[float, float]:
    """Seconds of wall-clock and of CPU time per round trip between a Trio client and server."""

    async def echo(stream: Any) -> None:
        while data := await stream.receive_some():
            await stream.send_all(data)

    message = b"x" * size
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, echo, 0)
        port = listeners[0].socket.getsockname()[1]
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(round_trips):
                await stream.send_all(message)
                got = 0
                while got < size:
                    got += len(await stream.receive_some())
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        nursery.cancel_scope.cancel()
    return wall / round_trips, cpu / round_trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    options = parser.parse_args()
    runners: dict[str, Callable[..., tuple[float, float]]] = {"trio.run": trio.run, "run_trio": run_trio}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    for _ in range(options.runs):
        for name, runner in runners.items():
            results[name].append(runner(ping_pong, options.round_trips, options.size))
    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in results.items()
    }
    print(f"{options.round_trips} round trips of {options.size} B, median of {options.runs} runs")
    print("| Trio runs on | wall per round trip | CPU per round trip |")
    print("|---|---:|---:|")
    base_wall, base_cpu = medians["trio.run"]
    for name, (wall, cpu) in medians.items():
        label = "its own loop (`trio.run`)" if name == "trio.run" else "weft's reactor (`run_trio`)"
        wall_cell = f"{wall * 1e6:.1f} µs ({wall / base_wall:.2f})"
        cpu_cell = f"{cpu * 1e6:.1f} µs ({cpu / base_cpu:.2f})"
        print(f"| {label} | {wall_cell} | {cpu_cell} |")


if __name__ == "__main__":
    main()
