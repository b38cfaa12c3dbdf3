"""A smoke run of benchmarks/asyncio_loops.py: every server starts, is measured, and is in the table.

The real run takes minutes (see docs/performance.md); these run the same
script with tiny windows, as a person would from the command line, and
check what it printed, never the figures themselves (speed is the
benchmark's business, not the test suite's).  The echo rows need a C
compiler for the load generator, the HTTP rows need wrk: where either is
missing here, the test says so in its skip reason.
"""

from __future__ import annotations

import os
import re
import shutil
import sys

import pytest

from tests.support import TIMEOUT
from tests.support.processes import ROOT, Children

SCRIPT = str(ROOT / "benchmarks" / "asyncio_loops.py")
#: Two cores this process may use: the server's and the client's.
CORES = sorted(os.sched_getaffinity(0))[:2]
#: An echo run as short as it gets: 64 B messages, two connections, 0.1 s, no warm-up.
TINY_ECHO = ("--sizes", "64", "--connections", "2", "--duration", "0.1", "--warmup", "0")
#: Every figure in the table is a number like 1,234 or 0.93 or 99%.
FIGURE = r"[\d,.]+%?"


def listed(children: Children) -> list[str]:
    """The servers the script can run here, as its --list says."""
    child = children.start(sys.executable, SCRIPT, "--list")
    child.close_stdin()
    assert child.wait(TIMEOUT) == 0, child.stderr
    return [line.split()[0] for line in child.stdout.decode().splitlines()]


def run_script(children: Children, *args: str) -> str:
    """Run the script with ``args`` and tiny windows; its stdout, after it exits 0."""
    child = children.start(
        sys.executable,
        SCRIPT,
        "--repeat",
        "1",
        "--retries",
        "0",
        "--server-cpu",
        str(CORES[0]),
        "--client-cpu",
        str(CORES[1]),
        *args,
    )
    child.close_stdin()
    # Each server is a fresh Python process; on a loaded two-core machine a
    # handful of them take a while to start, whatever the windows measured.
    status = child.wait(3 * TIMEOUT)
    assert status == 0, child.stderr
    return child.stdout.decode()


needs_two_cores = pytest.mark.skipif(
    len(CORES) < 2, reason="the benchmark pins server and client to two cores"
)


@needs_two_cores
@pytest.mark.skipif(
    shutil.which(os.environ.get("CC", "gcc")) is None, reason="the load generator needs a C compiler (gcc)"
)
def test_echo_rows_on_every_loop(children: Children) -> None:
    """The Protocol and streams echo servers on every loop available here (asyncio's,
    weft's, uvloop) each make a row with figures, asyncio's at 1.00 against itself;
    the command is printed, and the target line appears when weft's loop ran."""
    servers = [name for name in listed(children) if name.startswith(("protocol-", "streams-"))]
    loops = sorted({name.partition("-")[2] for name in servers})
    assert {"asyncio", "weft"} <= set(loops)
    out = run_script(
        children,
        "--servers",
        ",".join(servers),
        *TINY_ECHO,
    )
    assert "python benchmarks/asyncio_loops.py --repeat 1" in out
    for program in ("protocol", "streams"):
        for loop in loops:
            ratio = "1.00" if loop == "asyncio" else FIGURE
            figures = rf"{FIGURE}\s+{FIGURE}\s+{FIGURE}\s+{ratio}\s+{ratio}\s+{FIGURE}"
            row = rf"^{program}\s+64 B\s+{loop}( !)?\s+{figures}$"
            assert re.search(row, out, re.MULTILINE), f"no {program}/{loop} row in:\n{out}"
    floor = rf"^protocol\s+64 B\s+c-floor( !)?\s+{FIGURE}"
    assert re.search(floor, out, re.MULTILINE), f"no floor row in:\n{out}"
    assert not re.search(r"^streams\s.*c-floor", out, re.MULTILINE), out
    if "weft" in loops:
        assert re.search(
            r"^\s+protocol: weft / asyncio CPU <= 0\.90: 64 B: [\d.]+ (ok|MISSED) \(C floor [\d.]+\)$",
            out,
            re.MULTILINE,
        ), out


@needs_two_cores
@pytest.mark.skipif(
    shutil.which(os.environ.get("CC", "gcc")) is None, reason="the load generator needs a C compiler (gcc)"
)
def test_no_floor_leaves_the_c_server_out(children: Children) -> None:
    """--no-floor measures only the loops asked for: no C floor row, no floor in the target line."""
    out = run_script(
        children,
        "--servers",
        "protocol-asyncio,protocol-weft",
        *TINY_ECHO,
        "--no-floor",
    )
    assert re.search(r"^protocol\s+64 B\s+weft", out, re.MULTILINE), out
    assert "c-floor" not in out
    assert re.search(r"64 B: [\d.]+ (ok|MISSED)$", out, re.MULTILINE), out


@needs_two_cores
@pytest.mark.skipif(shutil.which("wrk") is None, reason="the HTTP rows need wrk (apt-get install wrk)")
def test_aiohttp_row_as_markdown(children: Children) -> None:
    """The aiohttp server passes the script's probe (two keep-alive 200s with the
    expected body) and makes a row under wrk; --markdown prints a Markdown table."""
    out = run_script(
        children,
        "--servers",
        "aiohttp-asyncio",
        "--http-duration",
        "1",
        "--http-warmup",
        "0",
        "--connections",
        "2",
        "--markdown",
    )
    assert "| program | size | loop | rate /s | CPU µs each |" in out
    assert re.search(
        rf"^\| aiohttp \| — \| asyncio( !)? \| {FIGURE} \| {FIGURE} \| {FIGURE} \| 1\.00 \| 1\.00 \|",
        out,
        re.MULTILINE,
    ), out


def test_a_server_that_cannot_run_is_named_with_its_reason(children: Children) -> None:
    """Asking for a server that does not exist gets one line saying what the names are."""
    child = children.start(sys.executable, SCRIPT, "--servers", "protocol-nosuchloop")
    child.close_stdin()
    assert child.wait(TIMEOUT) != 0
    assert "unknown server kind 'protocol-nosuchloop'" in child.stderr
    assert len(child.stderr.strip().splitlines()) == 1
