"""Publish/subscribe over lines: a hub, a server protocol, a client protocol.

The wire format is in :mod:`weft.protocols.pubsub.wire`.
"""

from weft.protocols.pubsub._client import PubSubClientProtocol
from weft.protocols.pubsub._hub import (
    DEFAULT_MAX_SUBSCRIPTIONS,
    DEFAULT_MAX_TOPICS,
    PubSubHub,
    Subscriber,
    SubscriptionLimitError,
    TooManySubscriptionsError,
    TooManyTopicsError,
)
from weft.protocols.pubsub._server import DEFAULT_MAX_BACKLOG, PubSubServerProtocol

__all__ = [
    "DEFAULT_MAX_BACKLOG",
    "DEFAULT_MAX_SUBSCRIPTIONS",
    "DEFAULT_MAX_TOPICS",
    "PubSubClientProtocol",
    "PubSubHub",
    "PubSubServerProtocol",
    "Subscriber",
    "SubscriptionLimitError",
    "TooManySubscriptionsError",
    "TooManyTopicsError",
]
