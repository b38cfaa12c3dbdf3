"""The hub: which subscriber wants which topic, shared by every connection.

The hub bounds what its subscribers can make it hold: at most
``max_topics`` topics (a topic exists while it has a subscriber) and at most
``max_subscriptions`` topics per subscriber.  A subscription past either
limit raises a :class:`SubscriptionLimitError` and changes nothing.
"""

from __future__ import annotations

from typing import Protocol

from weft.protocols.errors import ArgumentError, WeftError

__all__ = [
    "DEFAULT_MAX_SUBSCRIPTIONS",
    "DEFAULT_MAX_TOPICS",
    "PubSubHub",
    "Subscriber",
    "SubscriptionLimitError",
    "TooManySubscriptionsError",
    "TooManyTopicsError",
]

#: How many topics one subscriber (one connection) may be subscribed to.
DEFAULT_MAX_SUBSCRIPTIONS = 1000

#: How many topics a hub holds at most.
DEFAULT_MAX_TOPICS = 100_000


class SubscriptionLimitError(WeftError):
    """A subscription was refused: it would take the hub past one of its limits.

    ``limit`` is the limit it would have gone past.  Nothing changed; the
    subscriber's other subscriptions stand.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class TooManySubscriptionsError(SubscriptionLimitError):
    """The subscriber already has as many subscriptions as it may."""


class TooManyTopicsError(SubscriptionLimitError):
    """The subscription would create a topic, and the hub holds as many as it may."""


class Subscriber(Protocol):
    """Anything that can be handed publications: a connection, a test, a bridge."""

    def deliver(self, topic: bytes, message: bytes) -> bool:
        """Take one publication; return whether it was accepted.

        A subscriber that cannot take it (it is closing, or too far behind)
        returns ``False`` and is not counted.  It may unsubscribe itself from
        inside this call.
        """
        ...


def _check_limit(name: str, value: int) -> int:
    if value < 0:
        raise ArgumentError(f"{name} must be >= 0, not {value}")
    return value


class PubSubHub:
    """Topics and their subscribers, in subscription order.

    One hub serves every connection of a server.  It is plain data: no I/O,
    no time, no threads.  ``max_topics`` bounds the topics it holds and
    ``max_subscriptions`` the topics each subscriber may be subscribed to
    (see :meth:`subscribe`).
    """

    def __init__(
        self,
        *,
        max_topics: int = DEFAULT_MAX_TOPICS,
        max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
    ) -> None:
        #: The most topics the hub holds at once.
        self.max_topics = _check_limit("max_topics", max_topics)
        #: The most topics one subscriber may be subscribed to, unless
        #: :meth:`subscribe` is given another limit.
        self.max_subscriptions = _check_limit("max_subscriptions", max_subscriptions)
        # Dicts as ordered sets: delivery follows subscription order, so
        # tests (and people) see a stable order.
        self._subscribers: dict[bytes, dict[Subscriber, None]] = {}
        self._topics_of: dict[Subscriber, dict[bytes, None]] = {}

    def subscribe(
        self, topic: bytes, subscriber: Subscriber, *, max_subscriptions: int | None = None
    ) -> None:
        """Add ``subscriber`` to ``topic``; subscribing twice changes nothing.

        Raises :class:`TooManySubscriptionsError` if ``subscriber`` already
        has ``max_subscriptions`` topics (the hub's own limit unless given),
        and :class:`TooManyTopicsError` if ``topic`` is new and the hub
        already holds ``max_topics``.  A refused subscription changes nothing.
        """
        subscribers = self._subscribers.get(topic)
        if subscribers is not None and subscriber in subscribers:
            return
        topics = self._topics_of.get(subscriber)
        limit = self.max_subscriptions if max_subscriptions is None else max_subscriptions
        if (0 if topics is None else len(topics)) >= limit:
            raise TooManySubscriptionsError(
                f"a subscriber may have at most {limit} subscriptions; unsubscribe from one first",
                limit=limit,
            )
        if subscribers is None:
            if len(self._subscribers) >= self.max_topics:
                raise TooManyTopicsError(
                    f"the hub holds its limit of {self.max_topics} topics; "
                    "subscribe to an existing topic or raise max_topics",
                    limit=self.max_topics,
                )
            subscribers = self._subscribers[topic] = {}
        if topics is None:
            topics = self._topics_of[subscriber] = {}
        subscribers[subscriber] = None
        topics[topic] = None

    def unsubscribe(self, topic: bytes, subscriber: Subscriber) -> None:
        """Remove ``subscriber`` from ``topic``, if it was there."""
        subscribers = self._subscribers.get(topic)
        if subscribers is None or subscriber not in subscribers:
            return
        del subscribers[subscriber]
        if not subscribers:
            del self._subscribers[topic]
        topics = self._topics_of[subscriber]
        del topics[topic]
        if not topics:
            del self._topics_of[subscriber]

    def unsubscribe_all(self, subscriber: Subscriber) -> None:
        """Remove ``subscriber`` from every topic."""
        for topic in list(self._topics_of.get(subscriber, ())):
            self.unsubscribe(topic, subscriber)

    def publish(self, topic: bytes, message: bytes) -> int:
        """Deliver to every subscriber of ``topic``; return how many accepted it.

        Every subscriber is handed the same ``topic`` and ``message``
        objects, so a subscriber that encodes them may encode once per
        publication (the server protocol does).
        """
        subscribers = self._subscribers.get(topic)
        if not subscribers:
            return 0
        # A copy: a subscriber may unsubscribe itself while being delivered to.
        return sum(subscriber.deliver(topic, message) for subscriber in list(subscribers))

    def topics_of(self, subscriber: Subscriber) -> list[bytes]:
        """The topics ``subscriber`` is subscribed to, in subscription order."""
        return list(self._topics_of.get(subscriber, ()))

    def subscribers_of(self, topic: bytes) -> list[Subscriber]:
        """The subscribers of ``topic``, in subscription order."""
        return list(self._subscribers.get(topic, ()))

    def subscription_count(self, subscriber: Subscriber) -> int:
        """How many topics ``subscriber`` is subscribed to."""
        topics = self._topics_of.get(subscriber)
        return 0 if topics is None else len(topics)

    @property
    def topic_count(self) -> int:
        """How many topics have at least one subscriber."""
        return len(self._subscribers)
