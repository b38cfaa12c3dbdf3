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

import sys
import time
import unittest
from typing import Any

from tests.frameworks import _suite_runner
from tests.frameworks._suite_runner import ModuleResult

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
        target=loop,
        passed=result.passed + len(result.expectedFailures),
        failed=failed,
        skipped=len(result.skipped),
        seconds=time.monotonic() - started,
    )


SUITE = _suite_runner.Suite(
    runner="tests.frameworks.asyncio_suite",
    option="loop",
    targets=LOOPS,
    modules=MODULES,
    explained=EXPLAINED,
    module_timeout=MODULE_TIMEOUT,
    run_here=run_module_here,
    description=__doc__ or "",
    module_width=22,
)


def run_module(
    module: str, loop: str, *, verbose: bool = False, timeout: float = MODULE_TIMEOUT
) -> ModuleResult:
    """Run one module on ``loop`` in a child process; its result."""
    return _suite_runner.run_module(SUITE, module, loop, verbose=verbose, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    """Run the modules; exit 1 if a failure on weft's loop is not explained."""
    return _suite_runner.main(SUITE, argv)


if __name__ == "__main__":
    sys.exit(main())
