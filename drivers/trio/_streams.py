"""A weft coroutine :class:`~weft.drivers.coroutines.Stream` as a ``trio.abc.HalfCloseableStream``.

:class:`TrioStream` lets Trio code (anything written against Trio's
stream interface: ``trio.SSLStream``, a protocol library, a test of
``trio.testing``'s) use a weft stream: one a weft listener accepted, one
``open_tcp`` connected, one over pipes or a child process, on the trio
driver.  Each Trio call runs the weft stream's own coroutine as a weft task
(:func:`~weft.drivers.trio._interop.from_weft`) and carries the outcome
back in Trio's terms:

=======================================  ===================================================
weft                                      Trio, through the adapter
=======================================  ===================================================
``await stream.receive(n)``               ``await receive_some(n)`` (``None``: 64 KiB)
``await stream.send(data)``               ``await send_all(data)``
``stream.send_eof()`` (synchronous)       ``await send_eof()``
``await stream.close()``                  ``await aclose()`` (cancelled: ``stream.abort()``)
``await stream.send(b"")``                ``await wait_send_all_might_not_block()``
=======================================  ===================================================

and the errors: a second concurrent ``receive_some`` raises
``trio.BusyResourceError`` (weft's stream raises its own BusyResourceError
for a second reader); so does a second concurrent sender (weft's stream
lets several tasks send at once, Trio's contract does not); use after
``aclose`` (or after ``send_eof``, for sending) raises
``trio.ClosedResourceError``; a connection that ended under the stream (a
reset, a peer gone, weft's stream closed by another owner) raises
``trio.BrokenResourceError``, with the ``OSError`` as its cause.  The
differences between the two contracts that remain are in
https://github.com/weft-project/weft/blob/main/docs/drivers-trio.md.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import trio

from weft.drivers.coroutines._host import Host
from weft.drivers.coroutines._streams import Stream
from weft.drivers.trio._interop import from_weft
from weft.protocols import errors

__all__ = ["DEFAULT_RECEIVE_SIZE", "TrioStream"]

#: What ``receive_some()`` asks for when given no size (Trio's own default).
DEFAULT_RECEIVE_SIZE = 65536

_T = TypeVar("_T")


class _Guard:
    """One task at a time in a direction; a second one gets ``trio.BusyResourceError``."""

    __slots__ = ("_busy", "_what")

    def __init__(self, what: str) -> None:
        self._what = what
        self._busy = False

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._busy:
            raise trio.BusyResourceError(f"another task is {self._what} this stream")
        self._busy = True
        try:
            yield
        finally:
            self._busy = False


class TrioStream(trio.abc.HalfCloseableStream):
    """``stream`` (a weft coroutine stream of ``host``, a :class:`~weft.drivers.trio.TrioRuntime`)
    as a Trio half-closeable stream; see the module docstring."""

    def __init__(self, stream: Stream, host: Host) -> None:
        self.stream = stream
        self._host = host
        self._sending = _Guard("sending on")
        self._receiving = _Guard("receiving from")
        self._closed = False
        self._eof_sent = False

    # -------------------------------------------------------------- sending

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of ``data``: returns once the weft stream's buffer is under its low-water mark."""
        with self._sending.held():
            self._check_sendable()
            await trio.lowlevel.checkpoint_if_cancelled()
            if not len(data):
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            await self._call(self.stream.send(bytes(data)))

    async def wait_send_all_might_not_block(self) -> None:
        """Until the weft stream's write buffer is under its low-water mark."""
        with self._sending.held():
            self._check_sendable()
            await self._call(self.stream.send(b""))

    async def send_eof(self) -> None:
        """Half-close: the peer reads EOF after what was sent; receiving goes on.  Twice is harmless."""
        with self._sending.held():
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            await trio.lowlevel.checkpoint()
            if self._eof_sent:
                return
            self._eof_sent = True
            with self._translated():
                self.stream.send_eof()

    def _check_sendable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        if self._eof_sent:
            raise trio.ClosedResourceError("cannot send after send_eof()")

    # ------------------------------------------------------------ receiving

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` bytes as soon as some have arrived; ``b""`` at EOF."""
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        elif not isinstance(max_bytes, int) or isinstance(max_bytes, bool):
            raise TypeError(f"max_bytes must be an int >= 1, not {max_bytes!r}")
        elif max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, not {max_bytes!r}")
        with self._receiving.held():
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            return await self._call(self.stream.receive(max_bytes))

    # -------------------------------------------------------------- closing

    async def aclose(self) -> None:
        """Close after flushing what was sent, and wait for the connection's end.

        Cancelled (``trio.aclose_forcefully``, or a cancelled scope), it
        aborts the connection instead, and is still closed.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            await from_weft(self._host, self.stream.close())
        except trio.Cancelled:
            self.stream.abort()
            raise
        except (errors.WeftError, OSError):
            self.stream.abort()  # ended already, one way or another: closed all the same

    # -------------------------------------------------------------- details

    async def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        with self._translated():
            return await from_weft(self._host, coroutine)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """weft's errors as Trio's (see the module docstring)."""
        try:
            yield
        except errors.BusyResourceError as exc:
            raise trio.BusyResourceError(str(exc)) from exc
        except errors.WriteAfterEofError as exc:
            raise trio.ClosedResourceError(str(exc)) from exc
        except errors.ClosedResourceError as exc:
            if self._closed:
                raise trio.ClosedResourceError(str(exc)) from None
            raise trio.BrokenResourceError(f"the connection ended: {exc}") from exc
        except OSError as exc:
            raise trio.BrokenResourceError(f"the connection broke: {exc}") from exc

    def __repr__(self) -> str:
        return f"<TrioStream over {self.stream!r}>"
