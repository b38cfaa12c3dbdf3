"""The blocking driver: weft protocols on blocking sockets, pipes and processes, with threads.

:class:`BlockingRuntime` is a :class:`~weft.drivers._runtime.Runtime`
(``weft serve echo --driver blocking``).  :func:`connect_tcp`,
:func:`connect_unix`, :func:`connect_pipes` and :func:`spawn_process` are for
scripts and REPLs: a connection with no event loop to run, where callbacks
happen while you wait::

    with connect_tcp(PubSubClientProtocol(), "127.0.0.1", 8000, timeout=5) as conn:
        conn.protocol.subscribe(b"news")
        conn.wait_for(lambda: replies, timeout=5)

See https://github.com/weft-project/weft/blob/main/docs/drivers-blocking.md.
"""

from weft.drivers.blocking._client import Connection, connect_pipes, connect_tcp, connect_unix, spawn_process
from weft.drivers.blocking._datagrams import ThreadedDatagramTransport
from weft.drivers.blocking._runtime import BlockingRuntime
from weft.drivers.blocking._sockets import DEFAULT_MAX_CONNECTIONS, BlockingListener
from weft.drivers.blocking._transport import ThreadedTransport

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "BlockingListener",
    "BlockingRuntime",
    "Connection",
    "ThreadedDatagramTransport",
    "ThreadedTransport",
    "connect_pipes",
    "connect_tcp",
    "connect_unix",
    "spawn_process",
]
