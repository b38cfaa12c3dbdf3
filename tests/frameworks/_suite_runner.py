"""What the framework-suite runners share: a child process per module, its result, the table, the CLI.

:mod:`tests.frameworks.asyncio_suite` runs CPython's asyncio tests against
an event loop, :mod:`tests.frameworks.twisted_suite` Twisted's reactor tests
against a reactor.  Each says what differs (its :class:`Suite`: the modules,
what can be put under test, the failures it explains, and how a module runs
inside the child); the rest is here: one child process per module and
target, with a timeout, its :class:`ModuleResult` read back as JSON from its
last line, the markdown table for the docs, and :func:`main`'s command line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

#: The target whose unexplained failures make a run fail: weft's own.
WEFT = "weft"


@dataclass
class ModuleResult:
    """The outcome of one module on one target (a loop, a reactor)."""

    module: str
    target: str
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0
    crashed: str = ""


@dataclass(frozen=True)
class Suite:
    """One framework's test suite, as its runner module describes it."""

    #: The runner module, run with ``python -m`` in each child.
    runner: str
    #: The command-line option naming the target (``loop``, ``reactor``).
    option: str
    #: The targets that can be put under test; ``all`` runs each.
    targets: Sequence[str]
    #: The modules run by default.
    modules: Sequence[str]
    #: Failures on weft's target that are not its fault: test id to reason.
    explained: Mapping[str, str]
    #: Seconds one module may take before it counts as hung.
    module_timeout: float
    #: Runs one module on one target in this process (the child's side).
    run_here: Callable[[str, str, bool], ModuleResult]
    #: The help text of the command line (the runner's docstring).
    description: str
    #: The width of the module column in the progress lines.
    module_width: int

    def unexplained(self, result: ModuleResult) -> list[str]:
        """The failures of ``result`` that are not in :attr:`explained`."""
        return [test for test in result.failed if test not in self.explained]


def run_module(
    suite: Suite, module: str, target: str, *, verbose: bool = False, timeout: float | None = None
) -> ModuleResult:
    """Run one module on ``target`` in a child process; its result."""
    timeout = suite.module_timeout if timeout is None else timeout
    started = time.monotonic()
    command = [sys.executable, "-m", suite.runner, "--child", module, f"--{suite.option}", target]
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
        return ModuleResult(module, target, crashed=f"timed out after {timeout:.0f} s", seconds=timeout)
    lines = (done.stdout or "").strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        tail = (done.stderr or "").strip().splitlines()[-5:]
        crash = f"exit {done.returncode}: {' | '.join(tail)}"
        return ModuleResult(module, target, crashed=crash, seconds=time.monotonic() - started)
    fields = json.loads(lines[-1])
    return ModuleResult(**fields)


def assert_passes_on_weft(suite: Suite, module: str, *, timeout: float) -> None:
    """What the suite's CI tests check: the module ran on weft's target, some of
    its tests passed, and every failure is one the suite explains."""
    result = run_module(suite, module, WEFT, timeout=timeout)
    assert not result.crashed, result.crashed
    assert result.passed > 0
    assert suite.unexplained(result) == []


def markdown(results: dict[str, dict[str, ModuleResult]], targets: list[str]) -> str:
    """The table for the docs: pass / fail / skip per module and target, and the totals."""
    header = "| module | " + " | ".join(f"{name} pass / fail / skip" for name in targets) + " |"
    rows = [header, "|---|" + "---:|" * len(targets)]
    totals = {name: [0, 0, 0] for name in targets}
    for module, by_target in results.items():
        cells = []
        for name in targets:
            result = by_target[name]
            if result.crashed:
                cells.append(f"crashed ({result.crashed})")
                continue
            cells.append(f"{result.passed} / {len(result.failed)} / {result.skipped}")
            totals[name][0] += result.passed
            totals[name][1] += len(result.failed)
            totals[name][2] += result.skipped
        rows.append(f"| {module} | " + " | ".join(cells) + " |")
    rows.append("| **total** | " + " | ".join(f"**{p} / {f} / {s}**" for p, f, s in totals.values()) + " |")
    return "\n".join(rows)


def main(suite: Suite, argv: list[str] | None = None) -> int:
    """Run the modules; exit 1 if a failure on weft's target is not explained."""
    parser = argparse.ArgumentParser(
        description=suite.description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        f"--{suite.option}",
        dest="target",
        metavar=suite.option.upper(),
        default=WEFT,
        help=f"one of {', '.join(suite.targets)}, or all"
    )
    parser.add_argument("--modules", default=",".join(suite.modules), help="comma-separated module names")
    parser.add_argument("--markdown", action="store_true", help="print a table for the docs")
    parser.add_argument("--verbose", action="store_true", help="show every test")
    parser.add_argument(
        "--timeout", type=float, default=suite.module_timeout, help="seconds before a module counts as hung"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.target != "all" and args.target not in suite.targets:
        parser.error(f"unknown {suite.option} {args.target!r}: one of {', '.join(suite.targets)}, or all")
    if args.child:
        # A job a shell starts in the background inherits SIGINT ignored, and
        # so does this child; asyncio's test_runners then hangs, as
        # _thread.interrupt_main() does nothing while SIGINT is ignored
        # (Runner's own SIGINT handling is what it tests).  The frameworks'
        # tests expect Python's default: a KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        result = suite.run_here(args.child, args.target, args.verbose)
        print(json.dumps(result.__dict__))
        return 0
    targets = list(suite.targets) if args.target == "all" else [args.target]
    modules = [name.strip() for name in args.modules.split(",") if name.strip()]
    results: dict[str, dict[str, ModuleResult]] = {}
    bad = 0
    for module in modules:
        for name in targets:
            result = run_module(suite, module, name, verbose=args.verbose, timeout=args.timeout)
            results.setdefault(module, {})[name] = result
            counts = f"{result.passed} passed, {len(result.failed)} failed, {result.skipped} skipped"
            status = result.crashed or counts
            print(f"{module:{suite.module_width}} {name:8} {status}  ({result.seconds:.1f} s)", flush=True)
            for test in result.failed:
                note = suite.explained.get(test)
                print(f"    {'explained' if note else 'FAILED'}: {test}" + (f"  ({note})" if note else ""))
            if name == WEFT and (result.crashed or suite.unexplained(result)):
                bad += 1
    if args.markdown:
        print()
        print(markdown(results, targets))
    return 1 if bad else 0
