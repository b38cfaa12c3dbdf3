"""A smoke run of benchmarks/echo.py with its C floor servers: the epoll one
(``c_echo.c``) and the io_uring one in both its forms (``c_uring_echo.c``).

docs/performance.md compares weft's drivers with these floors; this builds
them as the script does, runs each briefly on loopback and checks that each
echoed (the load generator exits with an error when a reply is short or
wrong), never the figures.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support import TIMEOUT
from tests.support.processes import ROOT
from weft.drivers import DRIVERS

SCRIPT = str(ROOT / "benchmarks" / "echo.py")


def test_the_c_floor_servers_echo() -> None:
    """64 B and 16 KiB messages on 3 connections through each floor server:
    the script exits 0 with a Markdown row per server and size."""
    kinds = ["c-epoll"] + (["c-uring", "c-uring-multishot"] if DRIVERS["completion"].available() else [])
    done = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--servers",
            ",".join(kinds),
            "--sizes",
            "64,16k",
            "--connections",
            "3",
            "--duration",
            "0.2",
            "--warmup",
            "0.05",
            "--repeat",
            "1",
            "--markdown",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| ") and "| 3 |" in line]
    assert sorted((row[1].strip(), row[3].strip()) for row in rows) == sorted(
        (size, kind) for size in ("64 B", "16 KiB") for kind in kinds
    )
