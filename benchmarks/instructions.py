"""User-space instructions per echoed message, counted by callgrind.

CPU time per message (``echo.py``) moves with whatever else the machine is
doing; an instruction count does not.  This runs each echo server of
``servers.py`` under ``valgrind --tool=callgrind``, warms it up with one
load of the C load generator, zeroes the counters, plays a second load
(``--count`` messages on each of ``--connections`` connections, new ones),
dumps the counters, and prints the server's instructions per message, with
its ratio to the first server listed::

    python benchmarks/instructions.py --servers weft-reactor,uvloop,asyncio --sizes 64,1k,16k

The servers are ``servers.py``'s kinds, and ``loop_servers.py``'s echo
programs on each asyncio loop (``protocol-weft``, ``streams-asyncio``...)::

    python benchmarks/instructions.py --servers protocol-asyncio,protocol-weft,streams-asyncio,streams-weft

Only user space is counted (the kernel's share, four fifths of a small
message's cost, is the same for every server: see docs/performance.md), and
the count includes accepting and closing the measured connections, spread
over their messages: use a ``--count`` of several hundred.  A server under
callgrind runs about fifty times slower, so the number of messages handled
per turn of its loop differs from a free run's.  Needs valgrind
(``apt-get install valgrind``).  weft's servers run on its C accelerator
where it is built (``weft drivers`` says whether it is); with
``WEFT_PURE_PYTHON=1`` in the environment they run on the pure-Python path.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cli
import loadgen
import loop_servers
import native

HERE = Path(__file__).resolve().parent
#: Messages per connection in the unmeasured warm-up load.
WARMUP_COUNT = 50
#: Seconds a load may take under callgrind.
LOAD_TIMEOUT = 900.0


def total_instructions(dump: Path) -> int:
    """The instruction total a callgrind dump file records."""
    total = 0
    with open(dump) as file:
        for line in file:
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total


def script_for(kind: str) -> str:
    """The script that runs the server called ``kind``: an asyncio program on a
    named loop (``protocol-weft``) is ``loop_servers.py``'s, the rest ``servers.py``'s."""
    program, _, loop = kind.partition("-")
    if program in loop_servers.PROGRAMS and loop_servers.PROGRAMS[program][1] and loop in loop_servers.LOOPS:
        return "loop_servers.py"
    return "servers.py"


def measure(kind: str, size: int, connections: int, count: int, binary: Path, workdir: Path) -> float:
    """Instructions per message of ``kind`` echoing ``size``-byte messages."""
    out = workdir / f"{kind}.{size}.out"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    server = subprocess.Popen(
        [*valgrind, sys.executable, str(HERE / script_for(kind)), kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise SystemExit(f"{kind} did not start under valgrind")
        port = int(ready[1])
        loadgen.run(
            binary, port, connections=connections, size=size, count=WARMUP_COUNT, timeout=LOAD_TIMEOUT
        )
        subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, capture_output=True)
        result = loadgen.run(
            binary, port, connections=connections, size=size, count=count, timeout=LOAD_TIMEOUT
        )
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, capture_output=True)
    finally:
        # SIGKILL: under valgrind a server waiting in io_uring_enter (the
        # completion driver, idle) does not take SIGTERM until the call
        # returns, which it never does.
        server.kill()
        server.wait()
    dumps = sorted(glob.glob(f"{out}.*"))
    if not dumps:
        raise SystemExit(f"callgrind wrote no dump for {kind}")
    return total_instructions(Path(dumps[-1])) / result.messages


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="User-space instructions per echoed message (callgrind), server by server.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--servers", default="weft-reactor,uvloop,asyncio", help="servers.py kinds, comma-separated"
    )
    parser.add_argument("--sizes", type=cli.parse_sizes, default=[64, 1024, 16384], help="message sizes")
    parser.add_argument("--connections", type=int, default=50, help="connections")
    parser.add_argument("--count", type=int, default=500, help="measured messages per connection")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table for docs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("valgrind") is None:
        print("needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    kinds = args.servers.split(",")
    binary = native.build("loadgen")
    rows: list[tuple[int, str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="weft-callgrind-") as workdir:
        for size in args.sizes:
            first = None
            for kind in kinds:
                per_message = measure(kind, size, args.connections, args.count, binary, Path(workdir))
                first = first or per_message
                rows.append((size, kind, per_message, per_message / first))
                if not args.markdown:
                    print(
                        f"{size:>6} B x {args.connections}  {kind:<16} {per_message:>8,.0f} instructions/msg"
                        f"  {per_message / first:.2f}",
                        flush=True,
                    )
    if args.markdown:
        print(f"| size | server | instructions/msg | vs {kinds[0]} |")
        print("|---|---|--:|--:|")
        for size, kind, per_message, ratio in rows:
            print(f"| {size} B | {kind} | {per_message:,.0f} | {ratio:.2f} |")
    print(
        f"({args.count} messages on each of {args.connections} connections; python {sys.executable};"
        f" {os.uname().sysname} {os.uname().release})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
