"""A connection's start and end, at debug level, on its driver's logger.

Each driver's stream transports call :func:`log_opened` just before the
protocol's ``connection_made`` and :func:`log_closed` just before its
``connection_lost``: once per connection, never per read or write.  With
debug off (the default) each costs one ``isEnabledFor`` (a dictionary
lookup in the logger's cache), and the peer's address is not even
formatted.

The lines, with the addresses as extras for a structured log
(``weft --log-format json``: ``"event": "open"``, ``"peer"``, ``"local"``)::

    connection open with 127.0.0.1:51234 (local 127.0.0.1:8000)
    connection closed with 127.0.0.1:51234 (local 127.0.0.1:8000)
    connection lost with 127.0.0.1:51234 (local 127.0.0.1:8000): Connection reset by peer
"""

from __future__ import annotations

import logging
from typing import Any

from weft.drivers._core.socket_binding import format_address

__all__ = ["log_closed", "log_opened"]

_DEBUG = logging.DEBUG


def log_opened(logger: logging.Logger, transport: Any) -> None:
    """Say at debug level that ``transport``'s connection has started."""
    if logger.isEnabledFor(_DEBUG):
        peer, local = _ends(transport)
        logger.debug(
            "connection open with %s (local %s)",
            peer,
            local,
            extra={"event": "open", "peer": peer, "local": local},
        )


def log_closed(logger: logging.Logger, transport: Any, exc: BaseException | None) -> None:
    """Say at debug level that ``transport``'s connection has ended (with ``exc``, if it failed)."""
    if logger.isEnabledFor(_DEBUG):
        peer, local = _ends(transport)
        details = {"event": "close", "peer": peer, "local": local}
        if exc is None:
            logger.debug("connection closed with %s (local %s)", peer, local, extra=details)
        else:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            details["error"] = reason
            logger.debug("connection lost with %s (local %s): %s", peer, local, reason, extra=details)


def _ends(transport: Any) -> tuple[str, str]:
    """The peer's address and ours, formatted (``"pipe"`` where there is no socket)."""
    try:
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
    except Exception:  # a transport half torn down: the line matters less than the caller
        return "?", "?"
    return _address(peer), _address(local)


def _address(address: Any) -> str:
    if address is None:
        return "pipe"  # no socket: pipes, stdio, a child's pipes
    if address in ("", b""):
        return "(unnamed)"  # a UNIX-socket client that did not bind
    return format_address(address)
