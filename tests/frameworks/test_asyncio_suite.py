"""The fast part of CPython's asyncio tests, run against weft's loop in CI.

The whole run (every applicable module, on weft's loop, asyncio's and
uvloop's) is ``python -m tests.frameworks.asyncio_suite --loop all``; its
table is in docs/asyncio.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.frameworks._suite_runner import WEFT, assert_passes_on_weft
from tests.frameworks.asyncio_suite import SUITE
from tests.support import TIMEOUT

#: The modules that exercise the loop's I/O (transports, servers, sockets,
#: sendfile, TLS), a few seconds each.
FAST_MODULES = (
    "test_buffered_proto",
    "test_events",
    "test_sendfile",
    "test_server",
    "test_sock_lowlevel",
    "test_ssl",
    "test_sslproto",
    "test_streams",
)


@pytest.mark.parametrize("module", FAST_MODULES)
def test_cpython_asyncio_module_passes_on_weft_loop(module: str) -> None:
    """Every test of the module passes on weft's loop, or fails only for a
    reason listed in EXPLAINED."""
    assert_passes_on_weft(SUITE, module, timeout=300)


def test_a_module_run_with_sigint_ignored_still_gets_keyboard_interrupts() -> None:
    """A suite started in the background by a shell inherits SIGINT ignored;
    the child that runs a module restores Python's default, so asyncio's
    test_runners (whose tests interrupt themselves with
    _thread.interrupt_main(), a no-op while SIGINT is ignored) passes rather
    than hanging until the module's timeout."""
    child = [sys.executable, "-m", SUITE.runner, "--child", "test_runners", f"--{SUITE.option}", WEFT]
    # The child is exec'd with SIGINT ignored, as a shell's background job is.
    starter = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        f"os.execv(sys.executable, {child!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", starter],
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["failed"], result["passed"] > 0) == ([], True)
