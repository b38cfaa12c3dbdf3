"""Twisted's own reactor tests (``twisted.internet.test``), run against a reactor.

::

    python -m tests.frameworks.twisted_suite                    # weft's reactor, every module
    python -m tests.frameworks.twisted_suite --reactor epoll    # Twisted's epoll reactor, for comparison
    python -m tests.frameworks.twisted_suite --reactor asyncio --modules test_tcp
    python -m tests.frameworks.twisted_suite --reactor all --markdown   # the table in docs/twisted.md

Twisted writes its reactor tests once, as ``ReactorBuilder`` classes, and
makes one test class per reactor named in ``ReactorBuilder._reactors`` when
each module is imported.  Each module runs here in a child process that
first installs the reactor under test as the global reactor (as ``trial
--reactor=...`` does, for the tests that use the global one) and then makes
it the only entry of ``_reactors``, so every builder class runs on it, with
a fresh reactor per test.  Tests run under trial's own runner, in a
temporary working directory.

The modules are every one of the package but the unit tests of other
reactors: those with ``ReactorBuilder`` tests, the contract every reactor
keeps (TCP, UDP, UNIX sockets, TLS, processes, stdio, threads, time,
file-descriptor sets, core), and those that run on the global reactor
(endpoints, name resolution, Deferreds and inotify driven by it).  The TLS
tests need ``pyOpenSSL`` and ``service_identity`` (``twisted[tls]``) and
skip without them; ``test_process`` needs ``pyhamcrest``.  A test that fails on weft's reactor for
a reason that is not a fault of the reactor is listed in :data:`EXPLAINED`
with the reason; anything else that fails is a bug.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from typing import Any

from tests.frameworks import _suite_runner
from tests.frameworks._suite_runner import ModuleResult

#: The modules of twisted.internet.test whose tests are ReactorBuilder
#: classes: the contract every reactor keeps, run on the reactor under test.
BUILDER_MODULES = (
    "test_core",
    "test_fdset",
    "test_newtls",
    "test_process",
    "test_socket",
    "test_stdio",
    "test_tcp",
    "test_threads",
    "test_time",
    "test_tls",
    "test_udp",
    "test_unix",
)

#: The other modules, which run on the global reactor (endpoints, Deferreds
#: driven by it, name resolution, inotify, the base classes' own checks).
GLOBAL_REACTOR_MODULES = (
    "test_abstract",
    "test_address",
    "test_base",
    "test_baseprocess",
    "test_default",
    "test_defer_await",
    "test_defer_yieldfrom",
    "test_endpoints",
    "test_error",
    "test_fakes",
    "test_filedescriptor",
    "test_inlinecb",
    "test_inotify",
    "test_main",
    "test_posixbase",
    "test_posixprocess",
    "test_protocol",
    "test_reactormixins",
    "test_resolver",
    "test_serialport",
    "test_sigchld",
    "test_testing",
    "test_udp_internals",
)

#: Every module run; the package's remaining modules are the unit tests of
#: other reactors (epoll's, asyncio's, GI's, kqueue's, CoreFoundation's,
#: IOCP's and the Windows ones), which import those reactors by name.
MODULES = tuple(sorted(BUILDER_MODULES + GLOBAL_REACTOR_MODULES))

#: The reactors that can be put under test: how to install each globally,
#: and the factory ReactorBuilder makes each test's reactor with.
REACTORS: dict[str, tuple[str, str]] = {
    "weft": ("weft.drivers.twisted_reactor", "tests.frameworks.twisted_suite.WeftReactor"),
    "epoll": ("twisted.internet.epollreactor", "twisted.internet.epollreactor.EPollReactor"),
    "asyncio": (
        "twisted.internet.asyncioreactor",
        "twisted.internet.test.reactormixins.AsyncioSelectorReactor",
    ),
}

#: Tests that fail on weft's reactor, and why that is not a fault of the
#: reactor (test id, as trial prints it, to the reason).
EXPLAINED: dict[str, str] = {
    f"twisted.internet.test.test_process.{kind}TestsBuilder_WeftReactorTests.test_changeUID": (
        "spawns the test's Python as uid 1, which fails wherever uid 1 cannot reach that "
        "interpreter (here it lives under /root): the child exits 1 before running a line. It "
        "fails alike on Twisted's epoll and asyncio reactors; as a user who can read the "
        "interpreter, it passes"
    )
    for kind in ("Process", "PTYProcess")
}

#: Tests that skip themselves on Twisted's reactors over epoll, by the
#: reactor's class name, for a reason that holds on weft's reactor as well
#: (it is over epoll too); they are skipped on it with the same reason
#: rather than left to fail.
SKIPPED_AS_ON_EPOLL: dict[str, str] = {
    "test_lostFileDescriptor": (
        "closing a file descriptor removes it from the epoll set without an event, so a "
        "reactor over epoll cannot notice a descriptor replaced under a FileDescriptor "
        "(the test skips itself for EPollReactor and AsyncioSelectorReactor by name; "
        "run on weft's reactor it waits for its 120 s timeout)"
    ),
}

#: Seconds one module may take before it counts as hung.
MODULE_TIMEOUT = 900.0


def WeftReactor(case: Any) -> Any:
    """A Twisted reactor on a new weft reactor, closed when the test ends
    (ReactorBuilder calls a factory function with the test case)."""
    from weft.drivers.reactor import Reactor
    from weft.drivers.twisted_reactor import WeftReactor as TwistedOnWeft

    loop = Reactor()
    # Cleanups run last first: this runs after ReactorBuilder's own, which
    # removes the test's descriptors from the reactor.
    case.addCleanup(loop.close)
    return TwistedOnWeft(loop)


def run_module_here(module: str, reactor: str, verbose: bool) -> ModuleResult:
    """Run one module in this process (the child's side)."""
    import importlib

    installer, factory = REACTORS[reactor]
    importlib.import_module(installer).install()

    from twisted.internet.test.reactormixins import ReactorBuilder
    from twisted.trial import reporter, runner

    ReactorBuilder._reactors = [factory]
    started = time.monotonic()
    loader: Any = runner.TestLoader()
    suite = loader.loadByName(f"twisted.internet.test.{module}", recurse=True)
    if reactor == "weft":
        for test in _tests_of(suite):
            reason = SKIPPED_AS_ON_EPOLL.get(getattr(test, "_testMethodName", ""))
            if reason is not None:
                # trial looks for ``skip`` on the method, then the test case.
                test.skip = reason
    workdir = tempfile.mkdtemp(prefix="weft-twisted-suite-")
    try:
        reporter_class: Any = reporter.VerboseTextReporter if verbose else reporter.Reporter
        trial = runner.TrialRunner(
            reporter_class,
            stream=sys.stderr,
            workingDirectory=os.path.join(workdir, "_trial_temp"),
        )
        result: Any = trial.run(suite)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = [_test_id(test) for test, _ in (*result.failures, *result.errors)]
    failed += [_test_id(test) for test, *_ in result.unexpectedSuccesses]
    # A test can both fail and leave an error behind (a dirty reactor): count it once.
    failed = list(dict.fromkeys(failed))
    return ModuleResult(
        module=module,
        target=reactor,
        passed=result.successes + len(result.expectedFailures),
        failed=failed,
        skipped=len(result.skips),
        seconds=time.monotonic() - started,
    )


def _tests_of(suite: Any) -> Any:
    """Every test case in a (nested) suite."""
    if hasattr(suite, "_tests"):
        for child in suite._tests:
            yield from _tests_of(child)
    else:
        yield suite


def _test_id(test: Any) -> str:
    return str(test.id()) if hasattr(test, "id") else str(test)


SUITE = _suite_runner.Suite(
    runner="tests.frameworks.twisted_suite",
    option="reactor",
    targets=tuple(REACTORS),
    modules=MODULES,
    explained=EXPLAINED,
    module_timeout=MODULE_TIMEOUT,
    run_here=run_module_here,
    description=__doc__ or "",
    module_width=14,
)


def run_module(
    module: str, reactor: str, *, verbose: bool = False, timeout: float = MODULE_TIMEOUT
) -> ModuleResult:
    """Run one module on ``reactor`` in a child process; its result."""
    return _suite_runner.run_module(SUITE, module, reactor, verbose=verbose, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    """Run the modules; exit 1 if a failure on weft's reactor is not explained."""
    return _suite_runner.main(SUITE, argv)


if __name__ == "__main__":
    sys.exit(main())
