"""The fast part of Twisted's reactor tests, run against weft's reactor in CI.

The whole run (every module, on weft's reactor, Twisted's epoll reactor and
its asyncio reactor) is ``python -m tests.frameworks.twisted_suite --reactor
all``; its table is in docs/twisted.md.
"""

from __future__ import annotations

import pytest

from tests.frameworks._suite_runner import assert_passes_on_weft
from tests.frameworks.twisted_suite import BUILDER_MODULES, SUITE

#: Every module of ReactorBuilder tests (the reactor contract), a few seconds each.
FAST_MODULES = BUILDER_MODULES


@pytest.mark.parametrize("module", FAST_MODULES)
def test_twisted_reactor_module_passes_on_weft_reactor(module: str) -> None:
    """Every test of the module passes on weft's reactor, or fails only for a
    reason listed in EXPLAINED."""
    assert_passes_on_weft(SUITE, module, timeout=300)
