"""Types of weft's optional C accelerator (weft/_speedups.c).

Import it through :mod:`weft.drivers._core.descriptor_calls`, which falls
back to ``os.read``/``os.write`` when it is not built or
``WEFT_PURE_PYTHON=1`` is set.
"""

from collections.abc import Callable
from typing import Any, Final, final

from typing_extensions import Buffer

#: The size of the buffer reads go into (the reactor's read size).
SPARE_SIZE: Final[int]
#: Reads of at most this many bytes are copied out of that buffer; larger ones take it.
COPY_LIMIT: Final[int]

@final
class DescriptorReader:
    """``reader(size)`` is ``os.read(fd, size)``, made with the GIL held (``fd`` must be non-blocking)."""

    @property
    def fd(self) -> int:
        """The descriptor this reads."""

    def __init__(self, fd: int) -> None: ...
    def __call__(self, size: int, /) -> bytes: ...

@final
class DescriptorWriter:
    """``writer(data)`` is ``os.write(fd, data)``, made with the GIL held (``fd`` must be non-blocking)."""

    @property
    def fd(self) -> int:
        """The descriptor this writes."""

    def __init__(self, fd: int) -> None: ...
    def __call__(self, data: Buffer, /) -> int: ...

@final
class Dispatcher:
    """``dispatcher(events)`` hands out one poll's ``(fd, mask)`` events as
    ``Reactor._loop``'s Python loop does: the same calls, in the same order,
    the same hooks for every exception."""

    def __init__(
        self,
        reactor: Any,
        streams: dict[int, Any],
        readers: dict[int, Callable[[], object]],
        writers: dict[int, Callable[[], object]],
        read_size: int,
        readable: int,
        read_events: int,
        write_events: int,
        epoll_fd: int = -1,
    ) -> None: ...
    def __call__(self, events: list[tuple[int, int]], /) -> None: ...
    def turn(
        self, timeout: float, before_dispatch: Callable[[], object] | None, always_ready: dict[int, int], /
    ) -> None:
        """Wait on the epoll descriptor as ``select.epoll.poll(timeout)``, run
        ``before_dispatch()`` (unless None), then hand out the events and
        ``always_ready``'s items as ``dispatcher(events)`` does."""

#: ``DescriptorTransport.write`` (drivers/reactor/_descriptor_transport.py) in C,
#: as a method: ``transport_write(transport, data)`` when called on the class.
def transport_write(transport: Any, data: Any, /) -> None: ...

#: ``DescriptorTransport.is_closing`` in C, as a method.
def transport_is_closing(transport: Any, /) -> bool: ...

@final
class LoopCalls:
    """What the methods :func:`loop_calls` makes share (the handle type, its
    slots' offsets, the slow ``call_soon`` and the exception reporter)."""

def loop_calls(
    handle_type: type, call_soon_slow: Callable[..., Any], report: Callable[..., Any], /
) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]] | None:
    """``LoopTurn.call_soon``, ``LoopTurn._run_ready`` and ``get_debug`` in C
    (drivers/reactor/_loop_turn.py), methods making handles of
    ``handle_type``; None where its fields are not plain slots."""

# The completion driver's (Linux only).

def unfilled_bytes(size: int, /) -> bytes:
    """A new bytes object of ``size`` bytes (at least 2), not zeroed: a buffer for the kernel to fill."""

@final
class RingCore:
    """An io_uring's counters and hot calls, over the queues a ``Ring`` mapped
    (see ``AcceleratedRing`` in drivers/completion/_uring.py)."""

    sq_tail: int
    submitted: int
    cq_head: int
    enters: int
    last_timeout: float
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""

    def __init__(
        self,
        fd: int,
        rings: int,
        sqes: int,
        sq_head: int,
        sq_tail: int,
        cq_head: int,
        cq_tail: int,
        cqes: int,
        sq_mask: int,
        cq_mask: int,
        capacity: int,
        tail: int,
        head: int,
        submit: Callable[[], int],
        unavailable: type[Exception],
    ) -> None: ...
    def push(self, entry: bytes, /) -> int:
        """Queue a copy of ``entry`` (64 bytes); its sequence."""
    def push_bytes(self, entry: bytes, data: bytes, /) -> int:
        """Queue ``entry`` pointed at all of ``data``; its sequence."""
    def enter(self, min_complete: int, flags: int, timeout: float, /) -> int:
        """``io_uring_enter`` with what is prepared; how many entries the kernel took."""
    def close(self) -> None:
        """Forget the mappings (before the ring unmaps them)."""

@final
class RingTurn:
    """``turn(timeout)`` is ``RingPoller.poll`` after the polls are armed; the readiness events."""

    def __init__(
        self, poller: Any, core: RingCore, streams: dict[int, Any], quick_sends: list[Any], read_size: int
    ) -> None: ...
    def __call__(self, timeout: float, /) -> list[tuple[int, int]]: ...
