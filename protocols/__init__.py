"""weft's protocols: pure state machines that turn bytes into events and back.

Nothing here does I/O, reads a clock or draws entropy: bytes, time and
randomness are handed in by a driver (see ``weft.drivers``).  Each piece has
one home:

* :mod:`weft.protocols.contract`: what protocols and transports promise each
  other (asyncio's names), and the clock a transport offers.
* :mod:`weft.protocols.errors`: weft's one hierarchy of errors, under
  ``WeftError``.
* :mod:`weft.protocols.framing`: line, length-prefixed and netstring framing.
* :mod:`weft.protocols.pubsub`: publish/subscribe (its wire format in
  :mod:`weft.protocols.pubsub.wire`).
* :mod:`weft.protocols.http`: HTTP/1.1 server and client, on h11.
* :mod:`weft.protocols.tls`: TLS over any transport, on ``ssl.MemoryBIO``.
* :mod:`weft.protocols.dns`: a DNS stub resolver over any datagram transport.
* :class:`EchoProtocol`, here: sends back what it receives;
  :class:`DatagramEchoProtocol` sends every datagram back to its sender.
"""

from weft.protocols._datagram_echo import DatagramEchoProtocol
from weft.protocols._echo import EchoProtocol

__all__ = ["DatagramEchoProtocol", "EchoProtocol"]
