"""What asyncio's own helpers ask of a transport, for the asyncio driver's.

``loop.start_tls`` (and so ``asyncio.StreamWriter.start_tls``) and
``loop.sendfile`` are written against asyncio's transports, and say so in
private ways that this module gathers in one place:

* ``loop.start_tls`` takes a transport whose ``_start_tls_compatible`` is
  true, pauses its reading, hands it to asyncio's TLS protocol with
  ``set_protocol`` and resumes.  That protocol is an
  ``asyncio.BufferedProtocol``: it has no ``data_received``, and takes its
  bytes through ``get_buffer``/``buffer_updated`` (:func:`receiver_for`);
  it ends the connection with ``transport._force_close(exc)``.
* ``loop.sendfile`` asks ``_sendfile_compatible``.  Its native mode calls
  the loop's ``_sendfile_native``, which on asyncio's own loop knows only
  the loop's own socket transports (it unregisters and re-registers them in
  the loop's descriptor table), so a weft transport says
  :data:`SENDFILE_FALLBACK`: asyncio reads the file in an executor and
  writes it, with flow control.  Its fallback protocol refuses a transport
  that is not an instance of asyncio's ``_FlowControlMixin``, and reads
  ``_protocol_paused``; hence :data:`FlowControlMixin`, the driver's
  transport's second base.  (weft's own ``write_file`` is the zero-copy
  way: ``os.sendfile`` on both loops.)

Names from asyncio's internals are fetched here and nowhere else, each
with what it is for, so that a change in asyncio shows up in one file.
"""

from __future__ import annotations

import asyncio
from asyncio import constants as asyncio_constants
from asyncio import transports as asyncio_transports
from collections.abc import Callable
from typing import Any

__all__ = ["SENDFILE_FALLBACK", "FlowControlMixin", "receiver_for"]

#: asyncio's class of transports with flow control (the TLS transport of
#: asyncio's sslproto derives from it too): ``loop.sendfile``'s fallback
#: takes no other.  An ``asyncio.Transport``.
FlowControlMixin = asyncio_transports._FlowControlMixin

#: What ``_sendfile_compatible`` says to have ``loop.sendfile`` read and
#: write the file itself.
SENDFILE_FALLBACK = asyncio_constants._SendfileMode.FALLBACK


def receiver_for(protocol: Any, *, feeds: Callable[[Any], bool], rest: Callable[[bytes], object]) -> Any:
    """What to call ``data_received`` on to hand ``protocol`` the bytes that arrive.

    The protocol itself; for an ``asyncio.BufferedProtocol``, a
    :class:`_BufferedFeed` that copies into the buffers it lends, as
    asyncio's transports do (see there for ``feeds`` and ``rest``).  An
    object, not a bound method: the read path calls
    ``receiver.data_received(data)``, which Python calls without making a
    method object (a stored bound method costs some 7 ns more per call).
    """
    if isinstance(protocol, asyncio.BufferedProtocol):
        return _BufferedFeed(protocol, feeds, rest)
    return protocol


class _BufferedFeed:
    """Bytes into an ``asyncio.BufferedProtocol``: ``get_buffer``, copy, ``buffer_updated``.

    A chunk larger than the buffer lent goes in several rounds.  Between
    rounds the protocol may pause reading or hand the connection on:
    ``feeds(protocol)`` says whether to go on, and otherwise what is left
    goes to ``rest``, which holds it or gives it to the protocol now in
    place, so that no byte is lost or delivered out of order.
    """

    __slots__ = ("_feeds", "_protocol", "_rest")

    def __init__(
        self,
        protocol: asyncio.BufferedProtocol,
        feeds: Callable[[Any], bool],
        rest: Callable[[bytes], object],
    ) -> None:
        self._protocol = protocol
        self._feeds = feeds
        self._rest = rest

    def data_received(self, data: bytes) -> None:
        """Copy ``data`` into the protocol's buffers, as many rounds as it takes."""
        protocol = self._protocol
        view = memoryview(data)
        while True:
            buffer = memoryview(protocol.get_buffer(len(view))).cast("B")
            size = min(len(buffer), len(view))
            if not size:
                raise RuntimeError(f"{protocol!r}.get_buffer() returned an empty buffer")
            buffer[:size] = view[:size]
            protocol.buffer_updated(size)
            view = view[size:]
            if not view:
                return
            if not self._feeds(protocol):
                self._rest(bytes(view))
                return
