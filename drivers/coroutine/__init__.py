"""The coroutine driver: the reactor, with one task per connection moving its bytes.

:class:`CoroutineRuntime` is a :class:`~weft.drivers.Runtime`
(``weft serve echo --driver coroutine``): each connection's reads and
writes are done by a :class:`~weft.drivers.coroutines.Task` of its own,
which awaits readiness on the reactor.  The coroutine library it uses,
:mod:`weft.drivers.coroutines`, runs on every driver.
"""

from weft.drivers.coroutine._runtime import CoroutineRuntime
from weft.drivers.coroutine._task_transport import TaskReadPipeTransport, TaskTransport

__all__ = ["CoroutineRuntime", "TaskReadPipeTransport", "TaskTransport"]
