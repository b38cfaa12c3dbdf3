"""The hub: which subscriber wants which topic, shared by every connection."""

from __future__ import annotations

from typing import Protocol

__all__ = ["PubSubHub", "Subscriber"]


class Subscriber(Protocol):
    """Anything that can be handed publications: a connection, a test, a bridge."""

    def deliver(self, topic: bytes, message: bytes) -> bool:
        """Take one publication; return whether it was accepted.

        A subscriber that cannot take it (it is closing, or too far behind)
        returns ``False`` and is not counted.  It may unsubscribe itself from
        inside this call.
        """
        ...


class PubSubHub:
    """Topics and their subscribers, in subscription order.

    One hub serves every connection of a server.  It is plain data: no I/O,
    no time, no threads.
    """

    def __init__(self) -> None:
        # Dicts as ordered sets: delivery follows subscription order, so
        # tests (and people) see a stable order.
        self._subscribers: dict[bytes, dict[Subscriber, None]] = {}
        self._topics_of: dict[Subscriber, dict[bytes, None]] = {}

    def subscribe(self, topic: bytes, subscriber: Subscriber) -> None:
        """Add ``subscriber`` to ``topic``; subscribing twice changes nothing."""
        self._subscribers.setdefault(topic, {})[subscriber] = None
        self._topics_of.setdefault(subscriber, {})[topic] = None

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
        """Deliver to every subscriber of ``topic``; return how many accepted it."""
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
