"""The shipped datagram checks (``DATAGRAM_CHECKS``), run on every driver.

Every check runs on every driver of the registry (UDP over IPv4 and IPv6,
UNIX datagram sockets, on loopback) and on the memory driver's network,
through the one :class:`~weft.drivers.testing.conformance.DatagramRuntimeHarness`:
all pass.  A new driver is one entry in ``weft.drivers.DRIVERS`` and runs
them all.
"""

from __future__ import annotations

import pytest

from tests.support.drivers import driver_params
from weft.drivers import DatagramRuntime
from weft.drivers.testing.conformance import (
    DATAGRAM_CHECKS,
    ConformanceError,
    DatagramCheck,
    DatagramRuntimeHarness,
    Group,
    check_datagrams,
    run_datagram_checks,
)
from weft.drivers.testing.conformance._datagram_harness import RuntimeBench


def check_id(check: DatagramCheck) -> str:
    return check.name


@pytest.mark.parametrize("check", DATAGRAM_CHECKS, ids=check_id)
@pytest.mark.parametrize("driver", [*driver_params(requires={DatagramRuntime}), "memory"])
def test_every_driver_passes_every_datagram_check(driver: str, check: DatagramCheck) -> None:
    """Each datagram check passes on each driver's endpoints."""
    check(DatagramRuntimeHarness(driver))


def test_the_checks_are_named_uniquely_and_in_the_two_groups() -> None:
    """Every datagram check has a unique name and is either asyncio's contract or a weft promise."""
    names = [check.name for check in DATAGRAM_CHECKS]
    assert len(names) == len(set(names))
    assert {check.group for check in DATAGRAM_CHECKS} == {Group.ASYNCIO_CONTRACT, Group.WEFT_PROMISE}
    assert all(check.description != check.name for check in DATAGRAM_CHECKS)


def test_the_memory_driver_passes_them_all_at_once() -> None:
    """check_datagrams, the one call a driver's author makes, returns the report when nothing fails."""
    report = check_datagrams(DatagramRuntimeHarness("memory"))
    assert report.ok
    assert len(report.passed) == len(DATAGRAM_CHECKS)


class _SilentBench(RuntimeBench):
    """A bench that forgets the callback errors its runtime reports."""

    @property
    def callback_errors(self) -> list[BaseException]:
        return []

    @callback_errors.setter
    def callback_errors(self, value: list[BaseException]) -> None:
        pass


class _SilentHarness(DatagramRuntimeHarness):
    def open(self) -> RuntimeBench:
        return _SilentBench(self.open_runtime())


def test_a_bench_that_hides_callback_errors_fails_the_check_that_needs_them() -> None:
    """The suite can fail: a bench that reports no callback errors fails exactly
    the check that needs them, with a message that says so."""
    report = run_datagram_checks(_SilentHarness("memory", name="silent memory"))
    assert [outcome.check.name for outcome in report.failed] == [
        "an_exception_from_datagram_received_ends_that_endpoint_with_it"
    ]
    assert "did not report the exception" in report.failed[0].detail
    with pytest.raises(ConformanceError, match="1 check"):
        check_datagrams(_SilentHarness("memory", name="silent memory"))
