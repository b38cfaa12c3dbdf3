"""What can go wrong in a TLS session, as exceptions under :class:`~weft.protocols.errors.WeftError`.

The ssl module's own exception, when there is one, is the ``__cause__``: a
:class:`TLSHandshakeError` caused by :class:`ssl.SSLCertVerificationError`
says why the certificate was refused (``exc.__cause__.verify_message``).
"""

from __future__ import annotations

from weft.protocols.errors import ProtocolError, WeftError

__all__ = ["TLSError", "TLSHandshakeError", "TLSHandshakeTimeoutError", "TLSStateError", "TLSTruncatedError"]


class TLSError(ProtocolError):
    """The TLS session failed: the peer sent something TLS forbids, or broke off."""


class TLSHandshakeError(TLSError):
    """The handshake failed: an untrusted, expired or misnamed certificate, no
    protocol version or cipher in common, bytes that are not TLS, or a peer
    that went away before the handshake completed."""


class TLSHandshakeTimeoutError(TLSHandshakeError, TimeoutError):
    """The handshake did not complete within its deadline."""


class TLSTruncatedError(TLSError, ConnectionError):
    """The peer ended the byte stream without a TLS ``close_notify``.

    Whatever arrived was authentic, but it may have been cut short: an
    attacker who can reset a connection can truncate it.  Protocols that
    frame their own data (HTTP with a Content-Length, say) can treat this as
    a clean end; see the TLS layer's ``truncation_is_eof`` option.
    """


class TLSStateError(WeftError, RuntimeError):
    """A TLS session was asked for something its state forbids (application
    data before the handshake completes, ``close_notify`` twice).  Not the
    peer's doing: a bug in the code driving the session; please report it
    with the traceback."""
