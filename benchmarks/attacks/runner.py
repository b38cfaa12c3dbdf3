"""Running the catalogue: options, one case at a time on each driver, the table."""

from __future__ import annotations

import argparse
import platform
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from weft.drivers import DRIVERS

from .catalogue import CASES, select
from .clients import raise_descriptor_limit
from .context import Attack, Case
from .results import CaseResult, markdown, table, write_json
from .server import ServerFailedError, Servers
from .settings import FAST, LONG, Scale
from .workspace import Workspace


def available_drivers() -> list[str]:
    """Every driver that can run here, in the registry's order."""
    return [name for name, info in DRIVERS.items() if info.available()]


def run_case(case: Case, driver: str, scale: Scale, workspace: Workspace) -> CaseResult:
    """Run one case on one driver; every server it started is stopped by the end."""
    result = CaseResult(case.name, driver)
    started = time.monotonic()
    notes: list[str] = []
    try:
        with Servers() as servers:
            result.figures = case.run(Attack(driver, scale, workspace, servers, notes))
    except ServerFailedError as exc:
        result.error = str(exc)
    except Exception as exc:  # a case that breaks is a failed case, and the run goes on
        result.error = f"{type(exc).__name__}: {exc}"
    result.notes = notes
    result.seconds = time.monotonic() - started
    return result


def build_parser() -> argparse.ArgumentParser:
    """The script's options."""
    parser = argparse.ArgumentParser(
        prog="attack.py",
        description="Attack weft serve on every driver, over loopback, and print what held.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--fast", action="store_true", help="small sizes and short timeouts, a few minutes (default)"
    )
    size.add_argument("--long", action="store_true", help="issue 9's full sizes and weft's default timeouts")
    parser.add_argument("--drivers", help="comma-separated drivers (default: every one that can run here)")
    parser.add_argument("--cases", help="comma-separated case names or globs (default: all; see --list)")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write every result to FILE")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; 0 if every case passed on every driver, 1 otherwise, 2 for bad options."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for case in CASES:
            where = f" [{', '.join(case.drivers)} only]" if case.drivers else ""
            print(f"{case.name:<22} {case.summary}{where}")
        return 0
    scale = LONG if args.long else FAST
    drivers = args.drivers.split(",") if args.drivers else available_drivers()
    unknown = [driver for driver in drivers if driver not in DRIVERS or not DRIVERS[driver].available()]
    if unknown:
        parser.error(f"cannot run here: {', '.join(unknown)} (available: {', '.join(available_drivers())})")
    try:
        cases = select(args.cases.split(",")) if args.cases else list(CASES)
    except KeyError as exc:
        parser.error(f"no case matches {exc.args[0]!r} (see --list)")
    # SIGTERM ends the run as Ctrl-C does: through the finally clauses that stop the servers.
    signal.signal(signal.SIGTERM, _interrupted)
    raise_descriptor_limit()
    workspace = Workspace()
    results: list[CaseResult] = []
    started = time.monotonic()
    try:
        for case in cases:
            for driver in drivers[:1] if case.once else drivers:
                if case.applies_to(driver):
                    result = run_case(case, driver, scale, workspace)
                    results.append(result)
                    verdict = "PASS" if result.passed else "FAIL"
                    print(
                        f"  {case.name} on {driver}: {verdict} ({result.seconds:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        workspace.remove()
    print(markdown(results) if args.markdown else table(results))
    _print_notes(results)
    failed = sum(not result.passed for result in results)
    took = time.monotonic() - started
    print(f"\n{len(results) - failed} passed, {failed} failed ({scale.name}, {took:.0f} s)")
    if args.json is not None:
        meta: dict[str, object] = {
            "scale": scale.name,
            "drivers": drivers,
            "cases": [case.name for case in cases],
            "python": platform.python_version(),
            "command": " ".join(["benchmarks/attack.py", *(argv if argv is not None else sys.argv[1:])]),
        }
        write_json(args.json, results, meta)
    return 0 if failed == 0 else 1


def _print_notes(results: Sequence[CaseResult]) -> None:
    noted = [result for result in results if result.notes and not result.passed]
    if not noted:
        return
    print("\nNotes on the failures:")
    for result in noted:
        for note in result.notes[:40]:
            print(f"  {result.case} on {result.driver}: {note}")
        if len(result.notes) > 40:
            print(f"  {result.case} on {result.driver}: ... {len(result.notes) - 40} more")


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
