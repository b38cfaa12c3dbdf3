"""TLS benchmark: bulk MB/s both ways and full handshakes/s, weft's TLS beside asyncio's and uvloop's.

Every server (see ``tls_servers.py``) runs the same application protocol in
its own process pinned to one core (0), with the same certificate (made here
with trustme at run time, in a temporary directory) and the same TLS: 1.3
only, whose first cipher suite, TLS_AES_256_GCM_SHA384, both sides pick
(the script checks the cipher each run and stops on any other).  This
process, pinned to the other core (1), is the client: ``ssl.SSLSocket``
calls, whose loops are in C, so it is cheaper per byte than any of the
servers; during the bulk windows its socket is non-blocking and it spins
rather than sleeps, so that no server pays for waking it.  Per run, one fresh server and, on one connection:

1. **server receives**: the client sends ``--size`` bytes (1 GiB by default)
   and the server counts them, then answers ``DONE``;
2. **server sends**: the server writes ``--size`` bytes, ``--chunk`` at a
   time with flow control (``pause_writing``/``resume_writing``), and the
   client counts them;

each after an unmeasured ``--warmup`` of the same; then
3. **handshakes**: for ``--handshake-duration`` seconds, ``--concurrency``
   client threads each connect, complete a full TLS 1.3 handshake (no
   session resumption), send ``PING``, read the server's ``PONG`` and
   close.

For each, the rate the client saw (MB/s, MB = 10^6 bytes; handshakes/s) and
the server's CPU time per MB or per handshake, read from the server
process's own accounting (``/proc/<pid>/task/*/schedstat``) over exactly the
measured window, and both as ratios to asyncio's (``create_server(ssl=)`` on
the default loop)::

    python benchmarks/tls_bulk.py                       # every server, 1 GiB, about 3 minutes
    python benchmarks/tls_bulk.py --servers weft-reactor,asyncio --repeat 5 --size 256MiB
    python benchmarks/tls_bulk.py --markdown            # a table for docs/performance.md

The target (issue 15): weft's TLS on the reactor at least 0.9x asyncio's
MB/s and at most 1/0.9 its CPU per MB both ways, and at least asyncio's
handshakes per second; the script prints whether each was met.  The servers
are run ``--repeat`` times, interleaved so slow drift on the machine hits
every one alike; a run in which the server waited for its core over 2 % of
a window is run again (``--retries``), and each figure is the best of the
undisturbed runs (the highest rate, the lowest CPU, separately; ``--stat
median`` for the medians).  The client's own waits are left out of that
test: it spins, so on a machine with any other work it always waits for its
core some of the time, which lowers the rate of that run, not the server's
CPU per MB.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shlex
import signal
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cli
import echo
import servers
import tls_servers

#: The server every ratio is taken against.
BASELINE = "asyncio"
#: The server the targets are about.
MEASURED = "weft-reactor"
#: The cipher suite every run must have negotiated.
CIPHER = "TLS_AES_256_GCM_SHA384"
#: A run in which the server waited for its core over this share of a
#: window is disturbed, and run again.
DISTURBED = echo.DISTURBED
#: The name the certificate is issued for, and the client checks.
SERVER_NAME = "localhost"
TLS_SERVERS = Path(tls_servers.__file__).resolve()
#: Bytes per client send (the client's C loop cuts them into records).
SEND_BLOCK = 1024 * 1024
#: Seconds any one socket call of the client may block.
SOCKET_TIMEOUT = 60.0

MB = 1e6


# ------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """A row of the table: what is measured, in what unit."""

    name: str
    #: The unit of rate ("MB" or "handshake").
    unit: str
    #: The target's bounds for weft over asyncio: rate at least, CPU at most.
    min_rate: float
    max_cpu: float | None


RECEIVE = Workload("server receives", "MB", 0.9, 1 / 0.9)
SEND = Workload("server sends", "MB", 0.9, 1 / 0.9)
HANDSHAKE = Workload("handshakes", "handshake", 1.0, None)
WORKLOADS = (RECEIVE, SEND, HANDSHAKE)


@dataclass(frozen=True)
class Sample:
    """One measured window."""

    units: float
    seconds: float
    server_cpu: float
    #: The share of the window the server waited for its core.
    disturbance: float
    #: The client's CPU seconds over the window (every thread of this process).
    client_cpu: float

    @property
    def rate(self) -> float:
        """Units (MB, handshakes) per second, as the client saw them."""
        return self.units / self.seconds

    @property
    def cpu(self) -> float:
        """Server CPU seconds per unit."""
        return self.server_cpu / max(self.units, 1e-12)


# ------------------------------------------------------------- measuring


def make_certificates(directory: Path) -> None:
    """A throwaway CA (``ca.pem``) and a localhost certificate it signed (``server.pem``, key first)."""
    try:
        import trustme
    except ImportError:
        raise SystemExit("trustme not found: python -m pip install trustme (or 'weft[test]')") from None
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    issued = ca.issue_cert(SERVER_NAME)
    with open(directory / "server.pem", "wb") as out:
        out.write(issued.private_key_pem.bytes())
        for blob in issued.cert_chain_pems:
            out.write(blob.bytes())


def client_context(cert_dir: Path) -> ssl.SSLContext:
    """The client's context: TLS 1.3 only, trusting the throwaway CA, checking the name."""
    context = ssl.create_default_context(cafile=str(cert_dir / "ca.pem"))
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    return context


@dataclass(frozen=True)
class CpuSample:
    """Run time and run-delay (ns) of a process's threads so far."""

    run: int
    waited: int


def sample(pid: int | str) -> CpuSample:
    """Sum ``/proc/<pid>/task/*/schedstat``: the scheduler's run time and run-delay."""
    run = waited = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                fields = schedstat.read().split()
        except OSError:
            continue  # a thread that ended meanwhile
        run += int(fields[0])
        waited += int(fields[1])
    return CpuSample(run, waited)


def measured(pid: int, units: Callable[[], float]) -> Sample:
    """Run ``units`` (which returns how many units it moved) as one window, measured."""
    server_before, client_before = sample(pid), resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    count = units()
    seconds = time.perf_counter() - started
    server_after, client_after = sample(pid), resource.getrusage(resource.RUSAGE_SELF)
    waited = (server_after.waited - server_before.waited) / 1e9
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    return Sample(count, seconds, (server_after.run - server_before.run) / 1e9, waited / seconds, client_cpu)


def connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A TLS connection to the server, handshake done."""
    sock = socket.create_connection((servers.HOST, port), timeout=SOCKET_TIMEOUT)
    try:
        return context.wrap_socket(sock, server_hostname=SERVER_NAME)
    except BaseException:
        sock.close()
        raise


def read_line(conn: ssl.SSLSocket, expected: bytes) -> None:
    """Read the server's one-line answer; ServerFailedError unless it is ``expected``."""
    line = b""
    while not line.endswith(b"\n"):
        piece = conn.recv(64)
        if not piece:
            break
        line += piece
    if line != expected:
        raise servers.ServerFailedError(f"the server answered {line!r}, not {expected!r}")


def push(conn: ssl.SSLSocket, size: int) -> float:
    """The server receives: send ``size`` bytes, wait for its DONE.  MB moved.

    The socket is non-blocking and the client spins on it (see :func:`spinning`).
    """
    block = memoryview(b"\x5a" * SEND_BLOCK)
    conn.sendall(f"RECV {size}\n".encode())
    left = size
    with spinning(conn):
        while left:
            piece = block[: min(left, SEND_BLOCK)]
            try:
                left -= conn.send(piece)
            except ssl.SSLWantWriteError:
                continue  # the same piece again: OpenSSL goes on where it stopped
    read_line(conn, b"DONE\n")
    return size / MB


def pull(conn: ssl.SSLSocket, size: int) -> float:
    """The server sends: ask for ``size`` bytes and read them all, spinning.  MB moved."""
    buffer = memoryview(bytearray(256 * 1024))
    conn.sendall(f"SEND {size}\n".encode())
    left = size
    with spinning(conn):
        while left:
            try:
                got = conn.recv_into(buffer, min(left, len(buffer)))
            except ssl.SSLWantReadError:
                continue
            if not got:
                raise servers.ServerFailedError(f"the server closed with {left} bytes still to send")
            left -= got
    return size / MB


@contextlib.contextmanager
def spinning(conn: ssl.SSLSocket) -> Iterator[None]:
    """Make ``conn`` non-blocking for the block: the client polls instead of sleeping.

    On a virtual machine, waking a sleeping vCPU costs the waker an
    interrupt and an exit to the hypervisor; a sleeping client would make
    the server pay that for every wake-up, and so would make a faster
    server, which finds the client asleep more often, look more expensive
    (see "The client spins" in benchmarks/README.md).
    """
    conn.setblocking(False)
    try:
        yield
    finally:
        conn.settimeout(SOCKET_TIMEOUT)


def handshakes(port: int, context: ssl.SSLContext, duration: float, concurrency: int) -> float:
    """Full handshakes (connect, handshake, PING, PONG, close) on ``concurrency`` threads; how many."""
    deadline = time.monotonic() + duration
    counts = [0] * concurrency
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            while time.monotonic() < deadline:
                with connect(port, context) as conn:
                    conn.sendall(b"PING\n")
                    read_line(conn, b"PONG\n")
                counts[index] += 1
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise servers.ServerFailedError(f"a handshake failed: {errors[0]!r}")
    return float(sum(counts))


def measure(kind: str, args: argparse.Namespace, cert_dir: Path) -> dict[Workload, Sample]:
    """One run: a fresh server, the bulk windows on one connection, then the handshakes."""
    context = client_context(cert_dir)
    arguments = ["--cert", str(cert_dir), "--chunk", str(args.chunk)]
    with servers.ServerProcess(
        kind, cpu=args.server_cpu, fresh_malloc=args.fresh_malloc, script=TLS_SERVERS, arguments=arguments
    ) as server:
        try:
            results = {}
            with connect(server.port, context) as conn:
                cipher = conn.cipher()
                if cipher is None or cipher[0] != CIPHER:
                    raise servers.ServerFailedError(f"negotiated {cipher}, not {CIPHER}")
                if args.warmup:
                    push(conn, args.warmup)
                results[RECEIVE] = measured(server.pid, lambda: push(conn, args.size))
                if args.warmup:
                    pull(conn, args.warmup)
                results[SEND] = measured(server.pid, lambda: pull(conn, args.size))
            if args.handshake_duration > 0:
                handshakes(server.port, context, min(args.handshake_duration, 0.3), args.concurrency)
                results[HANDSHAKE] = measured(
                    server.pid,
                    lambda: handshakes(server.port, context, args.handshake_duration, args.concurrency),
                )
        except (OSError, ssl.SSLError) as exc:
            server.check_alive()
            raise servers.ServerFailedError(f"{type(exc).__name__}: {exc}\n{server.errors()}") from exc
        server.check_alive()
    return results


# ------------------------------------------------------------------ cells


@dataclass(frozen=True)
class Cell:
    """One server on one workload: its runs."""

    kind: str
    workload: Workload
    runs: tuple[Sample, ...]
    stat: str

    @property
    def counted(self) -> list[Sample]:
        """The undisturbed runs (all of them if every one was disturbed)."""
        return [run for run in self.runs if run.disturbance <= DISTURBED] or list(self.runs)

    @property
    def rate(self) -> float | None:
        """The highest rate of the counted runs, or their median."""
        rates = [run.rate for run in self.counted]
        if not rates:
            return None
        return max(rates) if self.stat == "best" else statistics.median(rates)

    @property
    def cpu(self) -> float | None:
        """The lowest CPU per unit of the counted runs, or their median."""
        cpus = [run.cpu for run in self.counted]
        if not cpus:
            return None
        return min(cpus) if self.stat == "best" else statistics.median(cpus)

    @property
    def median_cpu(self) -> float | None:
        """The median CPU per unit over the counted runs: the spread."""
        counted = self.counted
        return statistics.median(run.cpu for run in counted) if counted else None

    @property
    def median_rate(self) -> float | None:
        """The median rate over the counted runs: the spread."""
        counted = self.counted
        return statistics.median(run.rate for run in counted) if counted else None

    @property
    def busy(self) -> tuple[float, float] | None:
        """The server's and the client's CPU over the wall time, in the server's cheapest counted run."""
        counted = self.counted
        if not counted:
            return None
        cheapest = min(counted, key=lambda run: run.cpu)
        return cheapest.server_cpu / cheapest.seconds, cheapest.client_cpu / cheapest.seconds

    @property
    def disturbed(self) -> bool:
        """Whether every run was disturbed."""
        return bool(self.runs) and all(run.disturbance > DISTURBED for run in self.runs)


def run_all(args: argparse.Namespace, chosen: list[str], cert_dir: Path) -> tuple[list[Cell], dict[str, str]]:
    """Measure every server ``args.repeat`` times, interleaved; the cells, and the servers that failed."""
    samples: dict[tuple[str, Workload], list[Sample]] = {}
    errors: dict[str, str] = {}
    total, done = args.repeat * len(chosen), 0
    for repeat in range(args.repeat):
        # Rotate the order each round, so that no server always runs first.
        for kind in chosen[repeat % len(chosen) :] + chosen[: repeat % len(chosen)]:
            done += 1
            label = f"[{done}/{total}] {kind}"
            try:
                for attempt in range(args.retries + 1):
                    results = measure(kind, args, cert_dir)
                    worst = max(result.disturbance for result in results.values())
                    if worst <= DISTURBED or attempt == args.retries:
                        break
                    print(f"{label}: disturbed ({worst:.0%}), again", file=sys.stderr)
                    for workload, result in results.items():
                        samples.setdefault((kind, workload), []).append(result)
            except servers.ServerFailedError as exc:
                text = str(exc).strip()
                errors[kind] = text.splitlines()[0] if text else type(exc).__name__
                print(f"{label}: FAILED: {exc}", file=sys.stderr, flush=True)
                continue
            for workload, result in results.items():
                samples.setdefault((kind, workload), []).append(result)
            print(
                f"{label}: "
                + "; ".join(
                    f"{workload.name}: {result.rate:,.0f} {workload.unit}/s, "
                    f"{result.cpu * 1e6:,.1f} us CPU/{workload.unit}"
                    for workload, result in results.items()
                )
                + f" (waited for a core: {worst:.1%})",
                file=sys.stderr,
                flush=True,
            )
    cells = [
        Cell(kind, workload, tuple(samples.get((kind, workload), [])), args.stat)
        for workload in WORKLOADS
        for kind in chosen
        if (kind, workload) in samples
    ]
    return cells, errors


# ---------------------------------------------------------------- reporting

COLUMNS = [
    "workload",
    "server",
    "rate /s",
    "median rate",
    "rate vs asyncio",
    "CPU µs each",
    "median CPU",
    "CPU vs asyncio",
    "server busy",
    "client busy",
]


def baseline_of(cells: list[Cell], cell: Cell) -> Cell | None:
    """The baseline server's cell on ``cell``'s workload."""
    return next(
        (other for other in cells if other.workload == cell.workload and other.kind == BASELINE), None
    )


def ratios(cells: list[Cell], cell: Cell) -> tuple[float | None, float | None]:
    """``cell``'s rate and CPU per unit over the baseline's."""
    base = baseline_of(cells, cell)
    if base is None or base.rate is None or base.cpu is None or cell.rate is None or cell.cpu is None:
        return None, None
    return cell.rate / base.rate, cell.cpu / base.cpu


def table_rows(cells: list[Cell]) -> list[list[str]]:
    rows = []
    for cell in cells:
        rate_ratio, cpu_ratio = ratios(cells, cell)
        unit = cell.workload.unit
        median = cell.median_cpu
        median_rate = cell.median_rate
        busy = cell.busy
        rows.append(
            [
                cell.workload.name,
                cell.kind + (" !" if cell.disturbed else ""),
                "—" if cell.rate is None else f"{cell.rate:,.0f} {unit}",
                "—" if median_rate is None else f"{median_rate:,.0f}",
                "—" if rate_ratio is None else f"{rate_ratio:.2f}",
                "—" if cell.cpu is None else f"{cell.cpu * 1e6:,.1f}",
                "—" if median is None else f"{median * 1e6:,.1f}",
                "—" if cpu_ratio is None else f"{cpu_ratio:.2f}",
                "—" if busy is None else f"{busy[0]:.0%}",
                "—" if busy is None else f"{busy[1]:.0%}",
            ]
        )
    return rows


def targets(cells: list[Cell]) -> list[str]:
    """One line per workload on which weft's reactor and the baseline both ran."""
    lines = []
    for cell in cells:
        if cell.kind != MEASURED:
            continue
        rate_ratio, cpu_ratio = ratios(cells, cell)
        if rate_ratio is None or cpu_ratio is None:
            continue
        workload = cell.workload
        parts = [f"rate {rate_ratio:.2f} >= {workload.min_rate:.2f} {_mark(rate_ratio >= workload.min_rate)}"]
        base = baseline_of(cells, cell)
        if cell.median_rate is not None and base is not None and base.median_rate:
            # The medians too: under load a best rate is the luckiest window.
            parts[0] += f" (medians: {cell.median_rate / base.median_rate:.2f})"
        if workload.max_cpu is not None:
            parts.append(
                f"CPU {cpu_ratio:.2f} <= {workload.max_cpu:.2f} {_mark(cpu_ratio <= workload.max_cpu)}"
            )
        lines.append(f"{workload.name}: {MEASURED} / {BASELINE}: " + "; ".join(parts))
    return lines


def _mark(met: bool) -> str:
    return "ok" if met else "MISSED"


def render_text(rows: list[list[str]]) -> str:
    """echo.py's plain-text table with these columns (the workload and server, words, left-aligned)."""
    return echo.render_text(rows, COLUMNS, numeric=set(range(2, len(COLUMNS))))


def render_markdown(rows: list[list[str]]) -> str:
    """echo.py's Markdown table with these columns."""
    return echo.render_markdown(rows, COLUMNS)


def versions() -> str:
    """OpenSSL's and the peers' versions."""
    parts = [ssl.OPENSSL_VERSION]
    for name in ("uvloop", "trustme"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


# ----------------------------------------------------------------- arguments


def parse_bytes(text: str) -> int:
    """``1GiB``, ``256MiB``, ``64k``, ``1048576`` -> bytes (binary units)."""
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = 1
    for suffix, size in (("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)):
        if cleaned.endswith(suffix):
            cleaned, factor = cleaned.removesuffix(suffix), size
            break
    try:
        number = float(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"a size cannot be negative: {text!r}")
    return int(number * factor)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "TLS benchmark: MB/s and server CPU per MB both ways over one connection, and full "
            "handshakes per second, weft's TLS against asyncio's and uvloop's."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--size", type=parse_bytes, default=1 << 30, help="bytes per direction (1GiB, 256MiB...)"
    )
    parser.add_argument(
        "--warmup", type=parse_bytes, default=32 << 20, help="unmeasured bytes each way first (0: none)"
    )
    parser.add_argument(
        "--chunk",
        type=parse_bytes,
        default=tls_servers.DEFAULT_CHUNK,
        help="bytes per server write when it sends",
    )
    parser.add_argument(
        "--handshake-duration", type=float, default=2.0, help="measured seconds of handshakes (0: none)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="client threads making handshakes")
    cli.add_run_options(
        parser,
        best="the highest rate and the lowest CPU, each separately",
        client="the client (this process)",
        disturbed="a run in which the server waited for its core",
    )
    parser.set_defaults(repeat=3)
    args = parser.parse_args(argv)
    if args.size < 1 or args.chunk < 1 or args.repeat < 1 or args.retries < 0 or args.concurrency < 1:
        parser.error("--size, --chunk, --repeat and --concurrency must be positive, --retries not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every chosen server and print the table; 1 if any failed."""
    args = parse_args(argv)
    kinds = tls_servers.server_kinds()
    if args.list:
        for kind in kinds:
            print(f"{kind.name:14} {kind.description}")
        return 0
    chosen = cli.choose_servers(args.servers, kinds)
    echo.check_cpus(args.server_cpu, args.client_cpu)
    os.sched_setaffinity(0, {args.client_cpu})
    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="weft-tls-bench-") as scratch:
        cert_dir = Path(scratch)
        make_certificates(cert_dir)
        cells, errors = run_all(args, chosen, cert_dir)
    rows = table_rows(cells)
    command = shlex.join(["python", "benchmarks/tls_bulk.py", *(sys.argv[1:] if argv is None else argv)])
    header = [
        f"{started}; {echo.machine()}; {versions()}; weft {echo.weft_version()}",
        f"server on core {args.server_cpu}, client (ssl sockets, spinning in the bulk windows) "
        f"on core {args.client_cpu}; "
        f"TLS 1.3, {CIPHER}, one trustme certificate (ECDSA P-256); {args.size:,} bytes each way after "
        f"{args.warmup:,} unmeasured, server writes of {args.chunk:,} bytes; handshakes for "
        f"{args.handshake_duration:g} s on {args.concurrency} client threads; "
        f"{args.stat} of {args.repeat} run(s) per server"
        + ("; fresh malloc state" if args.fresh_malloc else ""),
        f"`{command}`" if args.markdown else command,
    ]
    notes = [
        "rate: MB (10^6 bytes) or full handshakes per second, as the client saw them; "
        f"{args.stat} of the runs; median rate: over the runs.",
        "CPU µs each: the server's CPU time (user+system, from /proc/<pid>/task/*/schedstat) over the "
        f"measured window per MB or per handshake, {args.stat} of the runs; median CPU: over the runs.",
        f"vs asyncio: over {BASELINE}'s figure on the same workload (rate: above 1 is faster; "
        "CPU: below 1 is cheaper).",
        "server busy, client busy: each side's CPU time / wall time in the server's cheapest run "
        "(a side near 100% is the bottleneck; the client spins in the bulk windows).",
    ]
    notes += [f"{kind} failed: {error}" for kind, error in errors.items()]
    if any(cell.disturbed for cell in cells):
        notes.append(
            f"!: every run disturbed: the server waited for its core over {DISTURBED:.0%} of a window."
        )
    goals = targets(cells)
    if args.markdown:
        print("\n".join(f"{line}  " for line in header), end="\n\n")
        print(render_markdown(rows), end="\n\n")
        print("\n".join(f"* {note}" for note in notes))
        if goals:
            print("\nTargets:\n\n" + "\n".join(f"* {goal}" for goal in goals))
    else:
        print("\n".join(header), end="\n\n")
        print(render_text(rows), end="\n\n")
        print("\n".join(notes))
        if goals:
            print("\nTargets:\n" + "\n".join(f"  {goal}" for goal in goals))
    return 1 if errors else 0


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so that the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every server was already stopped on the way out
        sys.exit(130)
