"""What a check is: a function of a session, with a name that says what it checks, and a group.

A check is a plain function of a :class:`~weft.drivers.testing.conformance._session.Session`
that fails by raising :class:`~weft.drivers.testing.conformance._expectations.CheckFailure`
and steps aside by raising :class:`~weft.drivers.testing.conformance._expectations.NotApplicable`.
Nothing here imports a test framework: the suite runs wherever Python does.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from weft.drivers.testing.conformance._harness import TransportHarness
from weft.drivers.testing.conformance._session import Session

__all__ = ["AnyCheck", "Check", "Group", "checks_of"]


class Group(enum.Enum):
    """Which promise a check holds a transport to."""

    #: The harness itself behaves (its ``run_until`` gives up when it should).
    HARNESS = "harness"
    #: What asyncio's own transports do: every adapter of an asyncio-style
    #: loop (asyncio, uvloop, Twisted, Trio) must pass these.
    ASYNCIO_CONTRACT = "asyncio contract"
    #: What weft promises beyond asyncio: every weft driver passes these too.
    WEFT_PROMISE = "weft promise"


@dataclass(frozen=True)
class Check:
    """One check of the suite: a name that says what it checks, its group, and its code.

    Calling it runs it once against a harness (connecting, checking, then
    ending whatever it connected); it raises :class:`CheckFailure`,
    :class:`NotApplicable`, or whatever unexpected exception the transport
    raised.  :func:`~weft.drivers.testing.conformance.run_checks` runs many
    and reports each outcome instead.
    """

    name: str
    group: Group
    function: Callable[[Session], None]

    @property
    def description(self) -> str:
        """What the check proves, from its docstring."""
        return inspect.cleandoc(self.function.__doc__ or self.name)

    def __call__(self, harness: TransportHarness) -> None:
        """Run the check on ``harness``, ending whatever it connected."""
        with Session(harness) as session:
            self.function(session)

    def __repr__(self) -> str:
        return f"<Check {self.name} ({self.group.value})>"


def checks_of(group: Group, *functions: Callable[[Session], None]) -> tuple[Check, ...]:
    """The checks of ``group``, one per function, named after it."""
    return tuple(Check(function.__name__, group, function) for function in functions)


class AnyCheck(Protocol):
    """What running and reporting need of a check: a stream :class:`Check`, or a
    datagram check (:class:`~weft.drivers.testing.conformance.DatagramCheck`)."""

    @property
    def name(self) -> str:
        """What it checks, as an identifier."""
        ...

    @property
    def group(self) -> Group:
        """Which promise it holds a transport to."""
        ...

    @property
    def description(self) -> str:
        """What it proves."""
        ...

    def __call__(self, harness: Any) -> None:
        """Run it once against ``harness``."""
