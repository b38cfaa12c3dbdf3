"""The asyncio event loops the tests run real asyncio programs on, and a way to run one.

:data:`LOOP_FACTORIES` names each loop and the function that makes one:
asyncio's own (the reference), uvloop's, and weft's reactor as an asyncio
event loop (``weft.drivers.reactor.new_event_loop``, issue 11).  A test takes
a loop's name (``loop_name``, parametrized with :func:`loop_params`) and runs
its program with :func:`run_program`, which runs it the way an application
would, ``asyncio.Runner(loop_factory=...)``, under one bounded timeout.

A loop that cannot run here (uvloop not installed) is a skipped case whose
reason names the pip extra, never a case that silently disappears.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from tests.support import TIMEOUT

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

#: Each loop: the module and function that make one, and the pip extra that
#: installs the module when it is optional (None: always there).
LOOPS: dict[str, tuple[str, str, str | None]] = {
    "asyncio": ("asyncio", "new_event_loop", None),
    "uvloop": ("uvloop", "new_event_loop", "uvloop"),
    "weft": ("weft.drivers.reactor", "new_event_loop", None),
}


def skip_reason(name: str) -> str | None:
    """Why the loop called ``name`` cannot run here (naming the pip extra), or None."""
    module, _, extra = LOOPS[name]
    if extra is not None and importlib.util.find_spec(module) is None:
        return f"the {name} loop needs {module}, which is not installed: pip install 'weft[{extra}]'"
    return None


def loop_factory(name: str) -> LoopFactory:
    """The function that makes a new event loop of the kind called ``name``."""
    module, function, _ = LOOPS[name]
    factory: LoopFactory = getattr(importlib.import_module(module), function)
    return factory


#: Every loop that can run here, by name.
LOOP_FACTORIES: dict[str, LoopFactory] = {
    name: loop_factory(name) for name in LOOPS if skip_reason(name) is None
}


def loop_params() -> list[Any]:
    """Every loop's name as a pytest parameter, skipped (naming the extra) where it cannot run."""
    params = []
    for name in LOOPS:
        reason = skip_reason(name)
        marks = [pytest.mark.skip(reason=reason)] if reason is not None else []
        params.append(pytest.param(name, id=name, marks=marks))
    return params


def run_program(loop_name: str, program: Callable[[], Awaitable[T]], timeout: float = TIMEOUT) -> T:
    """Run ``program()`` on a new loop of the kind called ``loop_name``, as an
    application does (``asyncio.Runner(loop_factory=...)``), within ``timeout``
    seconds (``asyncio.timeout``, so a hang is a TimeoutError, not a stuck run).
    The loop is closed afterwards, its async generators and executor shut down."""

    async def bounded() -> T:
        # The program runs on the loop it names, not on some other the factory fell back to.
        package = LOOPS[loop_name][0].partition(".")[0]
        running = type(asyncio.get_running_loop())
        if running.__module__.partition(".")[0] != package:
            raise AssertionError(
                f"the {loop_name} loop's factory made a {running.__module__}.{running.__name__}"
            )
        async with asyncio.timeout(timeout):
            return await program()

    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        return runner.run(bounded())
