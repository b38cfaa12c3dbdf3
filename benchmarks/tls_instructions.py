"""The TLS servers of ``tls_bulk.py`` under callgrind: user-space instructions per MB and per handshake.

Wall-clock and CPU figures move with whatever else the machine runs;
instruction counts do not.  Each server (``tls_servers.py``) runs under
``valgrind --tool=callgrind`` with instrumentation off; the client (this
process, as in ``tls_bulk.py``: the same certificate, TLS 1.3 with
AES-256-GCM) connects, warms up with 1 MiB each way, and then, with the
server's instrumentation switched on by ``callgrind_control`` around exactly
that window, sends ``--size`` bytes (the server receives), has the server
send ``--size`` bytes, or makes ``--handshakes`` full handshakes on a fresh
connection each::

    python benchmarks/tls_instructions.py                      # weft-reactor and asyncio, about 3 minutes
    python benchmarks/tls_instructions.py --servers weft-reactor,asyncio,uvloop --size 16MiB

What it counts is user space only (the kernel's share, the same system
calls for every server, is not in it) and includes OpenSSL's work, which is
the same for all: the differences between servers are their own code.
Under callgrind a server runs some 50 times slower than the client, so its
socket always has a backlog and each read gets as much as it asks for.
Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cli
import servers
import tls_bulk
import tls_servers


def count(kind: str, setup: Callable[[int], Any], work: Callable[[Any], None], cert_dir: Path) -> int:
    """User-space instructions the server ``kind`` spends on ``work(setup(port))``
    (only ``work`` is counted)."""
    out = cert_dir / f"{kind}.callgrind"
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    arguments = ["--cert", str(cert_dir)]
    with servers.ServerProcess(
        kind, cpu=None, wrapper=wrapper, script=tls_bulk.TLS_SERVERS, arguments=arguments
    ) as server:
        state = setup(server.port)
        try:
            control = ["callgrind_control"]
            subprocess.run([*control, "--instr=on", str(server.pid)], check=True, capture_output=True)
            work(state)
            subprocess.run([*control, "--dump", str(server.pid)], check=True, capture_output=True)
            subprocess.run([*control, "--instr=off", str(server.pid)], check=True, capture_output=True)
        finally:
            if isinstance(state, ssl.SSLSocket):
                state.close()
        server.check_alive()
    dumps = sorted(cert_dir.glob(f"{kind}.callgrind.*"))
    if not dumps:
        raise servers.ServerFailedError(f"callgrind wrote no dump for {kind}")
    try:
        for line in dumps[-1].read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    finally:
        for dump in cert_dir.glob(f"{kind}.callgrind*"):
            dump.unlink()
    raise servers.ServerFailedError(f"no summary in {dumps[-1]}")


def main(argv: Sequence[str] | None = None) -> int:
    """Count every chosen server's instructions per workload and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--servers", default="weft-reactor,asyncio", help="comma-separated, as tls_bulk.py --list"
    )
    parser.add_argument("--size", type=tls_bulk.parse_bytes, default=32 << 20, help="bytes each way")
    parser.add_argument("--handshakes", type=int, default=200, help="full handshakes counted")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind not found: install it (Debian/Ubuntu: apt-get install valgrind)")
    chosen = cli.choose_servers(args.servers, tls_servers.server_kinds())
    cert_dir = Path(tempfile.mkdtemp(prefix="weft-tls-instructions-"))
    try:
        tls_bulk.make_certificates(cert_dir)
        context = tls_bulk.client_context(cert_dir)

        def connected(port: int) -> ssl.SSLSocket:
            """A connection, warmed up with 1 MiB each way (not counted)."""
            conn = tls_bulk.connect(port, context)
            tls_bulk.push(conn, 1 << 20)
            tls_bulk.pull(conn, 1 << 20)
            return conn

        def handshakes(port: int) -> None:
            for _ in range(args.handshakes):
                with tls_bulk.connect(port, context) as conn:
                    conn.sendall(b"PING\n")
                    tls_bulk.read_line(conn, b"PONG\n")

        mib = args.size / (1 << 20)
        workloads: list[tuple[str, Callable[[int], Any], Callable[[Any], None], float, str]] = [
            ("server receives", connected, lambda conn: tls_bulk.push(conn, args.size), mib, "MiB"),
            ("server sends", connected, lambda conn: tls_bulk.pull(conn, args.size), mib, "MiB"),
            ("handshakes", lambda port: port, handshakes, float(args.handshakes), "handshake"),
        ]
        rows = []
        for name, setup, work, units, unit in workloads:
            counts = {kind: count(kind, setup, work, cert_dir) for kind in chosen}
            base = counts.get(tls_bulk.BASELINE)
            for kind, total in counts.items():
                ratio = f"{total / base:.3f}" if base else "—"
                per = f"{total / units / 1e3:,.0f} k/{unit}"
                rows.append(f"| {name} | {kind} | {total / 1e6:,.1f} M | {per} | {ratio} |")
                print(f"{name}: {kind}: {total:,} instructions", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(cert_dir, ignore_errors=True)
    command = shlex.join(
        ["python", "benchmarks/tls_instructions.py", *(sys.argv[1:] if argv is None else argv)]
    )
    print(
        f"`{command}`: {args.size:,} bytes each way, {args.handshakes} handshakes; user-space instructions\n"
    )
    print("| workload | server | instructions | per unit | vs asyncio |")
    print("|---|---|--:|--:|--:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
