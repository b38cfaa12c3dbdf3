"""A smoke run of benchmarks/bulk.py: a few MiB through the reactor's and the
completion driver's echo servers, every byte checked, a row for each.

The real run (1 GiB) is in docs/performance.md; this runs the script small,
as a person would, and checks what it printed, never the figures (the script
itself exits with an error when a byte comes back changed or missing).
"""

from __future__ import annotations

import subprocess
import sys

from tests.support import TIMEOUT
from tests.support.processes import ROOT
from weft.drivers import DRIVERS

SCRIPT = str(ROOT / "benchmarks" / "bulk.py")


def test_bulk_transfer_comes_back_whole_on_each_server() -> None:
    """4 MiB each way through each server: the script exits 0 and prints a
    Markdown row per server with its size."""
    kinds = ["weft-reactor"] + (["weft-completion"] if DRIVERS["completion"].available() else [])
    done = subprocess.run(
        [sys.executable, SCRIPT, "--servers", ",".join(kinds), "--total", "4m", "--markdown"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| weft-")]
    assert [row.split("|")[1].strip().removesuffix(" !") for row in rows] == kinds
    assert all("| 4 MiB |" in row for row in rows), rows
