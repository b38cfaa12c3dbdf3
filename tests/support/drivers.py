"""The drivers the tests run on: one registry, selected by capability.

:data:`weft.drivers.DRIVERS` is the registry, for the tests as for the
command line: each :class:`~weft.drivers.DriverInfo` declares what its
driver offers (the capability protocols of :mod:`weft.drivers`, and
``FileWriteTransport`` when its transports have ``write_file``), and
``tests/drivers/test_capabilities.py`` checks each declaration against the runtime
it opens.  A test says what it needs, as Twisted's ``requiredInterfaces``
does, and never lists drivers itself::

    @pytest.mark.drivers(requires={TCPRuntime, SignalsRuntime})
    def test_serve(driver: str) -> None: ...        # each driver's name

    @pytest.mark.drivers(requires={ProcessRuntime})
    def test_spawn(runtime: Runtime) -> None: ...   # or one open runtime each

It then runs once per registered driver that offers all of ``requires``.  A
driver that cannot run here (uvloop not installed) is a skipped case whose
reason names the pip extra, never a case that silently disappears.  Adding a
driver is one entry in ``DRIVERS``: the matrix then says what it must pass.

``lacks=`` selects the drivers without a capability, to test how they
refuse it.  ``only=`` names drivers, for a file that tests one driver's own behaviour
(the reactor's internals, the asyncio adapter); ``exclude=`` leaves some out,
each with the reason why (the mapping's values), for a promise a driver
deliberately keeps another way.  The mark is ``tests/conftest.py``'s; the
functions below are for fixtures that combine drivers with other parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pytest

from weft.drivers import DRIVERS, PipesRuntime, SignalsRuntime, TCPRuntime

__all__ = ["CONNECTS", "SERVES", "driver_names", "driver_params", "param", "skip_reason"]


def driver_names(
    *,
    requires: Collection[type] = (),
    lacks: Collection[type] = (),
    only: Collection[str] | None = None,
    exclude: Mapping[str, str] | None = None,
) -> list[str]:
    """The registered drivers offering every one of ``requires``, in the registry's order.

    ``lacks`` keeps those offering none of its capabilities (to test how a
    runtime refuses what it cannot do); ``only`` keeps those named;
    ``exclude`` maps a name to the reason it is left out.  An unknown name in
    either is an error (a typo would otherwise select nothing, or everything).
    """
    for name in [*(only or ()), *(exclude or {})]:
        if name not in DRIVERS:
            raise KeyError(f"no driver called {name!r} in weft.drivers.DRIVERS ({', '.join(DRIVERS)})")
    return [
        name
        for name, info in DRIVERS.items()
        if info.offers(*requires)
        and info.capabilities.isdisjoint(lacks)
        and (only is None or name in only)
        and name not in (exclude or {})
    ]


def skip_reason(driver: str) -> str | None:
    """Why ``driver`` cannot run here (naming the pip extra), or None."""
    return DRIVERS[driver].unavailable_reason()


def param(driver: str, *values: Any, id: str | None = None) -> Any:
    """``pytest.param(*values)`` (the driver's name by default), skipped when
    ``driver`` cannot run here; the id is ``id`` or the driver's name."""
    reason = skip_reason(driver)
    marks = [pytest.mark.skip(reason=reason)] if reason is not None else []
    return pytest.param(*(values or (driver,)), id=id or driver, marks=marks)


def driver_params(
    *,
    requires: Collection[type] = (),
    lacks: Collection[type] = (),
    only: Collection[str] | None = None,
    exclude: Mapping[str, str] | None = None,
) -> list[Any]:
    """:func:`driver_names` as pytest parameters (each a name), for
    ``parametrize`` or a fixture's ``params``."""
    return [param(name) for name in driver_names(requires=requires, lacks=lacks, only=only, exclude=exclude)]


#: What ``serve()`` and ``weft serve`` need of a driver: TCP, and signals to stop on.
SERVES: frozenset[type] = frozenset({TCPRuntime, SignalsRuntime})
#: What ``weft connect`` needs: TCP, its stdin and stdout as pipes, and signals.
CONNECTS: frozenset[type] = frozenset({TCPRuntime, PipesRuntime, SignalsRuntime})
