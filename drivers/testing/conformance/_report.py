"""Running checks, and what comes of it: a report, or one error naming every failure.

:func:`run_checks` runs checks and returns a :class:`Report` whatever their
outcome (for tables, and for tools that decide themselves); the
``check_*`` entry points run a whole group and raise
:class:`ConformanceError` listing every failed check, or return the report
when none failed.  Raising is the default because the suite is mostly run
from a test: one call that fails the test with a readable list is what a
user wants there; the report is still on the error (``error.report``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from weft.drivers.testing.conformance._asyncio_contract import ASYNCIO_CONTRACT, HARNESS_CHECKS
from weft.drivers.testing.conformance._checking import AnyCheck, Check
from weft.drivers.testing.conformance._expectations import CheckFailure, NotApplicable
from weft.drivers.testing.conformance._file_promises import FILE_PROMISES
from weft.drivers.testing.conformance._harness import TransportHarness
from weft.drivers.testing.conformance._weft_promises import TRANSPORT_PROMISES
from weft.protocols.errors import WeftError

__all__ = [
    "ALL_CHECKS",
    "WEFT_PROMISES",
    "ConformanceError",
    "Outcome",
    "Report",
    "Verdict",
    "check_asyncio_contract",
    "check_transport",
    "check_weft_promises",
    "run_checks",
]

#: weft's promises beyond the asyncio contract, ``write_file``'s included.
WEFT_PROMISES: tuple[Check, ...] = TRANSPORT_PROMISES + FILE_PROMISES

#: Every check: the harness's own, the asyncio contract, then weft's promises.
ALL_CHECKS: tuple[Check, ...] = HARNESS_CHECKS + ASYNCIO_CONTRACT + WEFT_PROMISES


class Verdict(enum.Enum):
    """How one check went."""

    PASSED = "passed"
    FAILED = "failed"
    #: The transport lacks the optional feature the check is about.
    NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True)
class Outcome:
    """One check's result on one harness."""

    check: AnyCheck
    verdict: Verdict
    #: Why it failed, or why it does not apply; empty when it passed.
    detail: str = ""
    #: The exception the check raised (its traceback included), if any.
    error: BaseException | None = None


@dataclass(frozen=True)
class Report:
    """Every outcome of one run, in the order the checks ran."""

    harness: str
    outcomes: tuple[Outcome, ...]

    def with_verdict(self, verdict: Verdict) -> list[Outcome]:
        """The outcomes with ``verdict``."""
        return [outcome for outcome in self.outcomes if outcome.verdict is verdict]

    @property
    def failed(self) -> list[Outcome]:
        """The checks that failed."""
        return self.with_verdict(Verdict.FAILED)

    @property
    def passed(self) -> list[Outcome]:
        """The checks that passed."""
        return self.with_verdict(Verdict.PASSED)

    @property
    def ok(self) -> bool:
        """Whether no check failed (some may not have applied)."""
        return not self.failed

    def __str__(self) -> str:
        counts = ", ".join(f"{len(self.with_verdict(verdict))} {verdict.value}" for verdict in Verdict)
        lines = [f"{self.harness}: {counts}"]
        for outcome in self.outcomes:
            if outcome.verdict is not Verdict.PASSED:
                lines.append(f"  {outcome.verdict.value}: {outcome.check.name} ({outcome.check.group.value})")
                lines.append(f"      {outcome.detail}")
        return "\n".join(lines)


class ConformanceError(WeftError, AssertionError):
    """A transport failed checks of the suite; the message names each, with what went wrong.

    An ``AssertionError`` too, so a test runner reports it as a failed test.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        names = ", ".join(outcome.check.name for outcome in report.failed)
        super().__init__(f"{len(report.failed)} check(s) failed on {report.harness}: {names}\n{report}")


def run_checks(harness: TransportHarness, checks: Iterable[Check] = ALL_CHECKS) -> Report:
    """Run ``checks`` on ``harness``, each on connections of its own; report every outcome.

    The harness's own checks run first, whatever ``checks`` holds: when one
    fails, nothing else runs (a ``run_until`` that cannot be trusted would
    make every other verdict meaningless), and the report holds that failure.
    """
    outcomes: list[Outcome] = []
    for check in HARNESS_CHECKS:
        outcomes.append(run_check(check, harness))
    if not all(outcome.verdict is Verdict.PASSED for outcome in outcomes):
        return Report(_name_of(harness), tuple(outcomes))
    for check in checks:
        if check not in HARNESS_CHECKS:
            outcomes.append(run_check(check, harness))
    return Report(_name_of(harness), tuple(outcomes))


def run_check(check: AnyCheck, harness: Any) -> Outcome:
    """Run one check; its outcome (an unexpected exception is a failure too)."""
    try:
        check(harness)
    except NotApplicable as exc:
        return Outcome(check, Verdict.NOT_APPLICABLE, str(exc), exc)
    except CheckFailure as exc:
        return Outcome(check, Verdict.FAILED, str(exc), exc)
    except Exception as exc:
        return Outcome(check, Verdict.FAILED, f"raised {type(exc).__name__}: {exc}", exc)
    return Outcome(check, Verdict.PASSED)


def check_asyncio_contract(harness: TransportHarness) -> Report:
    """Run the asyncio contract's checks: what any asyncio-style transport must do.

    Returns the report when none failed; raises :class:`ConformanceError`
    naming every check that did.
    """
    return _raise_for_failures(run_checks(harness, ASYNCIO_CONTRACT))


def check_weft_promises(harness: TransportHarness) -> Report:
    """Run the checks of weft's promises beyond asyncio's (``write_file`` ones where it is offered).

    Returns the report when none failed; raises :class:`ConformanceError`
    naming every check that did.
    """
    return _raise_for_failures(run_checks(harness, WEFT_PROMISES))


def check_transport(harness: TransportHarness) -> Report:
    """Run every check: the asyncio contract, then weft's promises.

    What a weft driver must pass.  Returns the report when none failed;
    raises :class:`ConformanceError` naming every check that did.
    """
    return _raise_for_failures(run_checks(harness, ALL_CHECKS))


def _raise_for_failures(report: Report) -> Report:
    if report.failed:
        raise ConformanceError(report)
    return report


def _name_of(harness: TransportHarness) -> str:
    return str(getattr(harness, "name", None) or type(harness).__name__)
