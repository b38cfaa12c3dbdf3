"""The asyncio driver: weft protocols on asyncio's event loop, or on uvloop's.

:class:`AsyncioRuntime` is a :class:`~weft.drivers.Runtime` over a new
asyncio loop (``AsyncioRuntime.with_uvloop()`` for uvloop, which needs the
``uvloop`` extra); ``weft serve echo --driver asyncio`` or ``--driver
uvloop``.  Its transports (streams and datagram endpoints) keep weft's
contract over asyncio's own.  See
https://github.com/weft-project/weft/blob/main/docs/asyncio.md.
"""

from weft.drivers.asyncio._datagrams import AsyncioDatagramTransport
from weft.drivers.asyncio._runtime import AsyncioRuntime
from weft.drivers.asyncio._sockets import AsyncioListener
from weft.drivers.asyncio._transport import AsyncioTransport

__all__ = ["AsyncioDatagramTransport", "AsyncioListener", "AsyncioRuntime", "AsyncioTransport"]
