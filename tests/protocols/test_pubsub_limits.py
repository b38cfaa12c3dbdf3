"""Pub/sub limits: everything a peer can make the server hold is bounded.

Subscriptions per connection, topics in the hub, topic length, line length,
and what slow subscribers hold, each through the memory driver.
"""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import pytest

from weft.drivers.testing import MemoryConnection, connect, connect_pair
from weft.protocols.errors import ArgumentError
from weft.protocols.pubsub import (
    DEFAULT_MAX_SUBSCRIPTIONS,
    DEFAULT_MAX_TOPICS,
    PubSubClientProtocol,
    PubSubHub,
    PubSubServerProtocol,
    SubscriptionLimitError,
    TooManySubscriptionsError,
    TooManyTopicsError,
)
from weft.protocols.pubsub.wire import MAX_TOPIC_LENGTH, Command, Error, Ok, Reply, Subscribe

TOO_MANY_SUBSCRIPTIONS = b"ERR too many subscriptions\r\n"
TOO_MANY_TOPICS = b"ERR too many topics\r\n"


def serve(
    hub: PubSubHub, *, max_subscriptions: int | None = None
) -> tuple[PubSubServerProtocol, MemoryConnection]:
    """A server protocol on a memory connection, sharing ``hub``."""
    protocol = PubSubServerProtocol(hub, max_subscriptions=max_subscriptions)
    return protocol, connect(protocol)


def say(conn: MemoryConnection, data: bytes) -> bytes:
    """Deliver ``data`` and return what the server wrote back."""
    conn.take_written()
    conn.deliver(data)
    return conn.take_written()


class Sink:
    """An in-process subscriber that takes everything."""

    def deliver(self, topic: bytes, message: bytes) -> bool:
        return True


# --------------------------------------------------------------- defaults


def test_default_limits() -> None:
    """A hub allows 1,000 subscriptions per subscriber and 100,000 topics
    unless told otherwise; a server protocol uses its hub's limit."""
    assert (DEFAULT_MAX_SUBSCRIPTIONS, DEFAULT_MAX_TOPICS) == (1000, 100_000)
    hub = PubSubHub()
    assert (hub.max_subscriptions, hub.max_topics) == (1000, 100_000)
    assert PubSubServerProtocol(hub).max_subscriptions is None
    assert MAX_TOPIC_LENGTH == 200


@pytest.mark.parametrize("options", [{"max_topics": -1}, {"max_subscriptions": -1}])
def test_negative_hub_limits_are_argument_errors(options: dict[str, int]) -> None:
    """A negative limit is refused when the hub is made."""
    with pytest.raises(ArgumentError):
        PubSubHub(**options)


def test_negative_connection_limit_is_an_argument_error() -> None:
    """A negative per-connection limit is refused when the protocol is made."""
    with pytest.raises(ArgumentError):
        PubSubServerProtocol(PubSubHub(), max_subscriptions=-1)


# ------------------------------------------------ subscriptions per connection


def test_subscription_past_the_limit_is_an_err_and_the_connection_goes_on() -> None:
    """With a limit of 3, the fourth distinct SUB is ``ERR too many
    subscriptions``; the connection stays open, keeps its three topics and
    their messages, re-subscribing to one of them is still OK, and after an
    UNSUB the next SUB succeeds."""
    hub = PubSubHub(max_subscriptions=3)
    protocol, conn = serve(hub)
    _, publisher = serve(hub)
    assert say(conn, b"SUB a\nSUB b\nSUB c\n") == b"OK\r\n" * 3
    assert say(conn, b"SUB d\n") == TOO_MANY_SUBSCRIPTIONS
    assert not conn.transport.is_closing()
    assert hub.topics_of(protocol) == [b"a", b"b", b"c"]
    assert hub.subscribers_of(b"d") == []
    assert say(conn, b"SUB b\n") == b"OK\r\n"
    assert say(publisher, b"PUB c hi\nPUB d hi\n") == b"OK 1\r\nOK 0\r\n"
    assert conn.take_written() == b"MSG c hi\r\n"
    assert say(conn, b"UNSUB a\nSUB d\n") == b"OK\r\nOK\r\n"
    assert hub.topics_of(protocol) == [b"b", b"c", b"d"]
    assert say(conn, b"SUB e\n") == TOO_MANY_SUBSCRIPTIONS
    assert not conn.closed


def test_the_limit_is_per_connection() -> None:
    """One connection at its limit does not stop another from subscribing,
    to the same topics or others."""
    hub = PubSubHub(max_subscriptions=2)
    _, first = serve(hub)
    _, second = serve(hub)
    assert say(first, b"SUB a\nSUB b\nSUB c\n") == b"OK\r\nOK\r\n" + TOO_MANY_SUBSCRIPTIONS
    assert say(second, b"SUB a\nSUB c\nSUB d\n") == b"OK\r\nOK\r\n" + TOO_MANY_SUBSCRIPTIONS


def test_default_limit_with_a_flood_of_subscriptions() -> None:
    """5,000 distinct SUBs in one chunk on the default settings: the first
    1,000 are OK, every later one is ``ERR too many subscriptions``, and the
    hub holds 1,000 topics, not 5,000."""
    hub = PubSubHub()
    protocol, conn = serve(hub)
    replies = say(conn, b"".join(b"SUB topic-%d\n" % n for n in range(5000)))
    assert replies == b"OK\r\n" * 1000 + TOO_MANY_SUBSCRIPTIONS * 4000
    assert hub.subscription_count(protocol) == 1000
    assert hub.topic_count == 1000
    assert not conn.transport.is_closing()


def test_a_connection_may_have_its_own_limit() -> None:
    """``max_subscriptions`` on the protocol overrides the hub's limit for
    that connection only."""
    hub = PubSubHub(max_subscriptions=1)
    _, trusted = serve(hub, max_subscriptions=3)
    _, ordinary = serve(hub)
    assert say(trusted, b"SUB a\nSUB b\nSUB c\nSUB d\n") == b"OK\r\n" * 3 + TOO_MANY_SUBSCRIPTIONS
    assert say(ordinary, b"SUB a\nSUB b\n") == b"OK\r\n" + TOO_MANY_SUBSCRIPTIONS


def test_zero_subscriptions_makes_a_publish_only_connection() -> None:
    """A limit of 0 refuses every SUB; PUB still works."""
    hub = PubSubHub()
    _, conn = serve(hub, max_subscriptions=0)
    assert say(conn, b"SUB a\nPUB a x\n") == TOO_MANY_SUBSCRIPTIONS + b"OK 0\r\n"


def test_the_client_gets_the_err_as_the_reply_to_its_sub() -> None:
    """``ERR too many subscriptions`` reaches the client as the reply to the
    SUB it answers, and the client's connection goes on."""
    replies: list[tuple[Command, Reply]] = []
    client = PubSubClientProtocol(on_reply=lambda command, reply: replies.append((command, reply)))
    pump = connect_pair(client, PubSubServerProtocol(PubSubHub(max_subscriptions=1)))
    client.subscribe(b"a")
    client.subscribe(b"b")
    client.publish(b"a", b"m")
    pump.run()
    assert replies[:2] == [(Subscribe(b"a"), Ok()), (Subscribe(b"b"), Error(b"too many subscriptions"))]
    assert replies[2][1] == Ok(1)
    assert not pump.client_transport.is_closing()


# ---------------------------------------------------------- topics in the hub


def test_topic_past_the_hub_limit_is_an_err_and_the_connection_goes_on() -> None:
    """With room for two topics, a SUB that would create a third is ``ERR
    too many topics``; a SUB to an existing topic is still OK; once a topic
    loses its last subscriber its place is free again."""
    hub = PubSubHub(max_topics=2)
    _, first = serve(hub)
    _, second = serve(hub)
    assert say(first, b"SUB a\nSUB b\n") == b"OK\r\nOK\r\n"
    assert say(second, b"SUB c\n") == TOO_MANY_TOPICS
    assert not second.transport.is_closing()
    assert say(second, b"SUB a\n") == b"OK\r\n"
    assert hub.topic_count == 2
    assert say(first, b"UNSUB a\n") == b"OK\r\n"
    assert say(second, b"SUB c\n") == TOO_MANY_TOPICS  # a still has a subscriber
    assert say(first, b"UNSUB b\n") == b"OK\r\n"
    assert say(second, b"SUB c\n") == b"OK\r\n"
    assert hub.topic_count == 2


def test_a_lost_connection_frees_its_topics() -> None:
    """The topics only a lost connection was subscribed to no longer count."""
    hub = PubSubHub(max_topics=3)
    _, first = serve(hub)
    _, second = serve(hub)
    say(first, b"SUB a\nSUB b\nSUB c\n")
    assert say(second, b"SUB d\n") == TOO_MANY_TOPICS
    first.reset()
    assert hub.topic_count == 0
    assert say(second, b"SUB d\n") == b"OK\r\n"


def test_publishing_creates_no_topic() -> None:
    """PUB to topics nobody is subscribed to holds nothing in the hub."""
    hub = PubSubHub()
    _, conn = serve(hub)
    assert say(conn, b"".join(b"PUB nobody-%d x\n" % n for n in range(2000))) == b"OK 0\r\n" * 2000
    assert hub.topic_count == 0


def test_topics_are_refused_before_subscriptions_are_counted() -> None:
    """When both limits are reached the reply names the connection's own
    limit: it is the one the client can do something about."""
    hub = PubSubHub(max_topics=1, max_subscriptions=1)
    _, conn = serve(hub)
    assert say(conn, b"SUB a\nSUB b\n") == b"OK\r\n" + TOO_MANY_SUBSCRIPTIONS


# -------------------------------------------------------------- the hub itself


def test_hub_refusals_raise_and_change_nothing() -> None:
    """``PubSubHub.subscribe`` past a limit raises the matching
    :class:`SubscriptionLimitError`, carrying the limit, and leaves the hub
    as it was; in-process subscribers obey the limits too."""
    hub = PubSubHub(max_topics=2, max_subscriptions=1)
    one, two, three = Sink(), Sink(), Sink()
    hub.subscribe(b"a", one)
    with pytest.raises(TooManySubscriptionsError) as refused:
        hub.subscribe(b"b", one)
    assert refused.value.limit == 1
    assert isinstance(refused.value, SubscriptionLimitError)
    hub.subscribe(b"b", two)
    with pytest.raises(TooManyTopicsError) as full:
        hub.subscribe(b"c", three)
    assert full.value.limit == 2
    assert (hub.topic_count, hub.subscription_count(three)) == (2, 0)
    assert hub.topics_of(one) == [b"a"]
    assert hub.subscribers_of(b"c") == []
    hub.subscribe(b"a", one)  # already there: no error, no change
    assert hub.subscription_count(one) == 1


def test_subscribe_takes_a_limit_for_one_call() -> None:
    """``max_subscriptions`` given to ``subscribe`` replaces the hub's for that call."""
    hub = PubSubHub(max_subscriptions=1)
    sink = Sink()
    hub.subscribe(b"a", sink)
    hub.subscribe(b"b", sink, max_subscriptions=2)
    with pytest.raises(TooManySubscriptionsError):
        hub.subscribe(b"c", sink, max_subscriptions=2)
    assert hub.topics_of(sink) == [b"a", b"b"]


# ------------------------------------------------------------- what subscribers hold


def test_slow_subscribers_of_one_topic_share_each_message() -> None:
    """200 subscribers that read nothing, 8 publications of 60 KB on their
    topic: every subscriber's backlog holds all 8 (each well under
    max_backlog), yet the server holds one copy of each message between
    them, not one per subscriber (that would be some 96 MB)."""
    hub = PubSubHub()
    subscribers = [connect(PubSubServerProtocol(hub), peer_reads=False) for _ in range(200)]
    for conn in subscribers:
        conn.deliver(b"SUB t\n")
        conn.read()
    _, publisher = serve(hub)
    messages = [bytes([65 + n]) * 60_000 for n in range(8)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for message in messages:
            assert say(publisher, b"PUB t " + message + b"\n") == b"OK 200\r\n"
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 4 * 8 * 60_000
    for conn in subscribers:
        assert conn.transport.get_write_buffer_size() == 8 * (60_000 + len(b"MSG t \r\n"))
    assert subscribers[0].read() == b"".join(b"MSG t " + message + b"\r\n" for message in messages)


def test_each_subscriber_gets_its_own_topic_and_message() -> None:
    """Encoding once per publication never hands a subscriber a line meant
    for another publication: alternating topics and equal messages each reach
    exactly their own subscribers, in order."""
    hub = PubSubHub()
    _, a = serve(hub)
    _, b = serve(hub)
    _, publisher = serve(hub)
    say(a, b"SUB a\n")
    say(b, b"SUB b\n")
    say(publisher, b"PUB a x\nPUB b x\nPUB a y\nPUB a y\nPUB b x\n")
    assert a.take_written() == b"MSG a x\r\nMSG a y\r\nMSG a y\r\n"
    assert b.take_written() == b"MSG b x\r\nMSG b x\r\n"


# ------------------------------------------------------------------ the page


def test_every_example_on_the_pubsub_page_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/pubsub.md's Python examples run as written (their asserts included)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "pubsub.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) == 2
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/pubsub.md example {index + 1}", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "Subscribe(topic=b'news') Ok(count=None)",
        "b'news' b'hello'",
        "Publish(topic=b'news', message=b'hello') Ok(count=1)",
    ]
