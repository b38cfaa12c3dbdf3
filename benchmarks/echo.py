"""Echo benchmark: weft's drivers against asyncio, uvloop and the C floor, in one run.

Every server runs in its own process pinned to one core (0); the C load
generator runs pinned to the other (1) and plays ping-pong on each
connection.  Per row (message size x connections) the table gives the
messages per second the client saw and the server's CPU time per echoed
message, read from the server process's own accounting over exactly the
measured window (so it holds even where the client is the bottleneck), and
the ratio to asyncio's figure on the same row::

    python benchmarks/echo.py                       # every default server, ~3-5 minutes
    python benchmarks/echo.py --servers weft-reactor,asyncio --sizes 64 --connections 50
    python benchmarks/echo.py --markdown            # a table for docs/performance.md

Each measurement starts a fresh server, warms it up, then measures; the
whole grid is repeated ``--repeat`` times, interleaved so slow drift on the
machine hits every server alike, and each cell reports its best run (the
lowest CPU per message; ``--stat median`` for the median).  See
benchmarks/README.md for what is measured and its caveats.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cli
import loadgen
import native
import servers

#: Targets the reactor is tuned towards: (server, baseline, ratio, connection counts or None for all).
TARGETS: list[tuple[str, str, float, tuple[int, ...] | None]] = [
    ("weft-reactor", "asyncio", 0.85, (50,)),
    ("weft-uvloop", "uvloop", 1.10, None),
    # Issue 12: Twisted's own echo on weft's reactor against the same on Twisted's epoll reactor.
    ("twisted-on-weft", "twisted", 0.80, (50,)),
    # Issue 15: weft's coroutine driver (a task per connection) against the
    # asyncio program that shape is written as, streams.
    ("weft-coroutine", "asyncio-streams", 1.00, (50,)),
]

#: A run in which the server or the client waited for its core (another task
#: had it) longer than this share of the window is marked as disturbed.
DISTURBED = 0.02


def cpu_per_message(result: loadgen.LoadResult) -> float:
    """Server CPU seconds per echoed message in one run."""
    return (result.server_cpu or 0.0) / max(result.messages, 1)


def disturbance(result: loadgen.LoadResult) -> float:
    """The larger share of the window the server or the client spent waiting for its core."""
    return max(result.server_waited or 0.0, result.client_waited or 0.0) / result.seconds


@dataclass(frozen=True)
class Cell:
    """One server on one row: its runs, and the one it reports."""

    kind: str
    size: int
    connections: int
    #: Every run, disturbed ones included.
    runs: tuple[loadgen.LoadResult, ...]
    #: "best" (lowest CPU per message) or "median".
    stat: str
    error: str | None = None

    @property
    def counted(self) -> list[loadgen.LoadResult]:
        """The undisturbed runs (all runs, if every one was disturbed), by CPU per message."""
        calm = [run for run in self.runs if disturbance(run) <= DISTURBED] or list(self.runs)
        return sorted(calm, key=cpu_per_message)

    @property
    def result(self) -> loadgen.LoadResult | None:
        """The run this cell reports: the best counted run, or the median one."""
        counted = self.counted
        if not counted:
            return None
        return counted[0] if self.stat == "best" else counted[(len(counted) - 1) // 2]

    @property
    def cpu(self) -> float | None:
        """Server CPU seconds per message of the reported run."""
        return None if self.result is None else cpu_per_message(self.result)

    @property
    def median_cpu(self) -> float | None:
        """The median CPU per message over the counted runs: how far the best one is from typical."""
        counted = self.counted
        return statistics.median(map(cpu_per_message, counted)) if counted else None

    @property
    def disturbed(self) -> bool:
        """Whether even the reported run was disturbed (see :func:`disturbance`)."""
        return self.result is not None and disturbance(self.result) > DISTURBED


# ----------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Echo benchmark: weft's drivers against asyncio, uvloop and a C epoll floor.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=1.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=0.3, help="unmeasured seconds before each run")
    parser.add_argument(
        "--sizes",
        type=cli.parse_sizes,
        default=[64, 1024, 16384],
        help="message sizes, comma-separated (64,1k,16k)",
    )
    parser.add_argument(
        "--connections", type=cli.parse_counts, default=[1, 50], help="connection counts, comma-separated"
    )
    cli.add_run_options(
        parser,
        best="the lowest CPU per message",
        client="the load generator",
        disturbed="a run disturbed by other tasks on the benchmark cores",
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.repeat < 1 or args.retries < 0:
        parser.error("--duration and --repeat must be positive, --warmup and --retries not negative")
    return args


def check_cpus(*cpus: int) -> None:
    usable = os.sched_getaffinity(0)
    missing = [cpu for cpu in cpus if cpu not in usable]
    if missing or len(set(cpus)) != len(cpus):
        raise SystemExit(
            f"need two distinct usable cores for server and client (asked {cpus}, usable {sorted(usable)}); "
            "see --server-cpu and --client-cpu"
        )


# -------------------------------------------------------------- measuring


def measure(
    kind: str, size: int, connections: int, args: argparse.Namespace, binary: Path
) -> loadgen.LoadResult:
    """One fresh server, one warmed-up, measured load."""
    with servers.ServerProcess(kind, cpu=args.server_cpu, fresh_malloc=args.fresh_malloc) as server:
        try:
            return loadgen.run(
                binary,
                server.port,
                connections=connections,
                size=size,
                duration=args.duration,
                warmup=args.warmup,
                server_pid=server.pid,
                cpu=args.client_cpu,
                spin=True,
                timeout=args.warmup + args.duration + 60,
            )
        except loadgen.LoadgenError:
            server.check_alive()  # a dead server explains itself better
            raise


def run_grid(args: argparse.Namespace, chosen: list[str], binary: Path) -> list[Cell]:
    """Measure every cell ``args.repeat`` times, interleaved; one Cell per server and row."""
    rows = [(size, conns) for size in args.sizes for conns in args.connections]
    results: dict[tuple[str, int, int], list[loadgen.LoadResult]] = {}
    errors: dict[tuple[str, int, int], str] = {}
    total, done = args.repeat * len(rows) * len(chosen), 0
    for repeat in range(args.repeat):
        for size, conns in rows:
            # Rotate the order each repeat, so that no server always runs first after a change of row.
            for kind in chosen[repeat % len(chosen) :] + chosen[: repeat % len(chosen)]:
                done += 1
                key = (kind, size, conns)
                label = f"[{done}/{total}] {kind} {cli.show_size(size)} x {conns}"
                try:
                    for attempt in range(args.retries + 1):
                        result = measure(kind, size, conns, args, binary)
                        if disturbance(result) <= DISTURBED:
                            break
                        if attempt < args.retries:
                            print(f"{label}: disturbed ({disturbance(result):.0%}), again", file=sys.stderr)
                            results.setdefault(key, []).append(result)
                except (loadgen.LoadgenError, servers.ServerFailedError) as exc:
                    errors[key] = (
                        str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                    )
                    print(f"{label}: FAILED: {exc}", file=sys.stderr, flush=True)
                    continue
                results.setdefault(key, []).append(result)
                print(
                    f"{label}: {result.rate:,.0f} msg/s, {cpu_per_message(result) * 1e6:.2f} us CPU/msg "
                    f"(waited for a core: {disturbance(result):.1%})",
                    file=sys.stderr,
                    flush=True,
                )
    cells = []
    for size, conns in rows:
        for kind in chosen:
            key = (kind, size, conns)
            cells.append(Cell(kind, size, conns, tuple(results.get(key, [])), args.stat, errors.get(key)))
    return cells


# ---------------------------------------------------------------- reporting


def ratio(cells: list[Cell], cell: Cell, baseline: str | None) -> float | None:
    """``cell``'s CPU per message over ``baseline``'s on the same row."""
    if baseline is None:
        return None
    for other in cells:
        if (other.kind, other.size, other.connections) == (baseline, cell.size, cell.connections):
            mine, theirs = cell.cpu, other.cpu
            return mine / theirs if mine is not None and theirs else None
    return None


COLUMNS = [
    "size",
    "conns",
    "server",
    "msgs/s",
    "CPU µs/msg",
    "median",
    "vs asyncio",
    "vs same loop",
    "server busy",
    "client µs/msg",
]


def table_rows(cells: list[Cell], kinds: dict[str, servers.ServerKind]) -> list[list[str]]:
    rows = []
    for cell in cells:
        result = cell.result
        if result is None:
            rows.append(
                [
                    cli.show_size(cell.size),
                    str(cell.connections),
                    cell.kind,
                    "failed",
                    (cell.error or "")[:60],
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
            continue
        cpu, median = cell.cpu, cell.median_cpu
        versus_asyncio = ratio(cells, cell, "asyncio")
        versus_loop = ratio(cells, cell, kinds[cell.kind].same_loop_peer)
        busy = (result.server_cpu or 0.0) / result.seconds
        rows.append(
            [
                cli.show_size(cell.size),
                str(cell.connections),
                cell.kind + (" !" if cell.disturbed else ""),
                f"{result.rate:,.0f}",
                "—" if cpu is None else f"{cpu * 1e6:.2f}",
                "—" if median is None else f"{median * 1e6:.2f}",
                "—" if versus_asyncio is None else f"{versus_asyncio:.2f}",
                "—" if versus_loop is None else f"{versus_loop:.2f}",
                f"{busy:.0%}",
                f"{result.client_work / max(result.messages, 1) * 1e6:.2f}",
            ]
        )
    return rows


def render_text(
    rows: list[list[str]], columns: list[str] = COLUMNS, numeric: set[int] | None = None
) -> str:
    """A plain-text table, a blank line between row groups (the first two
    cells); ``numeric`` columns (by default all but the third) right-aligned."""
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    if numeric is None:
        numeric = {0, 1, *range(3, len(columns))}

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    out, previous = [line(columns), "  ".join("-" * width for width in widths)], None
    for row in rows:
        if previous is not None and row[:2] != previous:
            out.append("")
        out.append(line(row))
        previous = row[:2]
    return "\n".join(out)


def render_markdown(rows: list[list[str]], columns: list[str] = COLUMNS) -> str:
    """The same table in Markdown (the third column left-aligned, as text)."""
    out = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join(["---", "--:", "---", *["--:"] * (len(columns) - 3)]) + "|",
    ]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def targets(cells: list[Cell]) -> list[str]:
    """One line per target whose two servers both ran: the ratios on its rows."""
    lines = []
    for kind, baseline, limit, connection_counts in TARGETS:
        figures = []
        for cell in cells:
            if cell.kind != kind or (
                connection_counts is not None and cell.connections not in connection_counts
            ):
                continue
            value = ratio(cells, cell, baseline)
            if value is not None:
                mark = "ok" if value <= limit else "MISSED"
                figures.append(f"{cli.show_size(cell.size)} x {cell.connections}: {value:.2f} {mark}")
        if figures:
            lines.append(f"{kind} / {baseline} <= {limit:.2f}: " + "; ".join(figures))
    return lines


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model
            )
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def weft_version() -> str:
    """The commit of the weft checkout measured, and whether its code had uncommitted changes."""
    root = native.HERE.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "drivers", "protocols"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(not a git checkout)"
    return f"{commit} + uncommitted changes" if changed else commit


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark grid and print the table; 1 if any cell failed."""
    args = parse_args(argv)
    kinds = servers.server_kinds()
    if args.list:
        for kind in kinds:
            print(f"{kind.name:14} {kind.description}{'' if kind.default else '  (only when asked for)'}")
        return 0
    chosen = cli.choose_servers(args.servers, kinds)
    check_cpus(args.server_cpu, args.client_cpu)
    binary = native.build_for(chosen)
    # Keep this process off the server's core too.
    os.sched_setaffinity(0, {args.client_cpu})
    started = time.strftime("%Y-%m-%d %H:%M")
    cells = run_grid(args, chosen, binary)
    rows = table_rows(cells, {kind.name: kind for kind in kinds})
    header = [
        f"{started}; {machine()}; weft {weft_version()}",
        f"server on core {args.server_cpu}, C load generator (spinning) on core {args.client_cpu}; "
        f"{args.warmup:g} s warm-up + {args.duration:g} s measured per run; "
        f"{args.stat} of {args.repeat} run(s) per cell"
        + ("; fresh malloc state" if args.fresh_malloc else ""),
    ]
    notes = [
        f"CPU µs/msg: server CPU time (user+system) over the measured window / messages echoed, "
        f"in the {args.stat} run; median: the median over the runs.",
        "vs asyncio: that over the bare asyncio server's on the same row; vs same loop: weft on a loop "
        "over the bare server on that loop (twisted-on-weft: Twisted's echo on weft's reactor over the "
        "same on Twisted's own).",
        "server busy: server CPU time / wall time; client µs/msg: the load generator's own work per message.",
    ]
    if any(cell.disturbed for cell in cells):
        notes.append(
            f"!: disturbed: the server or the client waited for its core (another task had it) "
            f"over {DISTURBED:.0%} of that run."
        )
    if args.markdown:
        print("\n".join(f"{line}  " for line in header), end="\n\n")
        print(render_markdown(rows), end="\n\n")
        print("\n".join(f"* {note}" for note in notes))
        goals = targets(cells)
        if goals:
            print("\nTargets:\n\n" + "\n".join(f"* {goal}" for goal in goals))
    else:
        print("\n".join(header), end="\n\n")
        print(render_text(rows), end="\n\n")
        print("\n".join(notes))
        goals = targets(cells)
        if goals:
            print("\nTargets:\n" + "\n".join(f"  {goal}" for goal in goals))
    return 1 if any(cell.result is None for cell in cells) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every server and client was already stopped on the way out
        sys.exit(130)
