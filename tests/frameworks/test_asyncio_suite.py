"""The fast part of CPython's asyncio tests, run against weft's loop in CI.

The whole run (every applicable module, on weft's loop, asyncio's and
uvloop's) is ``python -m tests.frameworks.asyncio_suite --loop all``; its
table is in docs/asyncio.md.
"""

from __future__ import annotations

import pytest

from tests.frameworks._suite_runner import assert_passes_on_weft
from tests.frameworks.asyncio_suite import SUITE

#: The modules that exercise the loop's I/O (transports, servers, sockets,
#: sendfile, TLS), a few seconds each.
FAST_MODULES = (
    "test_buffered_proto",
    "test_events",
    "test_sendfile",
    "test_server",
    "test_sock_lowlevel",
    "test_ssl",
    "test_sslproto",
    "test_streams",
)


@pytest.mark.parametrize("module", FAST_MODULES)
def test_cpython_asyncio_module_passes_on_weft_loop(module: str) -> None:
    """Every test of the module passes on weft's loop, or fails only for a
    reason listed in EXPLAINED."""
    assert_passes_on_weft(SUITE, module, timeout=300)
