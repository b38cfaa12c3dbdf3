"""Publish/subscribe over lines: a hub, a server protocol, a client protocol.

The wire format is in :mod:`weft.protocols.pubsub.wire`.
"""

from weft.protocols.pubsub.client import PubSubClientProtocol
from weft.protocols.pubsub.hub import PubSubHub, Subscriber
from weft.protocols.pubsub.server import DEFAULT_MAX_BACKLOG, PubSubServerProtocol

__all__ = [
    "DEFAULT_MAX_BACKLOG",
    "PubSubClientProtocol",
    "PubSubHub",
    "PubSubServerProtocol",
    "Subscriber",
]
