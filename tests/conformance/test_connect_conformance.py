"""The shipped connect checks (``CONNECT_CHECKS``), run on every driver.

A UNIX connect to a listener whose accept backlog is full waits for room on
every driver of the registry, completes once the listener accepts, and
otherwise fails at its deadline with ``ListenerBacklogFullError``, leaving
no descriptor open.  The memory driver, with no kernel backlog, steps
aside; a runtime that hands out a transport over a socket that never
connected fails the checks, with a message that says so.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, ClassVar, cast

import pytest

from tests.support.drivers import driver_params
from weft.drivers import Future, ListenerBacklogFullError, Runtime, UNIXRuntime
from weft.drivers.reactor import Reactor
from weft.drivers.testing import MemoryRuntime
from weft.drivers.testing.conformance import (
    CONNECT_CHECKS,
    ConformanceError,
    ConnectCheck,
    Group,
    NotApplicable,
    RuntimeHarness,
    check_connecting,
    run_connect_checks,
)
from weft.protocols.contract import Transport


def check_id(check: ConnectCheck) -> str:
    return check.name


@pytest.mark.parametrize("check", CONNECT_CHECKS, ids=check_id)
@pytest.mark.parametrize("driver", driver_params(requires={UNIXRuntime}))
def test_every_driver_passes_every_connect_check(driver: str, check: ConnectCheck) -> None:
    """Each connect check passes on each driver's connect_unix."""
    check(RuntimeHarness(driver, "unix"))


@pytest.mark.parametrize("check", CONNECT_CHECKS, ids=check_id)
def test_the_memory_driver_has_no_backlog_and_steps_aside(check: ConnectCheck) -> None:
    """The memory driver's listeners are in memory: the checks do not apply, and say why."""
    with pytest.raises(NotApplicable, match="no kernel backlog"):
        # (A MemoryRuntime is not a whole Runtime: no pipes, processes or signals.)
        check(RuntimeHarness(cast("Callable[[], Runtime]", MemoryRuntime), name="memory"))


def test_the_checks_are_weft_promises_with_unique_names_and_descriptions() -> None:
    """Every connect check is a weft promise (asyncio's own loops do not keep it), named uniquely."""
    names = [check.name for check in CONNECT_CHECKS]
    assert len(names) == len(set(names))
    assert {check.group for check in CONNECT_CHECKS} == {Group.WEFT_PROMISE}
    assert all(check.description != check.name for check in CONNECT_CHECKS)


def test_check_connecting_returns_the_report_when_all_pass() -> None:
    """check_connecting, the one call a driver's author makes, returns the report when nothing fails."""
    report = check_connecting(RuntimeHarness("reactor", "unix"))
    assert report.ok
    assert len(report.passed) == len(CONNECT_CHECKS)


class _TrustingReactor(Reactor):
    """A reactor whose connect_unix does the usual dance and trusts it: a
    non-blocking connect, and on EAGAIN a transport regardless (the bug
    the checks are for)."""

    def connect_unix(self, factory: Any, path: str, *, timeout: float = 30.0) -> Future[Transport]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(path)  # EAGAIN: "under way", and it polls writable at once
        result: Future[Transport] = Future(self.call_soon)
        result.set_result(self.connect_pipes(factory, sock.fileno(), sock.detach()))
        return result


def test_a_runtime_that_trusts_writability_fails_every_check() -> None:
    """The checks can fail: a connect_unix that hands out a transport over a
    socket that never connected fails each, saying what it got."""

    def trusting() -> Reactor:
        return _TrustingReactor()

    report = run_connect_checks(RuntimeHarness(trusting, "unix", name="trusting"))
    assert [outcome.check.name for outcome in report.failed] == [check.name for check in CONNECT_CHECKS]
    assert "settled while the backlog was full" in report.failed[0].detail
    assert "not ListenerBacklogFullError" in report.failed[1].detail
    assert "settled while the backlog was full" in report.failed[2].detail
    with pytest.raises(ConformanceError, match="3 check"):
        check_connecting(RuntimeHarness(trusting, "unix", name="trusting"))


class _ForgetfulReactor(Reactor):
    """A reactor whose connect_unix, on a full backlog, waits forever and is
    forgotten by close(): its future stays pending, its socket left to the
    garbage collector (what the reactor did before the close check).  The
    sockets it forgets are kept here, for the test to close."""

    forgotten: ClassVar[list[socket.socket]] = []

    def connect_unix(self, factory: Any, path: str, *, timeout: float = 30.0) -> Future[Transport]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(path)
        self.forgotten.append(sock)
        return Future(self.call_soon)


def test_a_runtime_whose_close_forgets_a_connect_fails_the_close_check() -> None:
    """The close check can fail: a connect still pending after close(),
    its socket unclosed, is named."""

    def forgetful() -> Reactor:
        return _ForgetfulReactor()

    name = "closing_the_runtime_ends_a_unix_connect_under_way"
    (close_check,) = [check for check in CONNECT_CHECKS if check.name == name]
    try:
        report = run_connect_checks(RuntimeHarness(forgetful, "unix", name="forgetful"), [close_check])
    finally:
        for sock in _ForgetfulReactor.forgotten:
            sock.close()
    (failure,) = report.failed
    assert "still pending once the runtime was closed" in failure.detail


def test_listener_backlog_full_error_is_a_weft_error_and_a_timeout() -> None:
    """What a caller catches: WeftError, or TimeoutError as for any connect that ran out of time."""
    from weft.protocols.errors import WeftError

    assert issubclass(ListenerBacklogFullError, WeftError)
    assert issubclass(ListenerBacklogFullError, TimeoutError)
