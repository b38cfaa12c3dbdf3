"""What a check is, how it fails, and the expectations checks are written with.

A check is a plain function of a :class:`~weft.drivers.testing.conformance._session.Session`;
it fails by raising :class:`CheckFailure` (an ``AssertionError``, so a test
runner shows it as a failed assertion) with a message that says what the
transport did and what the contract wanted, and it steps aside by raising
:class:`NotApplicable` when the transport lacks an optional feature (no
``write_eof``, no ``write_file``).  Nothing here imports a test framework:
the suite runs wherever Python does.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from weft.drivers.testing.conformance._session import Session

__all__ = [
    "Check",
    "CheckFailure",
    "Group",
    "NotApplicable",
    "expect",
    "expect_equal",
    "expect_raises",
]

_E = TypeVar("_E", bound=BaseException)


class CheckFailure(AssertionError):
    """A check found the transport doing something other than what it checks."""


class NotApplicable(Exception):
    """The check does not apply: the transport lacks the optional feature it checks."""


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

    def __call__(self, harness: Any) -> None:
        """Run the check on ``harness`` (a :class:`~weft.drivers.testing.conformance.TransportHarness`)."""
        from weft.drivers.testing.conformance._session import Session

        with Session(harness) as session:
            self.function(session)

    def __repr__(self) -> str:
        return f"<Check {self.name} ({self.group.value})>"


def checks_of(group: Group, *functions: Callable[[Session], None]) -> tuple[Check, ...]:
    """The checks of ``group``, one per function, named after it."""
    return tuple(Check(function.__name__, group, function) for function in functions)


# ------------------------------------------------------------ expectations


def expect(condition: object, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` is true."""
    if not condition:
        raise CheckFailure(message)


def expect_equal(actual: object, expected: object, what: str) -> None:
    """Fail unless ``actual == expected``, saying what differed (long bytes: lengths, first difference)."""
    if actual == expected:
        return
    raise CheckFailure(
        f"{what}: expected {_show(expected)}, got {_show(actual)}{_first_difference(actual, expected)}"
    )


def expect_raises(kind: type[_E], call: Callable[[], object], what: str) -> _E:
    """Fail unless ``call()`` raises ``kind``; return the exception raised."""
    try:
        call()
    except kind as exc:
        return exc
    except Exception as exc:
        raise CheckFailure(f"{what}: expected {kind.__name__}, got {type(exc).__name__}: {exc}") from exc
    raise CheckFailure(f"{what}: expected {kind.__name__}, and nothing was raised")


def _show(value: object) -> str:
    if isinstance(value, bytes | bytearray) and len(value) > 40:
        return f"{len(value)} bytes starting {bytes(value[:16])!r}"
    return repr(value)


def _first_difference(actual: object, expected: object) -> str:
    if not (isinstance(actual, bytes | bytearray) and isinstance(expected, bytes | bytearray)):
        return ""
    if max(len(actual), len(expected)) <= 40:
        return ""
    for index, (mine, theirs) in enumerate(zip(actual, expected, strict=False)):
        if mine != theirs:
            return f" (first difference at byte {index})"
    return f" (one is a prefix of the other, at byte {min(len(actual), len(expected))})"
