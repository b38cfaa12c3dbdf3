"""System calls per echoed message, counted with strace on a real server.

Each server runs under ``strace -f -c`` and the C load generator drives a
known number of echo round trips through it.  Start-up, accepting, warm-up
and shutdown cost the same whatever the message count, so each server is
run twice, with two message counts, and the difference between the two
strace summaries, divided by the difference in messages, is what one
message costs in steady state::

    python benchmarks/syscalls.py
    python benchmarks/syscalls.py --servers weft-reactor --check

The figure to watch is ``epoll_ctl`` per message: weft's reactor registers
a connection once and never changes it while a steady exchange runs, so it
must be 0 (the 2012 prototype made two per read; Twisted's epoll reactor
still makes two per message).  ``--check`` exits with status 1 unless it is
0 on every row, and says so.

strace slows every system call by tens of microseconds, so the server is
far slower than usual: with many connections it finds more of them ready
per ``epoll_wait`` than it would at full speed, and that figure (and so the
total) is lower than in an untraced run.  Calls that happen once per message
(``recvfrom``/``read``, ``sendto``/``write``, ``epoll_ctl``) do not depend
on that.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cli
import loadgen
import native
import servers

#: A syscall made less often than this per message is left out of the breakdown.
SHOWN = 0.005

# Server and client on cores of their own where there are two; counting
# system calls does not need it, so elsewhere they run unpinned.
SERVER_CPU, CLIENT_CPU = (0, 1) if {0, 1} <= os.sched_getaffinity(0) else (None, None)


@dataclass(frozen=True)
class Row:
    """One server at one message size and connection count: syscalls per message, by name."""

    kind: str
    size: int
    connections: int
    per_message: dict[str, float]
    messages: int

    @property
    def total(self) -> float:
        """All system calls per message."""
        return sum(self.per_message.values())

    @property
    def epoll_ctl(self) -> float:
        """Registration changes per message."""
        return self.per_message.get("epoll_ctl", 0.0)


def parse_summary(text: str) -> Counter[str]:
    """The calls per syscall in an ``strace -c`` summary.

    Rows are ``% time, seconds, usecs/call, calls, [errors,] syscall``: the
    errors column is empty when there were none, so the calls are the fourth
    field and the name the last.
    """
    calls: Counter[str] = Counter()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[-1] == "total":
            continue
        try:
            float(fields[0])
            count = int(fields[3])
        except ValueError:
            continue  # the header or a rule
        calls[fields[-1]] += count
    return calls


def traced_run(
    kind: str, connections: int, size: int, per_connection: int, binary: Path, *, fresh_malloc: bool
) -> Counter[str]:
    """Every syscall ``kind``'s server made over its whole life, serving one load."""
    with tempfile.TemporaryDirectory(prefix="weft-strace-") as scratch:
        summary = Path(scratch) / "summary"
        server = servers.ServerProcess(
            kind,
            cpu=SERVER_CPU,
            wrapper=["strace", "-f", "-c", "-o", str(summary)],
            fresh_malloc=fresh_malloc,
        )
        try:
            try:
                loadgen.run(
                    binary,
                    server.port,
                    connections=connections,
                    size=size,
                    count=per_connection,
                    cpu=CLIENT_CPU,
                    timeout=300,
                )
            except loadgen.LoadgenError:
                server.check_alive()
                raise
            # Let it see every connection end before it is stopped, so the
            # shutdown costs the same in both runs.
            server.wait_until_disconnected()
        finally:
            server.stop()  # SIGTERM to the server; strace then writes its summary and exits
        if not summary.exists():
            raise servers.ServerFailedError(f"strace wrote no summary for {kind}")
        return parse_summary(summary.read_text())


def measure(
    kind: str,
    connections: int,
    size: int,
    totals: tuple[int, int],
    binary: Path,
    *,
    fresh_malloc: bool = False,
) -> Row:
    """Syscalls per message: the difference of two runs with different message counts."""
    small, large = (max(1, total // connections) for total in totals)
    if large <= small:
        raise SystemExit("--messages needs two counts, the second larger by at least one per connection")
    first = traced_run(kind, connections, size, small, binary, fresh_malloc=fresh_malloc)
    second = traced_run(kind, connections, size, large, binary, fresh_malloc=fresh_malloc)
    messages = connections * (large - small)
    per_message = {name: (second[name] - first[name]) / messages for name in second.keys() | first.keys()}
    return Row(kind, size, connections, per_message, messages)


def render(rows: list[Row], markdown: bool) -> str:
    header = ["server", "size", "conns", "epoll_ctl/msg", "syscalls/msg", "breakdown per message"]
    body = []
    for row in rows:
        shown = sorted(
            ((name, value) for name, value in row.per_message.items() if abs(value) >= SHOWN),
            key=lambda item: (-item[1], item[0]),
        )
        body.append(
            [
                row.kind,
                cli.show_size(row.size),
                str(row.connections),
                f"{row.epoll_ctl:.3f}",
                f"{row.total:.2f}",
                ", ".join(f"{name} {value:.2f}" for name, value in shown),
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|--:|--:|--:|--:|---|"]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header) - 1)]

    def line(cells: list[str]) -> str:
        aligned = [
            cells[0].ljust(widths[0]),
            *(cell.rjust(width) for cell, width in zip(cells[1:-1], widths[1:], strict=True)),
        ]
        return "  ".join([*aligned, cells[-1]])

    return "\n".join([line(header), line(["-" * width for width in widths] + ["-" * 21]), *map(line, body)])


def main(argv: Sequence[str] | None = None) -> int:
    """Count, print, and with --check fail unless the reactor makes no epoll_ctl per message."""
    parser = argparse.ArgumentParser(
        description="System calls per echoed message (strace), for weft's reactor and its peers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--servers", help="servers to trace, comma-separated (see echo.py --list)")
    parser.add_argument(
        "--connections", type=cli.parse_counts, default=[1, 50], help="connection counts, comma-separated"
    )
    parser.add_argument(
        "--sizes", type=cli.parse_sizes, default=[64, 16384], help="message sizes, comma-separated (64,16k)"
    )
    parser.add_argument(
        "--messages",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        default=(2000, 12000),
        help="the two total message counts whose difference is measured",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--fresh-malloc",
        action="store_true",
        help="do not settle glibc's mmap threshold in the servers (shows asyncio's mmap/munmap per read)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless weft-reactor makes 0 epoll_ctl calls per message on every row",
    )
    args = parser.parse_args(argv)
    if len(args.messages) != 2:
        parser.error("--messages takes two counts, such as 2000,12000")
    if shutil.which("strace") is None:
        raise SystemExit("syscalls.py needs strace (Debian/Ubuntu: apt-get install strace)")
    chosen = cli.choose_servers(args.servers, servers.server_kinds())
    if args.check and "weft-reactor" not in chosen:
        parser.error("--check needs weft-reactor among --servers")
    binary = native.build_for(chosen)

    rows, failed = [], False
    for kind in chosen:
        for size in args.sizes:
            for connections in args.connections:
                label = f"{kind} {cli.show_size(size)} x {connections}"
                print(f"tracing {label}...", file=sys.stderr, flush=True)
                try:
                    rows.append(
                        measure(
                            kind, connections, size, args.messages, binary, fresh_malloc=args.fresh_malloc
                        )
                    )
                except (loadgen.LoadgenError, servers.ServerFailedError) as exc:
                    print(f"{label}: FAILED: {exc}", file=sys.stderr)
                    failed = True
    print(
        f"Per-message figures: the difference between {args.messages[0]} and {args.messages[1]} messages "
        "in all, each under strace -f -c\n"
    )
    print(render(rows, args.markdown))
    if args.check:
        return check(rows, len(args.sizes) * len(args.connections))
    return 1 if failed else 0


def check(rows: list[Row], expected: int) -> int:
    """0 if weft-reactor made no epoll_ctl call per message on each of its ``expected`` rows."""
    reactor = [row for row in rows if row.kind == "weft-reactor"]
    changed = [row for row in reactor if row.epoll_ctl != 0]
    if changed or len(reactor) != expected:
        details = ", ".join(
            f"{row.epoll_ctl * row.messages:+.0f} calls over {row.messages} messages "
            f"({cli.show_size(row.size)} x {row.connections})"
            for row in changed
        )
        print(f"\ncheck FAILED: weft-reactor {details or 'rows are missing'}")
        return 1
    print("\ncheck ok: weft-reactor makes 0 epoll_ctl calls per message in steady state")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every server and client was already stopped on the way out
        sys.exit(130)
