"""asyncio programs on each asyncio event loop: asyncio's own, weft's reactor, uvloop, in one run.

The same server code runs on every loop; only the loop factory differs
(``asyncio.new_event_loop``, ``weft.drivers.reactor.new_event_loop``,
``uvloop.new_event_loop``; see ``loop_servers.py``).  Programs:

* ``protocol``: an ``asyncio.Protocol`` echo server, at each message size;
* ``streams``: an ``asyncio.start_server`` echo server (read, write, drain),
  at each message size;
* ``aiohttp``: an aiohttp hello-world application under keep-alive HTTP load.

Every server runs in its own process pinned to core 0.  The echo servers
are driven by the C load generator (``loadgen.c``, as in ``echo.py``), the
HTTP server by wrk (as in ``http_load.py``), pinned to core 1, each over 50
connections.  Per row the table gives the rate the client saw (messages or
requests per second) and the server's CPU time per message or request, read
from the server process's own accounting over exactly the measured window,
and both as ratios to asyncio's default loop on the same row::

    python benchmarks/asyncio_loops.py                  # every row, about 4 minutes
    python benchmarks/asyncio_loops.py --servers protocol-asyncio,protocol-weft --sizes 64 --repeat 9
    python benchmarks/asyncio_loops.py --markdown       # a table for docs/performance.md

The target (issue 11): weft's loop at most 0.9x asyncio's CPU on the
protocol and streams rows.  Beside the protocol rows runs the floor,
``c-floor``: the C epoll echo server (``c_echo.c``), which makes only the
two system calls a message takes; its ratio is the best any loop could show
on the row (``--no-floor`` leaves it out).  Each cell reports its best run (the lowest CPU
per message or request; ``--stat median`` for the median one), over
``--repeat`` runs interleaved so slow drift on the machine hits every loop
alike.  See benchmarks/README.md for what is measured and its caveats.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cli
import echo
import http_load
import loadgen
import loop_servers
import native
import servers

#: The loop every ratio is taken against.
BASELINE = "asyncio"

#: The yardstick on the protocol rows: servers.py's C epoll echo server
#: (c_echo.c), no loop and no Python, only the two system calls a message
#: takes.  No loop can cost less than it; its ratio to asyncio's loop is the
#: best any loop could show on the row (``--no-floor`` leaves it out).
FLOOR = "c-floor"
FLOOR_KIND = "c-epoll"

#: (program, loop, limit): a loop's CPU over the baseline's on every row of a program.
TARGETS: list[tuple[str, str, float]] = [("protocol", "weft", 0.90), ("streams", "weft", 0.90)]

#: A run in which the server or the client waited for its core (another
#: task had it) over this share of the window is disturbed, and run again.
DISTURBED = echo.DISTURBED

LOOP_SERVERS = Path(loop_servers.__file__).resolve()


@dataclass(frozen=True)
class Sample:
    """One measured run: units are messages (echo) or requests (HTTP)."""

    units: int
    seconds: float
    #: The server's CPU seconds over the window.
    server_cpu: float
    #: The larger share of the window the server (or the client) waited for its core.
    disturbance: float

    @property
    def rate(self) -> float:
        """Messages or requests per second, as the client counted them."""
        return self.units / self.seconds

    @property
    def cpu(self) -> float:
        """Server CPU seconds per message or request."""
        return self.server_cpu / max(self.units, 1)


@dataclass(frozen=True)
class Row:
    """One row of the table: a program (at a message size, for the echo servers)."""

    program: str
    #: Message bytes; None for the HTTP program.
    size: int | None

    def kind(self, loop: str) -> str:
        """The server that runs this row's program on ``loop``."""
        return f"{self.program}-{loop}"

    @property
    def label(self) -> str:
        """How the progress lines name it."""
        return self.program if self.size is None else f"{self.program} {cli.show_size(self.size)}"


@dataclass(frozen=True)
class Cell:
    """One loop on one row: its runs, and the one it reports."""

    row: Row
    loop: str
    runs: tuple[Sample, ...]
    #: "best" (lowest CPU per unit) or "median".
    stat: str
    error: str | None = None

    @property
    def counted(self) -> list[Sample]:
        """The undisturbed runs (all of them if every one was disturbed), cheapest first."""
        calm = [run for run in self.runs if run.disturbance <= DISTURBED] or list(self.runs)
        return sorted(calm, key=lambda run: run.cpu)

    @property
    def result(self) -> Sample | None:
        """The run this cell reports: the cheapest counted run, or the median one."""
        counted = self.counted
        if not counted:
            return None
        return counted[0] if self.stat == "best" else counted[(len(counted) - 1) // 2]

    @property
    def median_cpu(self) -> float | None:
        """The median CPU per unit over the counted runs: the spread."""
        counted = self.counted
        return statistics.median(run.cpu for run in counted) if counted else None

    @property
    def disturbed(self) -> bool:
        """Whether even the reported run was disturbed."""
        return self.result is not None and self.result.disturbance > DISTURBED


# ----------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "asyncio Protocol and streams echo servers and an aiohttp server, each on asyncio's "
            "default loop, weft's loop and uvloop: rate and server CPU per message or request."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=1.0, help="measured seconds per echo run")
    parser.add_argument("--warmup", type=float, default=0.3, help="unmeasured seconds before each echo run")
    parser.add_argument(
        "--http-duration", type=int, default=2, help="measured seconds per HTTP run (wrk: whole seconds)"
    )
    parser.add_argument(
        "--http-warmup", type=int, default=1, help="seconds of unmeasured wrk run before each HTTP run"
    )
    parser.add_argument(
        "--sizes", type=cli.parse_sizes, default=[64, 1024, 16384], help="echo message sizes (64,1k,16k)"
    )
    parser.add_argument("--connections", type=int, default=50, help="connections, for every row")
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="leave out the C echo server measured on the protocol rows as the floor",
    )
    cli.add_run_options(
        parser,
        best="the lowest CPU per message or request",
        client="the load generator and wrk",
        disturbed="a run disturbed by other tasks on the benchmark cores",
    )
    args = parser.parse_args(argv)
    if (
        args.duration <= 0
        or args.warmup < 0
        or args.http_duration < 1
        or args.http_warmup < 0
        or args.repeat < 1
        or args.retries < 0
        or args.connections < 1
    ):
        parser.error(
            "--duration, --http-duration, --repeat and --connections must be positive, "
            "--warmup, --http-warmup and --retries not negative"
        )
    return args


def choose(args: argparse.Namespace, kinds: list[servers.ServerKind]) -> list[str]:
    """The servers to run.  A name asked for that cannot run here gets the one-line
    reason (the pip extra to install), rather than just "unknown"."""
    if args.servers is not None:
        for name in (part.strip() for part in args.servers.split(",") if part.strip()):
            program, loop = loop_servers.split_kind(name)
            reason = loop_servers.program_unavailable(program) or loop_servers.loop_unavailable(loop)
            if reason is not None:
                raise SystemExit(f"{name}: {reason}")
    return cli.choose_servers(args.servers, kinds)


def table_rows_of(chosen: list[str], sizes: list[int]) -> list[Row]:
    """The rows the chosen servers make, in program order: echo programs at every size."""
    programs = list(dict.fromkeys(loop_servers.split_kind(kind)[0] for kind in chosen))
    rows = []
    for program in programs:
        if loop_servers.PROGRAMS[program][1]:
            rows += [Row(program, size) for size in sizes]
        else:
            rows.append(Row(program, None))
    return rows


# -------------------------------------------------------------- measuring


def measure_echo(kind: str, size: int, args: argparse.Namespace, binary: Path) -> Sample:
    """One fresh echo server, one warmed-up, measured load from the C load generator."""
    script = None if kind == FLOOR_KIND else LOOP_SERVERS  # servers.py starts the C server itself
    with servers.ServerProcess(
        kind, cpu=args.server_cpu, fresh_malloc=args.fresh_malloc, script=script
    ) as server:
        try:
            result = loadgen.run(
                binary,
                server.port,
                connections=args.connections,
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
    return Sample(result.messages, result.seconds, result.server_cpu or 0.0, echo.disturbance(result))


def http_options(args: argparse.Namespace) -> argparse.Namespace:
    """What ``http_load.measure`` reads from its options, from ours."""
    return argparse.Namespace(
        server_cpu=args.server_cpu,
        fresh_malloc=args.fresh_malloc,
        warmup=args.http_warmup,
        duration=args.http_duration,
        connections=args.connections,
    )


def measure_http(kind: str, args: argparse.Namespace, wrk: str, root: Path) -> Sample:
    """One fresh HTTP server, an unmeasured and a measured wrk run (``http_load.measure``)."""
    run = http_load.measure(kind, http_options(args), wrk, root, LOOP_SERVERS)
    return Sample(run.requests, run.seconds, run.server_cpu, run.disturbance)


class Measurer:
    """Measures one server on one row, whichever client that row needs."""

    def __init__(self, args: argparse.Namespace, binary: Path | None, wrk: str | None, root: Path) -> None:
        self.args, self.binary, self.wrk, self.root = args, binary, wrk, root

    def __call__(self, row: Row, loop: str) -> Sample:
        """One fresh server of ``row``'s program on ``loop``, measured once."""
        kind = FLOOR_KIND if loop == FLOOR else row.kind(loop)
        if row.size is None:
            assert self.wrk is not None
            return measure_http(kind, self.args, self.wrk, self.root)
        assert self.binary is not None
        return measure_echo(kind, row.size, self.args, self.binary)


def run_grid(args: argparse.Namespace, chosen: list[str], rows: list[Row], measure: Measurer) -> list[Cell]:
    """Measure every chosen cell ``args.repeat`` times, interleaved; one Cell per loop and row."""
    loops_of = {row: [loop for loop in loop_servers.LOOPS if row.kind(loop) in chosen] for row in rows}
    if args.floor:
        for row in rows:
            if row.program == "protocol":
                loops_of[row].append(FLOOR)
    samples: dict[tuple[Row, str], list[Sample]] = {}
    errors: dict[tuple[Row, str], str] = {}
    total, done = args.repeat * sum(map(len, loops_of.values())), 0
    for repeat in range(args.repeat):
        for row in rows:
            loops = loops_of[row]
            # Rotate the order each repeat, so that no loop always runs first after a change of row.
            for loop in loops[repeat % len(loops) :] + loops[: repeat % len(loops)]:
                done += 1
                label = f"[{done}/{total}] {row.label} on {loop}"
                try:
                    for attempt in range(args.retries + 1):
                        sample = measure(row, loop)
                        if sample.disturbance <= DISTURBED:
                            break
                        if attempt < args.retries:
                            print(f"{label}: disturbed ({sample.disturbance:.0%}), again", file=sys.stderr)
                            samples.setdefault((row, loop), []).append(sample)
                except (loadgen.LoadgenError, http_load.WrkError, servers.ServerFailedError) as exc:
                    text = str(exc).strip()
                    errors[row, loop] = text.splitlines()[-1] if text else type(exc).__name__
                    print(f"{label}: FAILED: {exc}", file=sys.stderr, flush=True)
                    continue
                samples.setdefault((row, loop), []).append(sample)
                print(
                    f"{label}: {sample.rate:,.0f}/s, {sample.cpu * 1e6:.2f} us CPU each "
                    f"(waited for a core: {sample.disturbance:.1%})",
                    file=sys.stderr,
                    flush=True,
                )
    return [
        Cell(row, loop, tuple(samples.get((row, loop), [])), args.stat, errors.get((row, loop)))
        for row in rows
        for loop in loops_of[row]
    ]


# ---------------------------------------------------------------- reporting

COLUMNS = [
    "program",
    "size",
    "loop",
    "rate /s",
    "CPU µs each",
    "median",
    "CPU vs asyncio",
    "rate vs asyncio",
    "server busy",
]


def baseline_of(cells: list[Cell], cell: Cell) -> Sample | None:
    """The baseline loop's reported run on ``cell``'s row."""
    for other in cells:
        if other.row == cell.row and other.loop == BASELINE:
            return other.result
    return None


def cpu_ratio(cells: list[Cell], cell: Cell) -> float | None:
    """``cell``'s CPU per unit over the baseline loop's on the same row."""
    mine, theirs = cell.result, baseline_of(cells, cell)
    return mine.cpu / theirs.cpu if mine is not None and theirs is not None and theirs.cpu else None


def table_rows(cells: list[Cell]) -> list[list[str]]:
    rows = []
    for cell in cells:
        size = "—" if cell.row.size is None else cli.show_size(cell.row.size)
        result = cell.result
        if result is None:
            rows.append([cell.row.program, size, cell.loop, "failed", (cell.error or "")[:60], *[""] * 4])
            continue
        versus = cpu_ratio(cells, cell)
        baseline = baseline_of(cells, cell)
        median = cell.median_cpu
        rows.append(
            [
                cell.row.program,
                size,
                cell.loop + (" !" if cell.disturbed else ""),
                f"{result.rate:,.0f}",
                f"{result.cpu * 1e6:.2f}",
                "—" if median is None else f"{median * 1e6:.2f}",
                "—" if versus is None else f"{versus:.2f}",
                "—" if baseline is None else f"{result.rate / baseline.rate:.2f}",
                f"{result.server_cpu / result.seconds:.0%}",
            ]
        )
    return rows


def render_text(rows: list[list[str]]) -> str:
    """echo.py's plain-text table with these columns (the program, a word, is left-aligned)."""
    return echo.render_text(rows, COLUMNS, numeric={1, *range(3, len(COLUMNS))})


def render_markdown(rows: list[list[str]]) -> str:
    """echo.py's Markdown table with these columns."""
    return echo.render_markdown(rows, COLUMNS)


def floor_ratio(cells: list[Cell], row: Row) -> float | None:
    """The C floor's CPU (measured on the protocol row of ``row``'s message size)
    over the baseline loop's on ``row`` itself, if both ran."""
    theirs = next((cell.result for cell in cells if cell.row == row and cell.loop == BASELINE), None)
    for cell in cells:
        if cell.loop == FLOOR and cell.row.size == row.size:
            floor = cell.result
            return floor.cpu / theirs.cpu if floor is not None and theirs is not None and theirs.cpu else None
    return None


def targets(cells: list[Cell]) -> list[str]:
    """One line per target whose loops both ran: the ratio on each of its rows
    (and the C floor's, where it ran: the least any loop could reach)."""
    lines = []
    for program, loop, limit in TARGETS:
        figures = []
        for cell in cells:
            if cell.row.program != program or cell.loop != loop:
                continue
            value = cpu_ratio(cells, cell)
            if value is not None:
                where = cli.show_size(cell.row.size) if cell.row.size is not None else program
                floor = floor_ratio(cells, cell.row) if cell.row.size is not None else None
                figures.append(
                    f"{where}: {value:.2f} {'ok' if value <= limit else 'MISSED'}"
                    + ("" if floor is None else f" (C floor {floor:.2f})")
                )
        if figures:
            lines.append(f"{program}: {loop} / {BASELINE} CPU <= {limit:.2f}: " + "; ".join(figures))
    return lines


def versions(wrk: str | None) -> str:
    """The peers' versions: uvloop, aiohttp, wrk."""
    parts = []
    for name in ("uvloop", "aiohttp"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    if wrk is not None:
        parts.append(http_load.versions(wrk).rpartition(", ")[2])
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every chosen server on its rows and print the table; 1 if any cell failed."""
    args = parse_args(argv)
    kinds = loop_servers.server_kinds()
    if args.list:
        for kind in kinds:
            print(f"{kind.name:18} {kind.description}")
        return 0
    chosen = choose(args, kinds)
    rows = table_rows_of(chosen, args.sizes)
    echo.check_cpus(args.server_cpu, args.client_cpu)
    binary = native.build_for(chosen) if any(row.size is not None for row in rows) else None
    wrk = None
    if any(row.size is None for row in rows) and (wrk := shutil.which("wrk")) is None:
        raise SystemExit(http_load.WRK_MISSING + " (or leave out the aiohttp servers: --servers)")
    # Keep this process, and wrk, which it starts, on the client's core.
    os.sched_setaffinity(0, {args.client_cpu})
    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="weft-loops-bench-") as scratch:
        root = http_load.prepare_scratch(Path(scratch))
        for name in chosen:
            if loop_servers.PROGRAMS[loop_servers.split_kind(name)[0]][1]:
                continue  # an echo server: the load generator checks every byte it gets back
            try:
                http_load.probe(name, args, root, LOOP_SERVERS)
            except (OSError, http.client.HTTPException, servers.ServerFailedError) as exc:
                raise SystemExit(f"{name} failed its probe: {exc}") from None
        cells = run_grid(args, chosen, rows, Measurer(args, binary, wrk, root))
    command = shlex.join(["python", "benchmarks/asyncio_loops.py", *(sys.argv[1:] if argv is None else argv)])
    header = [
        f"{started}; {echo.machine()}; {versions(wrk)}; weft {echo.weft_version()}",
        f"server on core {args.server_cpu}; C load generator (spinning) or wrk -t1 on core "
        f"{args.client_cpu}; {args.connections} connections; echo: {args.warmup:g} s warm-up + "
        f"{args.duration:g} s measured per run; HTTP: {args.http_warmup} s + {args.http_duration} s; "
        f"{args.stat} of {args.repeat} run(s) per cell (by CPU)"
        + ("; fresh malloc state" if args.fresh_malloc else ""),
        f"`{command}`" if args.markdown else command,
    ]
    notes = [
        "rate /s: messages (echo) or requests (aiohttp) per second, as the client counted them.",
        f"CPU µs each: the server's CPU time (user+system) over the measured window / the messages "
        f"echoed or requests answered, in the {args.stat} run; median: the median over the runs.",
        "vs asyncio: over the same program on asyncio's default loop, same row "
        "(CPU: below 1 is cheaper; rate: above 1 is faster); server busy: CPU time / wall time.",
    ]
    if any(cell.loop == FLOOR for cell in cells):
        notes.append(
            f"{FLOOR}: the C epoll echo server (c_echo.c: no loop, no Python, one recv and one send "
            "a message), the least CPU a message can cost here; its ratio is the best any loop could show."
        )
    if any(cell.disturbed for cell in cells):
        notes.append(
            f"!: disturbed: the server or the client waited for its core over {DISTURBED:.0%} of that run."
        )
    goals = targets(cells)
    if args.markdown:
        print("\n".join(f"{line}  " for line in header), end="\n\n")
        print(render_markdown(table_rows(cells)), end="\n\n")
        print("\n".join(f"* {note}" for note in notes))
        if goals:
            print("\nTargets:\n\n" + "\n".join(f"* {goal}" for goal in goals))
    else:
        print("\n".join(header), end="\n\n")
        print(render_text(table_rows(cells)), end="\n\n")
        print("\n".join(notes))
        if goals:
            print("\nTargets:\n" + "\n".join(f"  {goal}" for goal in goals))
    return 1 if any(cell.result is None for cell in cells) else 0


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so that the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every server and client was already stopped on the way out
        sys.exit(130)
