"""start_tls: switch a connection that is already open to TLS, in place.

A protocol that speaks plaintext first (SMTP's or IMAP's STARTTLS, a
pub/sub ``TLS`` command) calls :func:`start_tls` at the switch point.  The
TLS layer takes the transport over; every byte the transport delivers from
then on is TLS, and ``leftover``, the bytes the protocol had already read
past the switch point (a client may send its ClientHello straight after the
command), goes to the layer first.  So no byte after the switch is lost or
read as plaintext.  Framed protocols get this for free with
:meth:`weft.protocols.framing._receiver.FrameReceiver.start_tls`.
"""

from __future__ import annotations

import ssl
from typing import Any

from weft.protocols.contract import Transport
from weft.protocols.tls._layer import TLSProtocol, TLSTransport

__all__ = ["start_tls"]


def start_tls(
    transport: Transport,
    protocol: Any,
    context: ssl.SSLContext,
    *,
    server_side: bool,
    server_hostname: str | None = None,
    leftover: bytes = b"",
    **options: Any,
) -> TLSTransport:
    """Run TLS over ``transport`` from now on, for ``protocol``; return its new transport.

    ``protocol`` keeps its connection: it does not hear ``connection_made``
    again, and should use the returned transport from now on.  If it had
    paused the transport's reading, the returned transport starts paused:
    the handshake goes on, and the plaintext waits until it resumes reading
    there.  ``options``
    are :class:`~weft.protocols.tls._layer.TLSProtocol`'s (timeouts,
    ``truncation_is_eof``, ``on_handshake``).
    """
    layer = TLSProtocol(
        protocol, context, server_side=server_side, server_hostname=server_hostname, **options
    )
    # A pause the protocol made on the transport stays the protocol's: it
    # lifts it with resume_reading on the transport it gets back.
    reading_paused = not transport.is_reading() and not transport.is_closing()
    transport.set_protocol(layer)
    layer.attach(transport, reading_paused=reading_paused)
    if leftover:
        layer.data_received(leftover)
    return layer.app_transport
