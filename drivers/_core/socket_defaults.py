"""What every driver's sockets share: the read size, the connect timeout, an abortive close, names.

One place for them, so that the drivers cannot drift apart.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "LINGER_ZERO", "READ_SIZE", "name_or_none"]

#: How much one read asks for: the write buffer's default high-water mark
#: too, so one read's echo fits under it.
READ_SIZE = 64 * 1024

#: Seconds a ``connect_*`` waits for the peer before ``TimeoutError``.
DEFAULT_CONNECT_TIMEOUT = 30.0

#: ``SO_LINGER`` on, with a zero timeout: ``close()`` then sends RST and
#: drops unsent data (``abort()`` on a TCP socket).
LINGER_ZERO = struct.pack("ii", 1, 0)


def name_or_none(getter: Callable[[], Any]) -> Any:
    """``getter()`` (``sock.getpeername``, ...), or None if the socket cannot say (``OSError``)."""
    try:
        return getter()
    except OSError:
        return None
