"""Serving a datagram protocol until told to stop: ``weft serve echo --udp``.

``serve_datagrams(DatagramEchoProtocol)`` opens one UDP endpoint (on
127.0.0.1:8000 unless told otherwise) or one UNIX datagram socket, says so
with one line on stderr (``listening on udp 127.0.0.1:8000``), and runs
until SIGINT, SIGTERM or SIGHUP.  Then it stops gracefully, as :func:`~weft.drivers.serve`
does for streams: the endpoint is closed, so that the datagrams already
queued for the kernel still go out, for up to ``grace`` seconds; then it is
aborted.  A datagram server has no connections to wait for, so this is
quick.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

from weft.drivers._core.signal_handlers import stop_signals
from weft.drivers._core.socket_binding import format_address
from weft.drivers._registry import open_runtime
from weft.drivers._runtime import ProtocolFactory
from weft.drivers._serving import DEFAULT_GRACE, DEFAULT_HOST, DEFAULT_PORT, in_context
from weft.protocols.contract import DatagramTransport
from weft.protocols.errors import ArgumentError

__all__ = ["announce_datagrams", "serve_datagrams"]

# The stream server's logger: ``weft serve`` prints its records (``weft: stopping``).
logger = logging.getLogger("weft.drivers")

#: Seconds opening the endpoint may take (a name to look up) before giving up.
OPEN_TIMEOUT = 30.0


def announce_datagrams(transport: DatagramTransport) -> None:
    """Print ``listening on udp 127.0.0.1:8000`` (or ``unix datagram PATH``) on stderr."""
    address = transport.get_extra_info("sockname")
    kind = "udp" if isinstance(address, tuple) else "unix datagram"
    print(f"listening on {kind} {format_address(address)}", file=sys.stderr, flush=True)


def serve_datagrams(
    factory: ProtocolFactory,
    *,
    host: str | None = DEFAULT_HOST,
    port: int | None = None,
    unix: str | None = None,
    driver: str = "reactor",
    grace: float = DEFAULT_GRACE,
    on_ready: Callable[[DatagramTransport], object] | None = announce_datagrams,
) -> None:
    """Serve ``factory``'s datagram protocol on one endpoint until SIGINT, SIGTERM or SIGHUP.

    UDP on ``host:port`` (port 8000 unless given; 0 picks a free one;
    host ``None`` or ``""``: every interface), or a UNIX datagram socket at
    ``unix``.  ``on_ready(transport)`` runs once the endpoint is open: by
    default :func:`announce_datagrams`.  Raises ``OSError`` when the
    endpoint cannot be opened (the address in the message) and
    :class:`~weft.protocols.errors.ArgumentError` for a bad argument or a
    driver that cannot run here.  Signal handlers are set only when called
    from the main thread.
    """
    if port is not None and unix is not None:
        raise ArgumentError("serve datagrams on a port or a UNIX socket, not both")
    if not grace >= 0:
        raise ArgumentError(f"grace must be a number of seconds >= 0, not {grace!r}")
    runtime = open_runtime(driver)
    try:
        if unix is not None:
            where = f"unix datagram {unix}"
            opening = runtime.open_unix_datagram(factory, unix)
        else:
            address = (host or "", DEFAULT_PORT if port is None else port)
            where = f"udp {format_address(address)}"
            opening = runtime.open_udp(factory, address)
        if not runtime.run_until(opening.done, OPEN_TIMEOUT):
            raise TimeoutError(f"cannot listen on {where}: not open after {OPEN_TIMEOUT:g} s")
        try:
            transport = opening.result()
        except OSError as exc:
            # The bare error, in this command's words (the driver's names the address its own way).
            bare = exc if exc.errno is None else OSError(exc.errno, os.strerror(exc.errno))
            raise in_context(bare, f"cannot listen on {where}") from exc
        if threading.current_thread() is threading.main_thread():
            for signum in stop_signals():
                runtime.add_signal_handler(signum, runtime.stop)
        if on_ready is not None:
            on_ready(transport)
        runtime.run()
        logger.info("stopping")  # as a stream server says it, when a signal stops it
        # What is queued for the kernel still goes out; the runtime's close
        # aborts whatever is left after the grace period.
        transport.close()
        runtime.run_until(lambda: transport.get_write_buffer_size() == 0, grace)
    finally:
        runtime.close()
