"""TLS contexts with secure defaults, for clients and servers.

Both start from :func:`ssl.create_default_context` (certificate and hostname
verification on for clients, no SSLv3 or compression) and raise the
minimum version to TLS 1.2.  Anything finer, build an :class:`ssl.SSLContext`
yourself: every weft TLS entry point takes one.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

__all__ = ["client_context", "server_context"]


def client_context(
    *,
    cafile: str | None = None,
    alpn_protocols: Sequence[str] = (),
    certfile: str | None = None,
    keyfile: str | None = None,
    insecure: bool = False,
) -> ssl.SSLContext:
    """A context for the client side.

    ``cafile`` replaces the system's trusted certificates with those in the
    file; ``certfile``/``keyfile`` present a client certificate.
    ``insecure=True`` turns verification off entirely (no certificate or
    hostname check): for tests and for peers you reach some other trusted
    way, never by default.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certfile is not None:
        context.load_cert_chain(certfile, keyfile)
    if alpn_protocols:
        context.set_alpn_protocols(list(alpn_protocols))
    return context


def server_context(
    certfile: str,
    keyfile: str | None = None,
    *,
    alpn_protocols: Sequence[str] = (),
    client_cafile: str | None = None,
) -> ssl.SSLContext:
    """A context for the server side, presenting the certificate chain in ``certfile``.

    ``keyfile`` may be left out when ``certfile`` holds the key too.  With
    ``client_cafile``, clients must present a certificate signed by a CA in
    that file (mutual TLS).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if client_cafile is not None:
        context.load_verify_locations(cafile=client_cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    if alpn_protocols:
        context.set_alpn_protocols(list(alpn_protocols))
    return context
