"""How a check fails or steps aside, and the expectations checks are written with.

A check fails by raising :class:`CheckFailure` (an ``AssertionError``, so a
test runner shows it as a failed assertion) with a message that says what
the transport did and what the check wanted, and steps aside by raising
:class:`NotApplicable` when the transport lacks an optional feature (no
``write_eof``, no ``write_file``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from weft.protocols.errors import WeftError

__all__ = ["CheckFailure", "NotApplicable", "expect", "expect_equal", "expect_raises"]

_E = TypeVar("_E", bound=BaseException)


class CheckFailure(WeftError, AssertionError):
    """A check found the transport doing something other than what it checks.

    An ``AssertionError`` too, so a test runner shows it as a failed assertion.
    """


class NotApplicable(WeftError):
    """The check does not apply: the transport lacks the optional feature it checks."""


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
