"""The completion driver: weft's protocols on Linux's io_uring.

``weft serve echo --driver completion`` and ``open_runtime("completion")``
give a :class:`CompletionRuntime`: the reactor's interface (TCP and UNIX
listen and connect, pipes, stdio, processes, datagrams, timers, calls from
other threads, signals), whose byte streams move by operations submitted to
an io_uring and acted on when they complete, as IOCP works on Windows:
multishot accepts, one receive kept armed per connection, at most one send
in flight, every buffer owned by the kernel until its completion.  Every
turn of the loop hands its submissions over in one ``io_uring_enter``.

The binding is weft's own (:mod:`weft.drivers.completion._uring`: ctypes
and mmap, no compiled code).  Where io_uring is refused (an old kernel,
``kernel.io_uring_disabled``, a container's seccomp profile),
:func:`unavailable_reason` says why in one line, ``weft drivers`` shows it,
and the ``auto`` driver picks the reactor.  See https://github.com/weft-project/weft/blob/main/docs/drivers-completion.md.
"""

from weft.drivers.completion._probe import unavailable_reason
from weft.drivers.completion._ring_poller import RingPoller
from weft.drivers.completion._runtime import CompletionRuntime
from weft.drivers.completion._transport import CompletionTransport
from weft.drivers.completion._uring import RingThreadError, RingUnavailableError

__all__ = [
    "CompletionRuntime",
    "CompletionTransport",
    "RingPoller",
    "RingThreadError",
    "RingUnavailableError",
    "unavailable_reason",
]
