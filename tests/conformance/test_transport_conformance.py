"""The shipped conformance suite (``weft.drivers.testing.conformance``), run on every transport.

Every check runs on every weft transport (each driver of the registry over
TCP, UNIX-domain sockets, two pipes and a socketpair; the memory driver;
TLS over an explicit list of carriers): all pass, and the only checks that
do not apply are ``write_file``'s on TLS, which has none.  asyncio's and
uvloop's own transports pass the asyncio contract, and fail exactly the
weft promises docs/conformance.md says they fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conformance.harnesses import (
    TLS_CARRIERS,
    conformance_drivers,
    make_harness,
    own_transport_harness_names,
    weft_harness_names,
)
from weft.drivers.testing.conformance import (
    ALL_CHECKS,
    ASYNCIO_CONTRACT,
    FILE_PROMISES,
    HARNESS_CHECKS,
    WEFT_PROMISES,
    Check,
    Group,
    NotApplicable,
    Verdict,
    run_check,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"

#: The checks of write_file, which a TLS layer does not offer.
FILE_CHECKS = {check.name for check in FILE_PROMISES}


def check_id(check: Check) -> str:
    return check.name


@pytest.mark.parametrize("check", ALL_CHECKS, ids=check_id)
@pytest.mark.parametrize("harness_name", weft_harness_names())
def test_every_weft_transport_passes_every_check(harness_name: str, check: Check) -> None:
    """Each check passes on each weft transport; only write_file's step aside, on TLS alone."""
    harness = make_harness(harness_name)
    if harness_name.startswith("tls-over-") and check.name in FILE_CHECKS:
        with pytest.raises(NotApplicable, match="no write_file"):
            check(harness)
        return
    check(harness)


@pytest.mark.parametrize("check", HARNESS_CHECKS + ASYNCIO_CONTRACT, ids=check_id)
@pytest.mark.parametrize("harness_name", own_transport_harness_names())
def test_asyncio_and_uvloop_own_transports_keep_the_asyncio_contract(harness_name: str, check: Check) -> None:
    """The asyncio contract is what asyncio's own transports do (and uvloop's): every check passes on them."""
    check(make_harness(harness_name))


def documented_outcomes() -> dict[str, dict[str, str]]:
    """The table of checks in docs/conformance.md: check name -> column -> cell."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("| "):
            header = []
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not header:
            header = cells
            continue
        if set(cells[0]) <= set("-: ") or header[0] != "check":
            continue
        name = re.sub(r"[`\\]", "", cells[0])
        rows[name] = dict(zip(header, cells, strict=True))
    return rows


def test_the_documented_table_lists_every_check_once_in_its_group() -> None:
    """docs/conformance.md has a row per check, in the check's group, and every weft driver passes it."""
    rows = documented_outcomes()
    assert sorted(rows) == sorted(check.name for check in ALL_CHECKS)
    for check in ALL_CHECKS:
        assert rows[check.name]["group"] == check.group.value, check.name
        assert rows[check.name]["weft drivers"] == "✓", check.name


def documented_to_pass(check: Check, harness_name: str) -> bool | None:
    """What the table says of ``check`` on a loop's own transports: True, False, or
    None for a cell that depends on the Python version (marked with a footnote)."""
    loop = harness_name.split("-")[0]
    cell = documented_outcomes()[check.name][f"{loop}'s own"]
    if "¹" in cell:
        return None
    return {"✓": True, "✗": False}[cell]


@pytest.mark.parametrize(
    "check", [check for check in WEFT_PROMISES if check.name not in FILE_CHECKS], ids=check_id
)
@pytest.mark.parametrize("harness_name", [name for name in own_transport_harness_names() if "-tcp" in name])
def test_asyncio_and_uvloop_own_transports_fail_the_promises_the_docs_say(
    harness_name: str, check: Check
) -> None:
    """Each weft promise passes or fails on asyncio's and uvloop's own transports as
    the table of docs/conformance.md says (cells marked as depending on the
    Python version are not held to it)."""
    expected = documented_to_pass(check, harness_name)
    outcome = run_check(check, make_harness(harness_name))
    if expected is None:
        return
    verdict = Verdict.PASSED if expected else Verdict.FAILED
    assert outcome.verdict is verdict, (
        f"{check.name} on {harness_name}: {outcome.verdict.value} {outcome.detail}"
    )


def test_write_file_checks_do_not_apply_to_asyncio_own_transports() -> None:
    """asyncio's own transports offer no write_file: its checks step aside rather than fail."""
    harness = make_harness("asyncio-own-tcp")
    for check in WEFT_PROMISES:
        if check.name in FILE_CHECKS:
            assert run_check(check, harness).verdict is Verdict.NOT_APPLICABLE, check.name


def test_tls_carriers_are_named_explicitly_and_each_exists() -> None:
    """TLS runs over a fixed list of carriers, each a harness the suite knows
    (no carrier dropped silently because its name changed), covering every
    driver of the registry and the memory driver."""
    names = set(weft_harness_names())
    assert all(carrier in names for carrier in TLS_CARRIERS)
    drivers = {carrier.split("-")[0] for carrier in TLS_CARRIERS}
    assert drivers == set(conformance_drivers())


def test_checks_are_grouped_and_named_uniquely() -> None:
    """Every check has one group and a unique name; the groups partition ALL_CHECKS."""
    names = [check.name for check in ALL_CHECKS]
    assert len(names) == len(set(names))
    assert ALL_CHECKS == HARNESS_CHECKS + ASYNCIO_CONTRACT + WEFT_PROMISES
    assert {check.group for check in ASYNCIO_CONTRACT} == {Group.ASYNCIO_CONTRACT}
    assert {check.group for check in WEFT_PROMISES} == {Group.WEFT_PROMISE}
    assert set(FILE_PROMISES) <= set(WEFT_PROMISES)
