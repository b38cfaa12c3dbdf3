"""A smoke run of benchmarks/tls_bulk.py: every TLS server moves bytes both ways, handshakes, and has rows.

The real run pushes a gibibyte each way (see docs/performance.md); this runs
the same script on a megabyte, as a person would from the command line,
and checks what it printed, never the figures (speed is the benchmark's
business, not the test suite's).  The script itself fails a run whose byte
counts or cipher are wrong.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

from tests.support import TIMEOUT
from tests.support.processes import ROOT, Children

SCRIPT = str(ROOT / "benchmarks" / "tls_bulk.py")
#: Two cores this process may use: the server's and the client's.
CORES = sorted(os.sched_getaffinity(0))[:2]
#: A figure in the table: 1,234 or 0.93 or 99%, or a rate with its unit.
FIGURE = r"[\d,.]+%?"


def listed(children: Children) -> list[str]:
    """The servers the script can run here, as its --list says."""
    child = children.start(sys.executable, SCRIPT, "--list")
    child.close_stdin()
    assert child.wait(TIMEOUT) == 0, child.stderr
    return [line.split()[0] for line in child.stdout.decode().splitlines()]


@pytest.mark.skipif(len(CORES) < 2, reason="the benchmark pins server and client to two cores")
def test_every_tls_server_makes_a_row_for_each_workload(children: Children) -> None:
    """weft's TLS on the reactor, asyncio's, uvloop's (when here) and asyncio's on weft's
    loop each make a row for bulk receiving, bulk sending and handshakes, asyncio's at
    1.00 against itself; the command and the target lines are printed."""
    servers = listed(children)
    assert {"weft-reactor", "asyncio", "weft-loop"} <= set(servers)
    default = [name for name in servers if name in ("weft-reactor", "asyncio", "uvloop", "weft-loop")]
    child = children.start(
        sys.executable,
        SCRIPT,
        "--size",
        "1MiB",
        "--warmup",
        "64KiB",
        "--handshake-duration",
        "0.2",
        "--concurrency",
        "2",
        "--repeat",
        "1",
        "--retries",
        "0",
        "--server-cpu",
        str(CORES[0]),
        "--client-cpu",
        str(CORES[1]),
        "--markdown",
    )
    child.close_stdin()
    # A fresh Python process per server; slow to start on a loaded machine.
    assert child.wait(3 * TIMEOUT) == 0, child.stderr
    out = child.stdout.decode()
    assert "`python benchmarks/tls_bulk.py --size 1MiB" in out
    assert "TLS_AES_256_GCM_SHA384" in out
    for workload, unit in (("server receives", "MB"), ("server sends", "MB"), ("handshakes", "handshake")):
        for server in default:
            ratio = "1.00" if server == "asyncio" else FIGURE
            row = (
                rf"^\| {workload} \| {server}( !)? \| {FIGURE} {unit} \| {FIGURE} \| {ratio} \| "
                rf"{FIGURE} \| {FIGURE} \| {ratio} \| {FIGURE} \| {FIGURE} \|$"
            )
            assert re.search(row, out, re.MULTILINE), f"no {workload}/{server} row in:\n{out}"
        assert re.search(
            rf"^\* {workload}: weft-reactor / asyncio: rate [\d.]+ >= [\d.]+ (ok|MISSED)", out, re.MULTILINE
        )


def test_an_unknown_server_is_named_with_the_known_ones(children: Children) -> None:
    """Asking for a server that does not exist gets one line naming those that do."""
    child = children.start(sys.executable, SCRIPT, "--servers", "nosuchserver")
    child.close_stdin()
    assert child.wait(TIMEOUT) != 0
    assert "unknown or unavailable server(s): nosuchserver; available: weft-reactor" in child.stderr
