"""The coroutine driver: the reactor, with one task per connection moving its bytes.

``weft serve echo --driver coroutine`` and ``open_runtime("coroutine")``
give a :class:`CoroutineRuntime`.  It is the reactor in every respect but
one: its stream transports (TCP, UNIX, pipes, stdio, processes, PTYs) are
:class:`~weft.drivers.coroutine._task_transport.TaskTransport`, whose bytes
a :class:`~weft.drivers.coroutines.Task` moves.  Any weft protocol runs on
it unchanged, and coroutine code (``spawn``, ``open_tcp``, ``serve_tcp``...)
runs on it beside callback code: the runtime is a host like any other.

Why have it, when the reactor runs the same protocols with less work per
message?  It is the proof that coroutines sit on top of the callback layer
and can carry the I/O themselves, and the place where a program that is
mostly coroutines pays one scheduler rather than two.  The benchmarks
(https://github.com/weft-project/weft/blob/main/docs/performance.md) say what a task per connection costs.
"""

from __future__ import annotations

from weft.drivers.coroutine._task_transport import TaskReadPipeTransport, TaskTransport
from weft.drivers.reactor._descriptor_transport import DescriptorTransport
from weft.drivers.reactor._loop import Reactor

__all__ = ["CoroutineRuntime"]


class CoroutineRuntime(Reactor):
    """The reactor, with each connection's bytes moved by a task of its own.

    Conforms to :class:`weft.drivers._runtime.Runtime` and is a coroutine
    host (``now``, ``call_soon``, ``call_later``, ``run_until``).
    """

    name = "coroutine"
    stream_transport_class: type[DescriptorTransport] = TaskTransport
    read_only_transport_class: type[DescriptorTransport] = TaskReadPipeTransport
