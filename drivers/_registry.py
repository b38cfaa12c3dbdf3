"""The drivers weft knows, by name, and whether each can run here.

``open_runtime("reactor")`` gives a running driver (a
:class:`~weft.drivers._runtime.Runtime`); the command line's ``--driver`` and
:func:`weft.drivers.serve` go through here.  A driver whose optional
dependency is missing says which extra installs it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from weft.drivers._runtime import (
    DatagramRuntime,
    LoopRuntime,
    PipesRuntime,
    ProcessRuntime,
    Runtime,
    SignalsRuntime,
    TCPRuntime,
    ThreadsRuntime,
    UNIXRuntime,
)
from weft.protocols.contract import FileWriteTransport
from weft.protocols.errors import ArgumentError

__all__ = ["AUTO", "DRIVERS", "DriverInfo", "UnavailableDriverError", "auto_driver", "open_runtime"]


class UnavailableDriverError(ArgumentError):
    """A driver was asked for that cannot run here (a missing optional dependency)."""


@dataclass(frozen=True)
class DriverInfo:
    """One driver: its name, what it is, what it offers, and how to make one."""

    name: str
    description: str
    #: Modules it needs beyond the standard library and weft.
    requires: tuple[str, ...]
    #: The pip extra that installs them (``pip install 'weft[uvloop]'``).
    extra: str | None
    opener: Callable[[], Runtime]
    #: What it offers: the capability protocols of :mod:`weft.drivers._runtime`
    #: its runtime satisfies, and ``FileWriteTransport`` when every transport
    #: it hands out has ``write_file``.  Declared, so that it can be read
    #: without importing the driver (a missing extra); the test suite checks
    #: each declaration against the runtime it opens.
    capabilities: frozenset[type] = frozenset()
    #: Whether the running system allows it, beyond its modules: a cheap,
    #: cached check that returns the one-line reason it cannot run (io_uring
    #: refused), or None.  Asked only once the modules are there.
    probe: Callable[[], str | None] | None = None

    def offers(self, *capabilities: type) -> bool:
        """Whether it offers every one of ``capabilities``."""
        return self.capabilities.issuperset(capabilities)

    def missing(self) -> list[str]:
        """The required modules that cannot be imported here."""
        return [module for module in self.requires if not _importable(module)]

    def available(self) -> bool:
        """Whether it can run here."""
        return self.unavailable_reason() is None

    def unavailable_reason(self) -> str | None:
        """Why it cannot run here (naming the pip extra to install, or what the
        system refuses); None when it can."""
        if missing := self.missing():
            hint = f": pip install 'weft[{self.extra}]'" if self.extra else ""
            return f"the {self.name} driver needs {', '.join(missing)}, which is not installed{hint}"
        if self.probe is not None and (refusal := self.probe()) is not None:
            return f"the {self.name} driver cannot run here: {refusal}"
        return None

    def open(self) -> Runtime:
        """A new runtime of this driver; UnavailableDriverError if it cannot run here."""
        if (reason := self.unavailable_reason()) is not None:
            raise UnavailableDriverError(reason)
        return self.opener()


def _importable(module: str) -> bool:
    """Whether ``module`` (dotted names too) can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _reactor() -> Runtime:
    from weft.drivers.reactor import Reactor

    return Reactor()


def _asyncio() -> Runtime:
    from weft.drivers.asyncio._runtime import AsyncioRuntime

    return AsyncioRuntime()


def _uvloop() -> Runtime:
    from weft.drivers.asyncio._runtime import AsyncioRuntime

    return AsyncioRuntime.with_uvloop()


def _coroutine() -> Runtime:
    from weft.drivers.coroutine._runtime import CoroutineRuntime

    return CoroutineRuntime()


def _trio() -> Runtime:
    from weft.drivers.trio import TrioRuntime

    return TrioRuntime()


def _blocking() -> Runtime:
    from weft.drivers.blocking import BlockingRuntime

    return BlockingRuntime()


def _completion() -> Runtime:
    from weft.drivers.completion import CompletionRuntime, RingUnavailableError

    try:
        return CompletionRuntime()
    except RingUnavailableError as exc:
        reason = f"the completion driver cannot run here: io_uring is unavailable: {exc.strerror or exc}"
        raise UnavailableDriverError(reason) from exc


def _completion_refusal() -> str | None:
    from weft.drivers.completion import unavailable_reason

    return unavailable_reason()


def _twisted() -> Runtime:
    from weft.drivers.twisted import TwistedRuntime

    return TwistedRuntime()


#: What every operating-system driver offers (:class:`~weft.drivers._runtime.Runtime`).
_OS_DRIVER = frozenset(
    {LoopRuntime, ThreadsRuntime, TCPRuntime, UNIXRuntime, PipesRuntime, DatagramRuntime, SignalsRuntime}
)

#: Every driver, in the order ``weft drivers`` lists them.
DRIVERS: dict[str, DriverInfo] = {
    "reactor": DriverInfo(
        "reactor",
        "weft's callback reactor on epoll/poll (the default)",
        (),
        None,
        _reactor,
        _OS_DRIVER | {ProcessRuntime, FileWriteTransport},
    ),
    "asyncio": DriverInfo(
        "asyncio",
        "asyncio's default event loop, through weft's adapter",
        (),
        None,
        _asyncio,
        _OS_DRIVER | {FileWriteTransport},
    ),
    "uvloop": DriverInfo(
        "uvloop",
        "uvloop (libuv) through weft's asyncio adapter",
        ("uvloop",),
        "uvloop",
        _uvloop,
        _OS_DRIVER | {FileWriteTransport},
    ),
    "coroutine": DriverInfo(
        "coroutine",
        "the reactor with one coroutine task per connection moving its bytes",
        (),
        None,
        _coroutine,
        _OS_DRIVER | {ProcessRuntime, FileWriteTransport},
    ),
    "completion": DriverInfo(
        "completion",
        "the reactor on Linux io_uring: operations submitted, completions acted on",
        (),
        None,
        _completion,
        _OS_DRIVER | {ProcessRuntime, FileWriteTransport},
        probe=_completion_refusal,
    ),
    "blocking": DriverInfo(
        "blocking",
        "threads and blocking sockets: a reader and a writer thread per connection",
        (),
        None,
        _blocking,
        _OS_DRIVER | {ProcessRuntime, FileWriteTransport},
    ),
    "twisted": DriverInfo(
        "twisted",
        "a new Twisted reactor (epoll on Linux), through weft's adapter",
        # Not just "twisted": a twisted/plugins directory left on the path
        # (weft's own, in an editable install) makes that an empty namespace.
        ("twisted.internet",),
        "twisted",
        _twisted,
        _OS_DRIVER | {ProcessRuntime, FileWriteTransport},
    ),
    "trio": DriverInfo(
        "trio",
        "Trio: a task per connection over Trio's streams and sockets",
        ("trio",),
        "trio",
        _trio,
        _OS_DRIVER | {ProcessRuntime, FileWriteTransport},
    ),
}


#: The name that picks the best driver that runs here (:func:`auto_driver`).
AUTO = "auto"

#: What ``auto`` picks, in order of preference: the first that can run here.
#: The reactor comes first: measured on small messages (https://github.com/weft-project/weft/blob/main/docs/performance.md,
#: "The completion driver"), weft's io_uring driver spends more CPU per
#: message than the reactor's epoll, so it is a choice to make, not a default.
AUTO_PREFERENCE: tuple[str, ...] = ("reactor", "completion")


def auto_driver() -> str:
    """The driver ``auto`` picks here: the first of :data:`AUTO_PREFERENCE`
    that can run (the reactor always can)."""
    for name in AUTO_PREFERENCE:
        if DRIVERS[name].available():
            return name
    return "reactor"


def open_runtime(name: str = "reactor") -> Runtime:
    """A new runtime of the driver called ``name`` (``"auto"``: :func:`auto_driver`'s).

    Raises :class:`UnavailableDriverError` (an ArgumentError) for a driver
    that cannot run here, and ArgumentError for a name nobody knows.
    """
    if name == AUTO:
        name = auto_driver()
    try:
        info = DRIVERS[name]
    except KeyError:
        choices = ", ".join([*DRIVERS, AUTO])
        raise ArgumentError(f"no driver called {name!r}; choose from {choices}") from None
    return info.open()
