"""HTTP benchmark: ``weft serve http`` on each driver against twisted.web, uvicorn and h11, in one run.

Every server (see ``http_servers.py``) runs in its own process pinned to
one core (0); ``wrk``, the HTTP load tool, runs pinned to the other (1) with
one thread and 50 keep-alive connections, each sending ``GET /hello.txt``
again as soon as the previous answer is in.  Every server answers with 200
and the same 13 bytes.  Per server the table gives the requests per second
wrk saw, the server's CPU time per request, read from the server process's
own accounting over exactly the measured run, and both as ratios to the
twisted.web baseline's (``Site``, a resource answering from memory, no
access log; uvicorn with its h11 and its httptools parsers, and a minimal
h11 server, are the other peers; a peer whose package is missing is
skipped, with a line saying so)::

    python benchmarks/http_load.py                    # every server, about 2 minutes
    python benchmarks/http_load.py --servers weft-reactor-hello,twisted-web --repeat 9
    python benchmarks/http_load.py --markdown         # a table for docs/performance.md

First every server must answer a probe correctly (two keep-alive requests,
200 and the 13 bytes).  Then each run starts a fresh server, warms it up
with an unmeasured wrk run, and measures one; a run with any wrk error (a
refused or reset connection, a non-2xx answer) fails.  The list of servers
is run ``--repeat`` times, interleaved so slow drift on the machine hits
every server alike, and each server reports its best run (the most
requests per second; ``--stat median`` for the median one).  Needs ``wrk``
(Debian/Ubuntu: ``apt-get install wrk``).  See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cli
import echo
import http_servers
import servers

#: The baseline every ratio is taken against (the other one when it is not installed).
BASELINE = "twisted-web"
FALLBACK_BASELINE = "h11-asyncio"

#: A run in which the server waited for its core (another task had it)
#: longer than this share of the window is disturbed, and run again.
DISTURBED = 0.02

HTTP_SERVERS = Path(http_servers.__file__).resolve()

#: wrk's report, one line that is easy to parse (wrk's own is for people).
REPORT_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "REPORT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

WRK_MISSING = "wrk not found: install it (Debian/Ubuntu: apt-get install wrk) and run again"


class WrkError(RuntimeError):
    """A wrk run failed, or saw errors (a refused connection, a non-2xx answer...)."""


# ------------------------------------------------------------- measuring


@dataclass(frozen=True)
class CpuSample:
    """A process's CPU use so far: the scheduler's figures (ns) where readable, else ticks."""

    run_ns: int | None
    waited_ns: int | None
    ticks_seconds: float


def sample_cpu(pid: int) -> CpuSample:
    """Sum ``/proc/<pid>/task/*/schedstat`` (run time, run-delay), and utime+stime from
    ``/proc/<pid>/stat`` as the fallback, as loadgen.c does for the echo benchmark."""
    run: int | None = 0
    waited: int | None = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                fields = schedstat.read().split()
            run = (run or 0) + int(fields[0])
            waited = (waited or 0) + int(fields[1])
    except (OSError, ValueError, IndexError):
        run = waited = None
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # from the state on: utime and stime are 11, 12
    ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return CpuSample(run, waited, ticks)


@dataclass(frozen=True)
class Run:
    """What one measured wrk run saw (seconds, requests)."""

    requests: int
    #: wrk's own measured duration.
    seconds: float
    #: The window the CPU figures cover: wrk's process from start to exit.
    wall: float
    server_cpu: float
    #: Seconds the server was runnable but waited for its core (None: unknown).
    server_waited: float | None
    #: wrk's CPU time (both its threads), from getrusage.
    client_cpu: float

    @property
    def rate(self) -> float:
        """Requests per second, as wrk counted them."""
        return self.requests / self.seconds

    @property
    def cpu_per_request(self) -> float:
        """Server CPU seconds per request."""
        return self.server_cpu / max(self.requests, 1)

    @property
    def disturbance(self) -> float:
        """The share of the window the server spent waiting for its core."""
        return (self.server_waited or 0.0) / self.wall


def run_wrk(wrk: str, port: int, args: argparse.Namespace, duration: int, script: Path) -> dict[str, int]:
    """One wrk run against the server; its report's figures.  WrkError on any error."""
    command = [
        wrk,
        "-t1",
        f"-c{args.connections}",
        f"-d{duration}s",
        "-s",
        str(script),
        f"http://{servers.HOST}:{port}{http_servers.PATH}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it
        raise WrkError(f"wrk did not finish in {duration + 60} s") from exc
    line = next((line for line in result.stdout.splitlines() if line.startswith("REPORT ")), None)
    if result.returncode != 0 or line is None:
        raise WrkError((result.stderr or result.stdout).strip() or f"wrk exited with {result.returncode}")
    figures = {key: int(value) for key, value in (item.split("=", 1) for item in line.split()[1:])}
    errors = {
        name: figures[name] for name in ("connect", "read", "write", "status", "timeout") if figures[name]
    }
    if errors or not figures["requests"]:
        described = ", ".join(f"{count} {name}" for name, count in errors.items()) or "no requests"
        raise WrkError(f"wrk saw errors: {described} (status: answers other than 2xx/3xx)")
    return figures


def prepare_scratch(scratch: Path) -> Path:
    """Fill the empty directory ``scratch``: ``site/`` holding the file every
    server serves, and wrk's report script beside it.  Returns ``site/``, the
    ``root`` that :func:`measure` and :func:`probe` take."""
    root = scratch / "site"
    root.mkdir()
    (root / http_servers.FILE_NAME).write_bytes(http_servers.BODY)
    (scratch / "report.lua").write_text(REPORT_SCRIPT)
    return root


def server_process(
    kind: str, args: argparse.Namespace, root: Path, script: Path | None, *, fresh_malloc: bool = False
) -> servers.ServerProcess:
    """Start ``kind``: from ``http_servers.py`` serving ``root`` when ``script``
    is None, else from ``script`` (given no arguments: it serves from memory)."""
    return servers.ServerProcess(
        kind,
        cpu=args.server_cpu,
        fresh_malloc=fresh_malloc,
        script=script or HTTP_SERVERS,
        arguments=["--root", str(root)] if script is None else [],
    )


def measure(kind: str, args: argparse.Namespace, wrk: str, root: Path, script: Path | None = None) -> Run:
    """One fresh server, one unmeasured warm-up run, one measured run.  ``root``
    comes from :func:`prepare_scratch`; ``script`` runs the server when it is
    not one of ``http_servers.py``'s (see :func:`server_process`)."""
    report = root.parent / "report.lua"
    with server_process(kind, args, root, script, fresh_malloc=args.fresh_malloc) as server:
        try:
            if args.warmup:
                run_wrk(wrk, server.port, args, args.warmup, report)
            before = sample_cpu(server.pid)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            figures = run_wrk(wrk, server.port, args, args.duration, report)
            wall = time.monotonic() - started
            after = sample_cpu(server.pid)
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        except (WrkError, OSError):
            server.check_alive()  # a dead server explains itself better
            raise
    if before.run_ns is not None and after.run_ns is not None:
        server_cpu = (after.run_ns - before.run_ns) / 1e9
        waited = ((after.waited_ns or 0) - (before.waited_ns or 0)) / 1e9
    else:
        server_cpu, waited = after.ticks_seconds - before.ticks_seconds, None
    return Run(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        wall=wall,
        server_cpu=server_cpu,
        server_waited=waited,
        client_cpu=(children_after.ru_utime + children_after.ru_stime)
        - (children.ru_utime + children.ru_stime),
    )


def probe(kind: str, args: argparse.Namespace, root: Path, script: Path | None = None) -> list[str]:
    """Check that ``kind`` answers two requests on one connection with 200 and the
    expected body; return its response's header names, in order."""
    with server_process(kind, args, root, script) as server:
        connection = http.client.HTTPConnection(servers.HOST, server.port, timeout=10)
        try:
            names: list[str] = []
            for _ in range(2):
                connection.request("GET", http_servers.PATH)
                response = connection.getresponse()
                body = response.read()
                if response.status != 200 or body != http_servers.BODY or response.will_close:
                    raise servers.ServerFailedError(
                        f"{kind} answered {response.status}, {body!r}"
                        f"{', closing' if response.will_close else ''}: not a keep-alive 200 "
                        f"with {http_servers.BODY!r}"
                    )
                names = [name.lower() for name, _ in response.getheaders()]
            return names
        finally:
            connection.close()


@dataclass(frozen=True)
class Cell:
    """One server: its runs, and the one it reports."""

    kind: str
    runs: tuple[Run, ...]
    stat: str
    error: str | None = None

    @property
    def counted(self) -> list[Run]:
        """The undisturbed runs (all of them if every one was disturbed), fastest first."""
        calm = [run for run in self.runs if run.disturbance <= DISTURBED] or list(self.runs)
        return sorted(calm, key=lambda run: run.rate, reverse=True)

    @property
    def result(self) -> Run | None:
        """The run this server reports: the fastest counted run, or the median one."""
        counted = self.counted
        if not counted:
            return None
        return counted[0] if self.stat == "best" else counted[(len(counted) - 1) // 2]

    @property
    def median_rate(self) -> float | None:
        """The median requests per second over the counted runs: the spread."""
        counted = self.counted
        return statistics.median(run.rate for run in counted) if counted else None

    @property
    def disturbed(self) -> bool:
        """Whether even the reported run was disturbed."""
        return self.result is not None and self.result.disturbance > DISTURBED


def run_all(args: argparse.Namespace, chosen: list[str], wrk: str, root: Path) -> list[Cell]:
    """Measure every server ``args.repeat`` times, interleaved."""
    results: dict[str, list[Run]] = {}
    errors: dict[str, str] = {}
    total, done = args.repeat * len(chosen), 0
    for repeat in range(args.repeat):
        # Rotate the order each round, so that no server always runs first.
        for kind in chosen[repeat % len(chosen) :] + chosen[: repeat % len(chosen)]:
            done += 1
            label = f"[{done}/{total}] {kind}"
            try:
                for attempt in range(args.retries + 1):
                    result = measure(kind, args, wrk, root)
                    if result.disturbance <= DISTURBED:
                        break
                    if attempt < args.retries:
                        print(f"{label}: disturbed ({result.disturbance:.0%}), again", file=sys.stderr)
                        results.setdefault(kind, []).append(result)
            except (WrkError, servers.ServerFailedError) as exc:
                errors[kind] = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                print(f"{label}: FAILED: {exc}", file=sys.stderr, flush=True)
                continue
            results.setdefault(kind, []).append(result)
            print(
                f"{label}: {result.rate:,.0f} req/s, {result.cpu_per_request * 1e6:.1f} us CPU/req, "
                f"server busy {result.server_cpu / result.wall:.0%} "
                f"(waited for its core: {result.disturbance:.1%})",
                file=sys.stderr,
                flush=True,
            )
    return [Cell(kind, tuple(results.get(kind, [])), args.stat, errors.get(kind)) for kind in chosen]


# ---------------------------------------------------------------- reporting

COLUMNS = [
    "server",
    "req/s",
    "median req/s",
    "req/s vs base",
    "CPU µs/req",
    "CPU vs base",
    "CPU vs same loop",
    "server busy",
    "client busy",
]


def _ratio(mine: float | None, theirs: float | None) -> str:
    return "—" if mine is None or not theirs else f"{mine / theirs:.2f}"


def table_rows(cells: list[Cell], kinds: dict[str, servers.ServerKind]) -> list[list[str]]:
    by_kind = {cell.kind: cell.result for cell in cells}
    baseline = by_kind.get(BASELINE) or by_kind.get(FALLBACK_BASELINE)
    rows = []
    for cell in cells:
        result = cell.result
        if result is None:
            rows.append([cell.kind, "failed", (cell.error or "")[:60], *[""] * (len(COLUMNS) - 3)])
            continue
        peer_name = kinds[cell.kind].same_loop_peer
        peer = by_kind.get(peer_name) if peer_name else None
        median = cell.median_rate
        rows.append(
            [
                cell.kind + (" !" if cell.disturbed else ""),
                f"{result.rate:,.0f}",
                "—" if median is None else f"{median:,.0f}",
                _ratio(result.rate, baseline.rate if baseline else None),
                f"{result.cpu_per_request * 1e6:.1f}",
                _ratio(result.cpu_per_request, baseline.cpu_per_request if baseline else None),
                _ratio(result.cpu_per_request, peer.cpu_per_request if peer else None),
                f"{result.server_cpu / result.wall:.0%}",
                f"{result.client_cpu / result.wall:.0%}",
            ]
        )
    return rows


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    return "\n".join([line(COLUMNS), "  ".join("-" * width for width in widths), *map(line, rows)])


def render_markdown(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---", *["--:"] * (len(COLUMNS) - 1)]) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def header_notes(headers: dict[str, list[str]]) -> list[str]:
    """One note per distinct set of response headers: which servers send it."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for kind, names in headers.items():
        groups.setdefault(tuple(names), []).append(kind)
    return [f"response headers of {', '.join(kinds)}: {', '.join(names)}" for names, kinds in groups.items()]


def versions(wrk: str) -> str:
    """h11's, uvloop's and wrk's versions."""
    parts = []
    for name in ("h11", "uvloop", "twisted", "uvicorn", "httptools"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    try:
        banner = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False).stdout
        parts.append(f"wrk {banner.split()[1]}")
    except (OSError, IndexError):
        parts.append("wrk")
    return ", ".join(parts)


# ----------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "HTTP benchmark: requests/s and server CPU per request of `weft serve http` on each "
            "driver (and of weft's HTTP server answering from memory) against twisted.web, uvicorn "
            "(h11 and httptools) and a minimal h11 server, under wrk."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--duration", type=int, default=2, help="measured seconds per run (wrk: whole seconds)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured wrk run before each run")
    parser.add_argument("--connections", type=int, default=50, help="wrk's keep-alive connections")
    cli.add_run_options(
        parser,
        best="the most requests/s",
        client="wrk",
        disturbed="a run in which the server waited for its core",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.repeat < 1 or args.retries < 0 or args.connections < 1:
        parser.error(
            "--duration, --repeat and --connections must be positive, --warmup and --retries not negative"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every chosen server and print the table; 1 if any failed."""
    args = parse_args(argv)
    kinds = http_servers.server_kinds()
    if args.list:
        for kind in kinds:
            print(f"{kind.name:20} {kind.description}")
        return 0
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(WRK_MISSING)
    chosen = cli.choose_servers(args.servers, kinds)
    echo.check_cpus(args.server_cpu, args.client_cpu)
    # wrk, started from here, inherits this: it runs on the client's core.
    # Each server pins itself to the server's core as it starts.
    os.sched_setaffinity(0, {args.client_cpu})
    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="weft-http-bench-") as scratch:
        root = prepare_scratch(Path(scratch))
        headers = {}
        for kind in chosen:
            try:
                headers[kind] = probe(kind, args, root)
            except (OSError, http.client.HTTPException, servers.ServerFailedError) as exc:
                raise SystemExit(f"{kind} failed its probe: {exc}") from None
        cells = run_all(args, chosen, wrk, root)
    rows = table_rows(cells, {kind.name: kind for kind in kinds})
    ran = {cell.kind for cell in cells if cell.result is not None}
    baseline_name = BASELINE if BASELINE in ran else FALLBACK_BASELINE
    command = shlex.join(["python", "benchmarks/http_load.py", *(sys.argv[1:] if argv is None else argv)])
    header = [
        f"{started}; {echo.machine()}; {versions(wrk)}; weft {echo.weft_version()}",
        f"server on core {args.server_cpu}, wrk -t1 -c{args.connections} (keep-alive) on core "
        f"{args.client_cpu}; {args.warmup} s warm-up + {args.duration} s measured per run; "
        f"{args.stat} of {args.repeat} run(s) per server (by req/s)"
        + ("; fresh malloc state" if args.fresh_malloc else ""),
        f"`{command}`" if args.markdown else command,
    ]
    notes = [
        f"req/s: as wrk counted them, in the {args.stat} run; median req/s: the median over the runs.",
        "CPU µs/req: the server's CPU time (user+system, from /proc/<pid>/task/*/schedstat) over the "
        "measured wrk run / the requests completed in it.",
        f"vs base: that figure over {baseline_name}'s (req/s: above 1 is faster; CPU: below 1 is "
        "cheaper); vs same loop: weft on a loop over the h11 server on that loop.",
        "weft-*-files is what `weft serve http --root DIR --no-access-log` runs (twisted-web logs nothing "
        "either).",
        "server busy: server CPU time / wall time; "
        "client busy: wrk's CPU time (both its threads) / wall time.",
        *header_notes(headers),
        *http_servers.missing_peers(),
    ]
    if any(cell.disturbed for cell in cells):
        notes.append(f"!: disturbed: the server waited for its core over {DISTURBED:.0%} of that run.")
    if args.markdown:
        print("\n".join(f"{line}  " for line in header), end="\n\n")
        print(render_markdown(rows), end="\n\n")
        print("\n".join(f"* {note}" for note in notes))
    else:
        print("\n".join(header), end="\n\n")
        print(render_text(rows), end="\n\n")
        print("\n".join(notes))
    return 1 if any(cell.result is None for cell in cells) else 0


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so that the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every server and wrk were already stopped on the way out
        sys.exit(130)
