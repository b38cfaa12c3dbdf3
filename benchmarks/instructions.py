"""User-space instructions per echoed message, counted by callgrind (the machine's load does not change it).

Each server kind of ``servers.py`` runs under ``valgrind --tool=callgrind``;
the C load generator warms it up, the counters are zeroed
(``callgrind_control -z``), a fresh set of connections plays ping-pong
``--count`` messages each, and the counters are dumped (``-d``).  The
figure is every instruction the server executed in user space over that
window, divided by the messages echoed (the new connections' accepting and
closing included).  Kernel work (system calls, the TCP stack, io_uring's
own) is not in it: ``perf record`` shows that part::

    python benchmarks/instructions.py
    python benchmarks/instructions.py --servers weft-reactor,asyncio --sizes 64,16k --count 100
    python benchmarks/instructions.py --connections 1 --count 2000 --keep /tmp/cg   # keep the profiles

Needs valgrind (``apt-get install valgrind``).  It is slow: the server runs
some fifty times slower under callgrind.  One caveat when reading it:
valgrind counts each iteration of a ``rep movsb`` as an instruction, and
glibc copies large blocks that way, so a copy of 16 KiB shows as about
16,000 instructions though the CPU moves it in a fraction of a
microsecond.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cli
import loadgen
import native
import servers

WARMUP_COUNT = 50
SCRIPT = Path(__file__).resolve().parent / "servers.py"


def total_instructions(dump: Path) -> int:
    """The instruction total of a callgrind dump."""
    total = 0
    with open(dump) as lines:
        for line in lines:
            if line.startswith(("totals:", "summary:")):
                total = max(total, int(line.split()[1]))
    return total


def measure(kind: str, size: int, connections: int, count: int, directory: Path) -> tuple[float, int]:
    """Instructions per message of ``kind`` at ``size`` bytes; and the messages."""
    command = [str(native.build("c_echo"))] if kind == "c-epoll" else [sys.executable, str(SCRIPT), kind]
    out = directory / f"callgrind.{kind}.{size}.{connections}"
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().split()
        if not line or line[0] != "READY":
            raise SystemExit(f"the {kind} server did not start under valgrind")
        port = int(line[1])
        binary = native.build("loadgen")
        loadgen.run(binary, port, connections=connections, size=size, count=WARMUP_COUNT, timeout=900)
        control = ["callgrind_control"]
        subprocess.run([*control, "-z", str(server.pid)], check=True, capture_output=True, timeout=300)
        result = loadgen.run(binary, port, connections=connections, size=size, count=count, timeout=1800)
        subprocess.run([*control, "-d", str(server.pid)], check=True, capture_output=True, timeout=300)
    finally:
        # SIGKILL: a server waiting in io_uring_enter under valgrind does not
        # take SIGTERM until the call returns, which an idle one never does.
        server.kill()
        server.wait()
    dumps = sorted(directory.glob(f"{out.name}.*"), key=lambda path: int(path.suffix[1:]))
    if not dumps:
        raise SystemExit(f"callgrind wrote no dump for {kind}")
    return total_instructions(dumps[-1]) / result.messages, result.messages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="weft-reactor,weft-completion", help="comma-separated kinds")
    parser.add_argument("--sizes", type=cli.parse_sizes, default=[64, 1024, 16384], help="message sizes")
    parser.add_argument("--connections", type=int, default=50, help="connections playing ping-pong")
    parser.add_argument("--count", type=int, default=100, help="messages per connection, measured")
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps in this directory")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    kinds = cli.choose_servers(args.servers, servers.server_kinds())
    directory = args.keep or Path(tempfile.mkdtemp(prefix="weft-callgrind-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        print(f"| size | conns | server | instructions/msg | vs {kinds[0]} |")
        print("|---|--:|---|--:|--:|")
        for size in args.sizes:
            first = None
            for kind in kinds:
                per, _messages = measure(kind, size, args.connections, args.count, directory)
                first = first or per
                shown = cli.show_size(size)
                ratio = per / first
                print(f"| {shown} | {args.connections} | {kind} | {per:,.0f} | {ratio:.2f} |", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
