"""The conformance suite as a user meets it: importable without pytest, its
entry points and report, and what it says about a harness that is wrong."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from weft.drivers.testing.conformance import (
    ALL_CHECKS,
    ASYNCIO_CONTRACT,
    HARNESS_CHECKS,
    Check,
    ConformanceError,
    Group,
    MemoryHarness,
    MemoryPair,
    Session,
    Verdict,
    check_asyncio_contract,
    expect_equal,
    run_checks,
)

PACKAGE = Path(__file__).resolve().parents[2] / "drivers" / "testing" / "conformance"

#: What a plain ``pip install weft`` does not bring.
TEST_ONLY = ("pytest", "_pytest", "hypothesis", "trustme")


def test_no_module_of_the_suite_imports_a_test_framework() -> None:
    """No module of weft.drivers.testing.conformance imports pytest, hypothesis
    or trustme, at the top or inside a function."""
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {name}" for name in names if name.split(".")[0] in TEST_ONLY]
    assert found == []
    assert len(list(PACKAGE.glob("*.py"))) >= 8


def test_the_suite_runs_where_pytest_cannot_be_imported() -> None:
    """In a process where importing pytest, hypothesis or trustme fails, the
    suite imports and check_transport passes on the memory driver."""
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in TEST_ONLY)
    code = (
        f"import sys; {blocked}\n"
        "from weft.drivers.testing.conformance import MemoryHarness, check_transport\n"
        "print(check_transport(MemoryHarness()))\n"
        "import pytest\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("memory: 45 passed, 0 failed"), result.stderr
    assert "ModuleNotFoundError: import of pytest halted" in result.stderr


class _DeafPair:
    """A memory pair whose harness forgot to collect callback errors."""

    def __init__(self, inner: MemoryPair) -> None:
        self.inner = inner
        self.callback_errors: list[BaseException] = []

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        return self.inner.run_until(condition, timeout)

    def close(self) -> None:
        self.inner.close()


class _DeafHarness:
    name = "deaf memory"

    def connect(self, client: Any, server: Any) -> _DeafPair:
        return _DeafPair(MemoryHarness().connect(client, server))


#: The checks that need the driver's report of a callback's exception.
NEEDS_REPORTS = {
    "an_exception_from_data_received_ends_that_connection_with_it",
    "an_exception_from_pause_writing_ends_that_connection_with_it",
    "an_exception_from_resume_writing_ends_that_connection_with_it",
    "an_exception_from_a_clock_callback_ends_that_connection_with_it",
}


def test_one_error_names_every_failed_check_and_says_why() -> None:
    """check_asyncio_contract on a harness that reports no callback errors
    raises one ConformanceError naming the one contract check that needs
    them, with what went wrong; the report on it has every outcome."""
    with pytest.raises(ConformanceError) as raised:
        check_asyncio_contract(_DeafHarness())
    error = raised.value
    assert isinstance(error, AssertionError)
    assert [outcome.check.name for outcome in error.report.failed] == [
        "an_exception_from_data_received_ends_that_connection_with_it"
    ]
    assert "1 check(s) failed on deaf memory: an_exception_from_data_received" in str(error)
    assert "the driver did not report the exception" in str(error)
    assert len(error.report.outcomes) == len(HARNESS_CHECKS + ASYNCIO_CONTRACT)


def test_run_checks_reports_every_outcome_without_raising() -> None:
    """run_checks runs every check and returns each verdict: the checks that
    need reported errors fail, the rest pass."""
    report = run_checks(_DeafHarness())
    assert {outcome.check.name for outcome in report.failed} == NEEDS_REPORTS
    assert len(report.passed) == len(ALL_CHECKS) - len(NEEDS_REPORTS)
    assert not report.ok
    assert str(report).startswith(f"deaf memory: {len(report.passed)} passed, 4 failed, 0 not applicable")


class _Optimist:
    """A harness whose run_until says yes to anything."""

    name = "optimist"

    def connect(self, client: Any, server: Any) -> _Optimist:
        self.pair = MemoryHarness().connect(client, server)
        return self

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        self.pair.run_until(condition, timeout)
        return True

    @property
    def callback_errors(self) -> list[BaseException]:
        return self.pair.callback_errors

    def close(self) -> None:
        self.pair.close()


def test_a_harness_whose_run_until_cannot_be_trusted_stops_the_run() -> None:
    """When the harness's own check fails, nothing else runs: the report holds
    that one failure, which says what run_until did wrong."""
    report = run_checks(_Optimist())
    assert [outcome.check for outcome in report.outcomes] == list(HARNESS_CHECKS)
    assert report.outcomes[0].verdict is Verdict.FAILED
    assert "returned True, not False" in report.outcomes[0].detail


def test_a_check_of_ones_own_runs_like_the_suites() -> None:
    """A function of a Session wrapped in a Check runs through run_checks, after
    the harness's own check, and its failure is reported like any other."""

    def a_byte_arrives(session: Session) -> None:
        """One byte written arrives."""
        connection = session.connect()
        connection.client.transport.write(b"x")
        connection.wait(lambda: connection.server.received == b"x", "b'x' at the server")

    def two_bytes_arrive_from_one(session: Session) -> None:
        """Wrong on purpose."""
        connection = session.connect()
        connection.client.transport.write(b"x")
        connection.wait(lambda: len(connection.server.received) == 1, "one byte")
        expect_equal(connection.server.received, b"xx", "what arrived")

    checks = [Check(f.__name__, Group.WEFT_PROMISE, f) for f in (a_byte_arrives, two_bytes_arrive_from_one)]
    report = run_checks(MemoryHarness(), checks)
    assert [outcome.check.name for outcome in report.passed] == [HARNESS_CHECKS[0].name, "a_byte_arrives"]
    assert [outcome.detail for outcome in report.failed] == ["what arrived: expected b'xx', got b'x'"]


def test_the_write_file_flow_control_check_waits_for_a_send_reported_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A driver may learn that bytes were sent after the peer has them: the
    blocking driver's writer thread reports to the scheduler thread, and on
    a loaded machine the peer's reader can deliver first.  The check must
    not count on the report having come (it failed then, under load, seeing
    the first region still in the buffer at the next pause).  Here every
    report is held back until the peer protocol has received the bytes, the
    worst order the threads can take, every time."""
    from weft.drivers.blocking._transport import ThreadedTransport
    from weft.drivers.testing.conformance import RuntimeHarness, run_check

    transports: list[ThreadedTransport] = []
    reported: dict[int, int] = {}
    start, report_sent = ThreadedTransport.start, ThreadedTransport._report_sent

    def kept_start(self: ThreadedTransport) -> None:
        transports.append(self)
        start(self)

    def report_once_the_peer_has_it(self: ThreadedTransport) -> None:
        sent = reported.get(id(self), 0) + self._sent_unreported
        received = sum(len(peer.get_protocol().received) for peer in transports if peer is not self)
        if received < sent:
            self._scheduler.call_soon(report_once_the_peer_has_it, self)  # a later turn
            return
        reported[id(self)] = sent
        report_sent(self)

    monkeypatch.setattr(ThreadedTransport, "start", kept_start)
    monkeypatch.setattr(ThreadedTransport, "_report_sent", report_once_the_peer_has_it)
    (check,) = [check for check in ALL_CHECKS if check.name == "write_file_counts_in_flow_control"]
    outcome = run_check(check, RuntimeHarness("blocking", "tcp"))
    assert (outcome.verdict, outcome.detail) == (Verdict.PASSED, "")
