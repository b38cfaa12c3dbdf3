"""The reactor seen as a ``selectors`` selector, for the asyncio loop built on it.

asyncio's selector loop keeps its readers and writers (``add_reader``, the
``sock_*`` coroutines, a listening socket's accepts, the self-pipe) in a
selector: ``register``/``modify``/``unregister`` with a key holding the
callbacks, then ``select(timeout)`` once per turn.  :class:`ReactorSelector`
is that selector over a reactor: a registration becomes a reader or writer
on the reactor, and ``select`` runs one turn of the reactor, which dispatches
its own transports inline (the fast path, no handle per event) and reports
back the events of the fds registered here.

So one poller serves both: the reactor's transports and whatever asyncio's
own code watches.  A key whose mask does not change (asyncio replacing a
reader) changes nothing in the poller, so swapping callbacks costs no
system call.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weft.drivers.reactor._loop import Reactor

__all__ = ["ReactorSelector"]


def _nothing() -> None:
    """Nothing to run between the poll and the dispatch."""

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


def _fd_of(fileobj: Any) -> int:
    """The descriptor of ``fileobj`` (an int, or anything with ``fileno()``), as selectors take it."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class _KeyMap(Mapping[Any, selectors.SelectorKey]):
    """``get_map()``: the keys by file object (or fd)."""

    def __init__(self, keys: dict[int, selectors.SelectorKey]) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        try:
            return self._keys[_fd_of(fileobj)]
        except ValueError:
            raise KeyError(fileobj) from None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._keys)


class ReactorSelector(selectors.BaseSelector):
    """A selector whose registrations are the reactor's readers and writers,
    and whose ``select`` is one turn of the reactor."""

    def __init__(self, reactor: Reactor) -> None:
        self._reactor = reactor
        self._keys: dict[int, selectors.SelectorKey] = {}
        self._map = _KeyMap(self._keys)
        # The events of this turn, per fd: filled by the reactor's callbacks.
        self._events: dict[int, int] = {}

    @property
    def reactor(self) -> Reactor:
        """The reactor underneath."""
        return self._reactor

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        """Watch ``fileobj`` for ``events`` (EVENT_READ, EVENT_WRITE or both)."""
        if not events or events & ~(_READ | _WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        fd = _fd_of(fileobj)
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._watch(fd, 0, events)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        """Stop watching ``fileobj``; its key is returned."""
        fd = _fd_of(fileobj)
        key = self._keys.pop(fd, None)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        self._watch(fd, key.events, 0)
        self._events.pop(fd, None)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        """Change what ``fileobj`` is watched for, or its data (no system call if only the data changes)."""
        fd = _fd_of(fileobj)
        key = self._keys.get(fd)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        if not events or events & ~(_READ | _WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        self._watch(fd, key.events, events)
        key = key._replace(events=events, data=data)
        self._keys[fd] = key
        return key

    def _watch(self, fd: int, old: int, new: int) -> None:
        reactor = self._reactor
        if (old ^ new) & _READ:
            reactor._set_reader(fd, partial(self._ready, fd, _READ) if new & _READ else None, None)
        if (old ^ new) & _WRITE:
            reactor._set_writer(fd, partial(self._ready, fd, _WRITE) if new & _WRITE else None, None)

    def _ready(self, fd: int, event: int) -> None:
        events = self._events
        events[fd] = events.get(fd, 0) | event

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Run one turn of the reactor (waiting at most ``timeout`` seconds,
        forever if None); the keys registered here that became ready.

        The reactor must be held running by whoever turns it (weft's event
        loop does, for the whole of ``run_forever``)."""
        return self.select_around(timeout, _nothing)

    def select_around(
        self, timeout: float | None, before_dispatch: Callable[[], object]
    ) -> list[tuple[selectors.SelectorKey, int]]:
        """:meth:`select`, calling ``before_dispatch()`` between the poll and
        the reactor's handing out of its events: weft's event loop runs
        there what was ready before the poll, so that a turn keeps asyncio's
        order (what was ready, then the poll's I/O) although the reactor's
        transports read inline."""
        self._reactor._turn_for_host(None if timeout is None else max(timeout, 0.0), before_dispatch)
        events = self._events
        if not events:
            return []
        keys = self._keys
        ready = []
        for fd, mask in events.items():
            key = keys.get(fd)
            if key is not None and mask & key.events:
                ready.append((key, mask & key.events))
        events.clear()
        return ready

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        """The registered keys."""
        return self._map

    def close(self) -> None:
        """Forget every key and close the reactor."""
        for fd, key in list(self._keys.items()):
            self._watch(fd, key.events, 0)
        self._keys.clear()
        self._events.clear()
        self._reactor.close()
