"""A quick subset of the attack suite (benchmarks/attacks/), run through the same code.

The full suite is ``python benchmarks/attack.py --fast`` (or ``--long``);
see docs/reliability.md.  Here the cases run with tiny sizes against real
``weft serve`` processes, each stopped by its PID, and the tests assert
what the server did (statuses, closed connections, service recovered,
memory bounds), never how fast: "answered at all within a generous timeout"
is the only time in them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.attacks import crowds, hoarders, malformed
from benchmarks.attacks.context import Attack
from benchmarks.attacks.results import Figure
from benchmarks.attacks.server import Servers
from benchmarks.attacks.settings import BUSY_LINE, BUSY_STATUS, FAST, MiB
from benchmarks.attacks.workspace import Workspace
from weft.drivers import DRIVERS

# The driver lists in this file are deliberate subsets, not the registry's
# matrix (tests/support/drivers.py): this is the quick subset of the attack
# suite, and each case runs where its code paths differ, once each.  The full
# suite (benchmarks/attack.py) runs each case on every driver it applies to.

#: The malformed table runs on one event-loop driver, on the
#: thread-per-connection one, on Twisted's transports, on the
#: task-per-connection one (Trio's) and on the completion driver (whose close
#: waits for the kernel to give back the operations in flight): the HTTP
#: parsing is shared, what differs is how each ends a connection.
TABLE_DRIVERS = ("reactor", "blocking", "twisted", "trio", "completion")
#: Descriptor exhaustion under the shared accept code (drivers/_core/accepting.py)
#: on weft's own loop, on asyncio's, on Twisted's reactor (which takes each
#: accepted socket over as one of its own transports) and on Trio's (whose
#: tasks wait for the listening sockets to be readable); and under the
#: completion driver's multishot accept, which the kernel ends on EMFILE.
EXHAUSTION_DRIVERS = ("reactor", "asyncio", "twisted", "trio", "completion")
#: Never-reading downloaders on weft's own write path, on the Twisted
#: driver's (a region sent with sendfile behind Twisted's producer) and on the
#: completion driver's (sendfile, then a poll operation in place of a send).
DOWNLOAD_DRIVERS = ("reactor", "twisted", "completion")
#: The pool limit is the Server's on every event-loop driver, and the blocking
#: driver's own pool: one of each, Trio's, whose connections are tasks, and
#: the completion driver's, whose refusals are sends on the ring.
POOL_DRIVERS = ("reactor", "blocking", "trio", "completion")


def runnable(drivers: tuple[str, ...]) -> list[Any]:
    """``drivers`` as parameters, each skipped where it cannot run (io_uring
    refused, say), with the registry's reason."""
    return [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                not DRIVERS[name].available(), reason=str(DRIVERS[name].unavailable_reason())
            ),
        )
        for name in drivers
    ]

TINY = dataclasses.replace(
    FAST,
    name="test",
    downloaders=100,
    hold_seconds=1.0,
    probes=5,
    descriptor_seconds=1.5,
    pool_size=4,
)


@pytest.fixture(scope="module")
def workspace() -> Iterator[Workspace]:
    made = Workspace()
    yield made
    made.remove()


def attack_on(driver: str, workspace: Workspace, servers: Servers) -> Attack:
    return Attack(driver, TINY, workspace, servers, [])


def figure(figures: list[Figure], name: str) -> Figure:
    found = [candidate for candidate in figures if candidate.name == name]
    assert found, f"no figure {name!r} in {[candidate.name for candidate in figures]}"
    return found[0]


# ------------------------------------------------------------ malformed HTTP


@pytest.fixture(scope="module")
def table_outcomes(workspace: Workspace) -> dict[tuple[str, str], malformed.Outcome]:
    """Every row of the table sent to weft serve http on each TABLE_DRIVERS driver, once."""
    outcomes: dict[tuple[str, str], malformed.Outcome] = {}
    with Servers() as servers:
        for driver in TABLE_DRIVERS:
            if not DRIVERS[driver].available():
                continue
            server = servers.weft("http", driver, "--root", str(workspace.site))
            for outcome in malformed.send_rows(server.port):
                outcomes[driver, outcome.row.name] = outcome
            assert server.alive(), f"the {driver} server died: {server.last_words()}"
    return outcomes


@pytest.mark.parametrize("row", malformed.ROWS, ids=[row.name for row in malformed.ROWS])
@pytest.mark.parametrize("driver", runnable(TABLE_DRIVERS))
def test_malformed_request(
    table_outcomes: dict[tuple[str, str], malformed.Outcome], driver: str, row: malformed.Malformed
) -> None:
    """The row gets one of its statuses, the connection closes (or stays) as the
    row says, a smuggled request is never answered and the secret never shown."""
    outcome = table_outcomes[driver, row.name]
    assert outcome.failures() == [], f"{row.raw[:120]!r}: {outcome}"


def test_table_rows_have_unique_names_and_sound_expectations() -> None:
    """Names are unique (they are the test ids), every row expects at least one
    status, and a row that must close never expects a plain 200 alone."""
    names = [row.name for row in malformed.ROWS]
    assert len(names) == len(set(names))
    for row in malformed.ROWS:
        assert row.statuses, row.name
        assert not (row.close is True and row.statuses == (200,)), row.name


# --------------------------------------------------------- never-reading peers


@pytest.mark.parametrize("driver", runnable(DOWNLOAD_DRIVERS))
def test_never_reading_downloaders_cost_little_memory(workspace: Workspace, driver: str) -> None:
    """A hundred clients that GET a 2 GiB file and never read it: the server's
    RSS grows by less than 80 KiB a client (the file is not buffered per
    client), and another client's GET is still answered."""
    with Servers() as servers:
        figures = hoarders.never_reading_http(attack_on(driver, workspace, servers))
    growth = figure(figures, "rss growth").value
    assert isinstance(growth, int)
    assert growth < 8 * MiB, f"RSS grew by {growth / MiB:.1f} MiB for 100 never-reading downloaders"
    answers = figure(figures, "probe answers").value
    assert answers == f"{TINY.probes}x 200", answers


# --------------------------------------------------- descriptor exhaustion


@pytest.mark.parametrize("driver", runnable(EXHAUSTION_DRIVERS))
def test_descriptor_exhaustion(workspace: Workspace, driver: str) -> None:
    """Out of descriptors (RLIMIT_NOFILE 64, 200 clients), the server logs no
    traceback and at most about a line a second, does not spin, keeps its
    listener, and serves again once the clients leave."""
    with Servers() as servers:
        figures = crowds.descriptor_exhaustion(attack_on(driver, workspace, servers))
    assert figure(figures, "tracebacks").value == 0
    lines_per_second = figure(figures, "log lines/s").value
    assert isinstance(lines_per_second, float)
    assert lines_per_second <= 2.0
    cpu = figure(figures, "cpu").value
    assert isinstance(cpu, float)
    assert cpu < 50.0, f"the server spun at {cpu:.0f} % of a core"
    assert figure(figures, "listener kept").ok
    assert figure(figures, "service back after").value is not None


# ---------------------------------------------------------- pool exhaustion


@pytest.mark.parametrize("driver", runnable(POOL_DRIVERS))
def test_pool_exhaustion(workspace: Workspace, driver: str) -> None:
    """With --max-connections 4 taken by idle clients, the next echo client gets
    the busy line and the next HTTP client a 503 with Retry-After; once an idle
    client leaves, both are served again."""
    with Servers() as servers:
        figures = crowds.pool_exhaustion(attack_on(driver, workspace, servers))
    assert figure(figures, "echo: over the pool").value == BUSY_LINE.decode()
    assert figure(figures, "echo: service back after").value is not None
    assert figure(figures, "http: over the pool").value == BUSY_STATUS
    assert figure(figures, "http: retry-after").ok
    assert figure(figures, "http: service back after").value is not None
