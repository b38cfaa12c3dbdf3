"""A server out of file descriptors: no log flood, no spin, and service once they are free.

``weft serve echo`` runs in a child whose descriptor limit (``RLIMIT_NOFILE``)
is a few dozen, and the test opens more connections than that.  Every
driver with an event loop must then pause accepting and say so in one line,
at most once a second, rather than retry at once (asyncio's own server
logged a traceback a thousand times per readiness event, tens of thousands
a second, and spun a core); keep its listener; and serve again once
connections close.
"""

from __future__ import annotations

import contextlib
import re
import resource

import pytest

from tests.support.drivers import SERVES
from tests.support.processes import Children, connect, receive_exactly

#: The child's descriptor limit: what Python, the loop and the listener need, and a few dozen more.
LIMIT = 48
#: More connections than the child can hold.
CONNECTIONS = 80

#: The one line a pause logs.
PAUSED = re.compile(
    r"^weft: cannot accept on \('127\.0\.0\.1', \d+\) \(Too many open files\); pausing for 1 s$"
)


def low_descriptor_limit() -> None:
    """In the child, before it starts: a low soft limit (the hard one stays)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))


def resource_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "accept" in line or "resource" in line]


@pytest.mark.drivers(
    requires=SERVES,
    exclude={
        # It pauses and paces too, but its accept thread words the line its
        # own way, without the address: one wording for every driver is a
        # change to drivers/blocking/_sockets.py, not to this test.
        "blocking": "its accept thread logs 'cannot accept ([Errno 24] ...)', without the address"
    },
)
def test_out_of_descriptors_pauses_accepting_quietly_and_recovers(children: Children, driver: str) -> None:
    """With more connections than descriptors: the second pause line comes (a
    second after the first) with no flood of lines before it, each line is the
    one-line pause message, and once the connections close the listener
    serves an echo again."""
    server = children.weft(
        "serve", "echo", "--port", "0", "--driver", driver, preexec_fn=low_descriptor_limit
    )
    port = server.port()
    with contextlib.ExitStack() as opened:
        for _ in range(CONNECTIONS):
            opened.enter_context(connect(port))
        server.wait_for(lambda: len(resource_lines(server.stderr)) >= 2, "a second pause line")
        lines = resource_lines(server.stderr)
        # Paced: when the second line has come, there are no more than that
        # (a flood would have put hundreds in the same read of stderr).
        assert len(lines) <= 3, lines[:5]
        assert all(PAUSED.match(line) for line in lines), lines
        assert "Traceback" not in server.stderr
    # Every connection is closed: the server frees their descriptors, and
    # serves the next one (the pause lasts a second at most).
    with connect(port) as client:
        client.sendall(b"served again")
        assert receive_exactly(client, b"served again") == b"served again"
    assert "Traceback" not in server.stderr
    assert all(PAUSED.match(line) for line in resource_lines(server.stderr))
