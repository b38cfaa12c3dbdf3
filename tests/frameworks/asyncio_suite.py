"""CPython's own asyncio tests (``test.test_asyncio``), run against an event loop.

::

    python -m tests.frameworks.asyncio_suite                 # weft's loop, every module
    python -m tests.frameworks.asyncio_suite --loop asyncio  # asyncio's own, for comparison
    python -m tests.frameworks.asyncio_suite --loop uvloop --modules test_streams
    python -m tests.frameworks.asyncio_suite --loop all --markdown   # the table in docs/asyncio.md

Each module runs in a child process with the loop under test swapped in
everywhere asyncio's tests make one: the default policy's loop factory (so
``asyncio.new_event_loop()``, ``asyncio.run``) and ``asyncio.SelectorEventLoop``,
which the per-selector test classes construct directly.  On weft's loop
those classes (epoll, poll, select) all run the one loop, whatever selector
they pass.

The modules that unit-test CPython's own classes with mocks
(``test_base_events``, ``test_selector_events``, ``test_proactor_events``,
``test_unix_events``, the Windows ones) are left out: they check asyncio's
implementation, not the loop's contract.  A test that fails on weft's loop
for a reason that is not a fault of the loop is listed in
:data:`EXPLAINED` with the reason; anything else that fails is a bug.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import unittest
from dataclasses import dataclass, field
from typing import Any

#: The modules of test.test_asyncio that test the loop's contract.
MODULES = (
    "test_buffered_proto",
    "test_context",
    "test_events",
    "test_futures",
    "test_futures2",
    "test_locks",
    "test_pep492",
    "test_protocols",
    "test_queues",
    "test_runners",
    "test_sendfile",
    "test_server",
    "test_sock_lowlevel",
    "test_ssl",
    "test_sslproto",
    "test_streams",
    "test_subprocess",
    "test_taskgroups",
    "test_tasks",
    "test_threads",
    "test_timeouts",
    "test_transports",
    "test_waitfor",
)

#: The loops that can be put under test.
LOOPS = ("weft", "asyncio", "uvloop")

#: Tests that fail on weft's loop, and why that is not a fault of the loop
#: (test id, as unittest prints it, to the reason).
EXPLAINED: dict[str, str] = {
    f"test.test_asyncio.test_events.{selector}EventLoopTests.{test}": (
        "asserts that a datagram transport is an asyncio.Transport (a stream transport, with "
        "write() and write_eof()), which asyncio's own is only through the base class its "
        "selector transports share; weft's is an asyncio.DatagramTransport"
    )
    for selector in ("EPoll", "Poll", "Select")
    for test in (
        "test_create_datagram_endpoint",
        "test_create_datagram_endpoint_ipv6",
        "test_create_datagram_endpoint_sock",
    )
} | {
    f"test.test_asyncio.test_events.{selector}EventLoopTests.test_unclosed_pipe_transport": (
        "closes the loop with two pipe transports open and asserts that they still say 'open'; "
        "weft's loop ends the connections still open when it closes (their protocols hear "
        "connection_lost, their descriptors are closed: docs/asyncio.md), so they say 'lost'"
    )
    for selector in ("EPoll", "Poll", "Select")
}

#: Seconds one module may take before it counts as hung.
MODULE_TIMEOUT = 600.0


@dataclass
class ModuleResult:
    """The outcome of one module on one loop."""

    module: str
    loop: str
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0
    crashed: str = ""

    @property
    def unexplained(self) -> list[str]:
        """Failures that are not in :data:`EXPLAINED`."""
        return [test for test in self.failed if test not in EXPLAINED]


def install_loop(name: str) -> None:
    """Make ``name``'s loop the one asyncio's tests get."""
    import asyncio
    import asyncio.unix_events

    if name == "asyncio":
        return
    if name == "weft":
        from weft.drivers.reactor import EventLoop

        class TestedLoop(EventLoop):
            """weft's loop, taking (and ignoring) the selector the tests pass."""

            def __init__(self, selector: object = None) -> None:
                super().__init__()

        factory: Any = TestedLoop
    elif name == "uvloop":
        import uvloop

        class _NoExecutor:
            """What the tests' close_loop shuts down when the loop is closed already."""

            def shutdown(self, wait: bool = True) -> None:
                """Nothing to do: uvloop shuts its executor down when it closes."""

        class TestedUvloop(uvloop.Loop):
            """uvloop's loop, taking (and ignoring) the selector the tests pass.

            The tests' ``close_loop`` reads ``loop._default_executor``, which
            uvloop does not expose; it shuts the executor down through
            ``shutdown_default_executor()`` whatever this says.
            """

            _default_executor = _NoExecutor()

            def __init__(self, selector: object = None) -> None:
                super().__init__()

        factory = TestedUvloop
    else:
        raise SystemExit(f"unknown loop {name!r}: one of {', '.join(LOOPS)}")
    asyncio.unix_events._UnixDefaultEventLoopPolicy._loop_factory = factory  # type: ignore[attr-defined]
    asyncio.SelectorEventLoop = factory
    asyncio.unix_events.SelectorEventLoop = factory


class _Recorder(unittest.TextTestResult):
    """Counts, and the ids of what failed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.passed = 0

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self.passed += 1


def run_module_here(module: str, loop: str, verbose: bool) -> ModuleResult:
    """Run one module in this process (the child's side)."""
    install_loop(loop)
    started = time.monotonic()
    suite = unittest.defaultTestLoader.loadTestsFromName(f"test.test_asyncio.{module}")
    runner = unittest.TextTestRunner(
        stream=sys.stderr, verbosity=2 if verbose else 0, resultclass=_Recorder
    )
    result = runner.run(suite)
    if not isinstance(result, _Recorder):
        raise TypeError("unittest used another result class")
    failed = [test.id() for test, _ in (*result.failures, *result.errors)]
    failed += [test.id() for test in result.unexpectedSuccesses]
    return ModuleResult(
        module=module,
        loop=loop,
        passed=result.passed + len(result.expectedFailures),
        failed=failed,
        skipped=len(result.skipped),
        seconds=time.monotonic() - started,
    )


def run_module(
    module: str, loop: str, *, verbose: bool = False, timeout: float = MODULE_TIMEOUT
) -> ModuleResult:
    """Run one module on ``loop`` in a child process; its result."""
    started = time.monotonic()
    command = [sys.executable, "-m", "tests.frameworks.asyncio_suite", "--child", module, "--loop", loop]
    if verbose:
        command.append("--verbose")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        done = subprocess.run(
            command,
            cwd=root,
            stdin=subprocess.DEVNULL,
            capture_output=not verbose,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ModuleResult(module, loop, crashed=f"timed out after {timeout:.0f} s", seconds=timeout)
    lines = (done.stdout or "").strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        tail = (done.stderr or "").strip().splitlines()[-5:]
        crash = f"exit {done.returncode}: {' | '.join(tail)}"
        return ModuleResult(module, loop, crashed=crash, seconds=time.monotonic() - started)
    fields = json.loads(lines[-1])
    return ModuleResult(**fields)


def _markdown(results: dict[str, dict[str, ModuleResult]], loops: list[str]) -> str:
    header = "| module | " + " | ".join(f"{loop} pass / fail / skip" for loop in loops) + " |"
    rows = [header, "|---|" + "---:|" * len(loops)]
    totals = {loop: [0, 0, 0] for loop in loops}
    for module, by_loop in results.items():
        cells = []
        for loop in loops:
            result = by_loop[loop]
            if result.crashed:
                cells.append(f"crashed ({result.crashed})")
                continue
            cells.append(f"{result.passed} / {len(result.failed)} / {result.skipped}")
            totals[loop][0] += result.passed
            totals[loop][1] += len(result.failed)
            totals[loop][2] += result.skipped
        rows.append(f"| {module} | " + " | ".join(cells) + " |")
    rows.append("| **total** | " + " | ".join(f"**{p} / {f} / {s}**" for p, f, s in totals.values()) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run the modules; exit 1 if a failure on weft's loop is not explained."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loop", default="weft", help=f"one of {', '.join(LOOPS)}, or all")
    parser.add_argument("--modules", default=",".join(MODULES), help="comma-separated module names")
    parser.add_argument("--markdown", action="store_true", help="print a table for the docs")
    parser.add_argument("--verbose", action="store_true", help="show every test")
    parser.add_argument(
        "--timeout", type=float, default=MODULE_TIMEOUT, help="seconds before a module counts as hung"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = run_module_here(args.child, args.loop, args.verbose)
        print(json.dumps(result.__dict__))
        return 0
    loops = list(LOOPS) if args.loop == "all" else [args.loop]
    modules = [name.strip() for name in args.modules.split(",") if name.strip()]
    results: dict[str, dict[str, ModuleResult]] = {}
    bad = 0
    for module in modules:
        for loop in loops:
            result = run_module(module, loop, verbose=args.verbose, timeout=args.timeout)
            results.setdefault(module, {})[loop] = result
            counts = f"{result.passed} passed, {len(result.failed)} failed, {result.skipped} skipped"
            status = result.crashed or counts
            print(f"{module:22} {loop:8} {status}  ({result.seconds:.1f} s)", flush=True)
            for test in result.failed:
                note = EXPLAINED.get(test)
                print(f"    {'explained' if note else 'FAILED'}: {test}" + (f"  ({note})" if note else ""))
            if loop == "weft" and (result.crashed or result.unexplained):
                bad += 1
    if args.markdown:
        print()
        print(_markdown(results, loops))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
