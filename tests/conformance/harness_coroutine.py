"""The coroutine driver in the conformance suite: the reactor's harnesses, with
each connection's bytes moved by a task (TCP, UNIX-domain sockets, two
``os.pipe()`` pairs, and a socketpair end as both descriptors).

Every check of the suite applies to this driver; none is skipped.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.conformance.harness import DriverHarness, ReactorHarness
from tests.conformance.harness_pipes import PipesHarness
from weft.drivers.coroutine import CoroutineRuntime

HARNESSES: dict[str, Callable[[], DriverHarness]] = {
    "coroutine-tcp": lambda: ReactorHarness("tcp", CoroutineRuntime),
    "coroutine-unix": lambda: ReactorHarness("unix", CoroutineRuntime),
    "coroutine-pipes": lambda: PipesHarness("pipes", CoroutineRuntime),
    "coroutine-pipes-socketpair": lambda: PipesHarness("pipes-socketpair", CoroutineRuntime),
}
