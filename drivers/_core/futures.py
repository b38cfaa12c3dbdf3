"""A result that is not there yet: the one sentinel callback code and coroutine code share.

Drivers return a :class:`Future` for operations that finish later (a TCP
connect, a process exit).  Callback code adds callbacks to it and resolves
it; coroutine code (:mod:`weft.drivers.coroutines`) awaits it: ``await
future`` gives the result or raises the exception.  Callbacks never run from inside
``set_result``: they are scheduled through the driver's ``call_soon``, as in
asyncio, so resolving a future never re-enters the code that resolved it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

from weft.protocols.errors import InvalidStateError

__all__ = ["Future"]

_T = TypeVar("_T")

_PENDING, _DONE = "pending", "done"


class Future(Generic[_T]):
    """A value or an exception, some time later."""

    __slots__ = ("_call_soon", "_callbacks", "_exception", "_result", "_state")

    def __init__(self, call_soon: Callable[..., Any]) -> None:
        self._call_soon = call_soon
        self._state = _PENDING
        self._result: _T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Future[_T]], object]] = []

    def done(self) -> bool:
        """Whether a result or an exception is set."""
        return self._state == _DONE

    def result(self) -> _T:
        """The result; raises the exception if one was set, InvalidStateError if pending."""
        if self._state != _DONE:
            raise InvalidStateError("the result is not set yet")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        """The exception set, or None; InvalidStateError if pending."""
        if self._state != _DONE:
            raise InvalidStateError("the result is not set yet")
        return self._exception

    def set_result(self, result: _T) -> None:
        """Resolve with ``result``; InvalidStateError if already done."""
        self._finish()
        self._result = result
        self._schedule_callbacks()

    def set_exception(self, exception: BaseException) -> None:
        """Resolve with ``exception``; InvalidStateError if already done."""
        self._finish()
        self._exception = exception
        self._schedule_callbacks()

    def add_done_callback(self, callback: Callable[[Future[_T]], object]) -> None:
        """Call ``callback(future)`` once done (soon, if it already is)."""
        if self._state == _DONE:
            self._call_soon(callback, self)
        else:
            self._callbacks.append(callback)

    def remove_done_callback(self, callback: Callable[[Future[_T]], object]) -> int:
        """Forget every registration of ``callback``; return how many there were."""
        kept = [registered for registered in self._callbacks if registered != callback]
        removed = len(self._callbacks) - len(kept)
        self._callbacks = kept
        return removed

    def __await__(self) -> Generator[Future[_T], None, _T]:
        """``await future``: the result, or the exception raised, once done.

        Only a :class:`weft.drivers.coroutines.Task` can wait: it is handed
        the future, adds a done callback, and resumes when it runs.
        """
        if self._state != _DONE:
            yield self
        return self.result()

    def __repr__(self) -> str:
        if self._state != _DONE:
            return "<Future pending>"
        if self._exception is not None:
            return f"<Future exception={self._exception!r}>"
        return f"<Future result={self._result!r}>"

    def _finish(self) -> None:
        if self._state == _DONE:
            raise InvalidStateError(f"{self!r} is already done")
        self._state = _DONE

    def _schedule_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            self._call_soon(callback, self)
