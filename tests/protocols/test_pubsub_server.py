"""PubSubServerProtocol: exact transcripts through the memory driver."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from weft.drivers.testing import MemoryConnection, chunkings, connect
from weft.protocols.pubsub import DEFAULT_MAX_BACKLOG, PubSubHub, PubSubServerProtocol

LIMIT = 64 * 1024
SLOW = b"ERR slow consumer\r\n"
TOO_LONG = b"ERR line too long\r\n"


def serve(
    hub: PubSubHub, *, peer_reads: bool = True, max_backlog: int = DEFAULT_MAX_BACKLOG
) -> tuple[PubSubServerProtocol, MemoryConnection]:
    """A server protocol on a memory connection, sharing ``hub``."""
    protocol = PubSubServerProtocol(hub, max_backlog=max_backlog)
    return protocol, connect(protocol, peer_reads=peer_reads)


def say(conn: MemoryConnection, data: bytes) -> bytes:
    """Deliver ``data`` and return what the server wrote back in response
    (checking first that nothing earlier was left unread by the test)."""
    leftover = conn.take_written()
    assert leftover == b"", f"unchecked output {leftover[:80]!r}"
    conn.deliver(data)
    return conn.take_written()


# ------------------------------------------------------------- transcripts


def test_subscribe_publish_unsubscribe_two_connections() -> None:
    """One connection subscribes, another publishes: the subscriber gets MSG,
    the publisher OK 1; after UNSUB the subscriber gets nothing and OK 0."""
    hub = PubSubHub()
    _, alice = serve(hub)
    _, bob = serve(hub)
    assert say(alice, b"SUB news\n") == b"OK\r\n"
    assert say(bob, b"PUB news hello\n") == b"OK 1\r\n"
    assert alice.take_written() == b"MSG news hello\r\n"
    assert say(alice, b"UNSUB news\n") == b"OK\r\n"
    assert say(bob, b"PUB news again\n") == b"OK 0\r\n"
    assert alice.take_written() == b""
    assert not alice.closed
    assert not bob.closed


def test_three_connections() -> None:
    """Publications reach exactly the subscribers of their topic and the count
    says how many; other topics are untouched."""
    hub = PubSubHub()
    _, a = serve(hub)
    _, b = serve(hub)
    _, c = serve(hub)
    assert say(a, b"SUB news\n") == b"OK\r\n"
    assert say(b, b"SUB news\nSUB sport\n") == b"OK\r\nOK\r\n"
    assert say(c, b"SUB weather\n") == b"OK\r\n"

    assert say(c, b"PUB news big day\n") == b"OK 2\r\n"
    assert a.take_written() == b"MSG news big day\r\n"
    assert b.take_written() == b"MSG news big day\r\n"

    assert say(a, b"PUB sport goal\n") == b"OK 1\r\n"
    assert b.take_written() == b"MSG sport goal\r\n"
    assert c.take_written() == b""

    assert say(b, b"PUB weather rain\n") == b"OK 1\r\n"
    assert c.take_written() == b"MSG weather rain\r\n"
    assert a.take_written() == b""

    assert say(b, b"UNSUB news\n") == b"OK\r\n"
    assert say(c, b"PUB news later\n") == b"OK 1\r\n"
    assert a.take_written() == b"MSG news later\r\n"
    assert b.take_written() == b""


def test_publisher_subscribed_gets_its_own_message_first() -> None:
    """A publisher subscribed to the topic is counted, and its MSG comes before its OK 1."""
    hub = PubSubHub()
    _, conn = serve(hub)
    assert say(conn, b"SUB t\nPUB t hi\n") == b"OK\r\nMSG t hi\r\nOK 1\r\n"


def test_publisher_and_another_subscriber() -> None:
    """With the publisher and one other subscribed, both get the MSG and the count is 2."""
    hub = PubSubHub()
    _, a = serve(hub)
    _, b = serve(hub)
    say(a, b"SUB t\n")
    say(b, b"SUB t\n")
    assert say(b, b"PUB t x\n") == b"MSG t x\r\nOK 2\r\n"
    assert a.take_written() == b"MSG t x\r\n"


def test_publish_with_no_subscribers() -> None:
    """A publication nobody subscribed to is answered OK 0."""
    hub = PubSubHub()
    _, conn = serve(hub)
    assert say(conn, b"PUB nobody hello\n") == b"OK 0\r\n"


def test_double_subscribe_delivers_once() -> None:
    """Subscribing twice is answered OK twice but delivers (and counts) once."""
    hub = PubSubHub()
    _, a = serve(hub)
    _, b = serve(hub)
    assert say(a, b"SUB t\nSUB t\n") == b"OK\r\nOK\r\n"
    assert say(b, b"PUB t once\n") == b"OK 1\r\n"
    assert a.take_written() == b"MSG t once\r\n"
    assert say(a, b"UNSUB t\n") == b"OK\r\n"
    assert say(b, b"PUB t gone\n") == b"OK 0\r\n"
    assert a.take_written() == b""


def test_unsubscribe_never_subscribed() -> None:
    """UNSUB of a topic never subscribed is simply OK."""
    hub = PubSubHub()
    protocol, conn = serve(hub)
    assert say(conn, b"UNSUB never\n") == b"OK\r\n"
    assert hub.topics_of(protocol) == []


def test_empty_message() -> None:
    """``PUB t `` publishes an empty message: ``MSG t `` with its trailing space."""
    hub = PubSubHub()
    _, a = serve(hub)
    _, b = serve(hub)
    say(a, b"SUB t\n")
    assert say(b, b"PUB t \n") == b"OK 1\r\n"
    assert a.take_written() == b"MSG t \r\n"


def test_message_with_spaces() -> None:
    """The message is the whole rest of the line, its spaces kept exactly."""
    hub = PubSubHub()
    _, a = serve(hub)
    _, b = serve(hub)
    say(a, b"SUB t\n")
    assert say(b, b"PUB t  hello   big  world \n") == b"OK 1\r\n"
    assert a.take_written() == b"MSG t  hello   big  world \r\n"


def test_crlf_input() -> None:
    """Lines may end "\\r\\n": exactly one "\\r" is dropped, a second one is data."""
    hub = PubSubHub()
    _, a = serve(hub)
    _, b = serve(hub)
    assert say(a, b"SUB t\r\n") == b"OK\r\n"
    assert say(b, b"PUB t hi\r\n") == b"OK 1\r\n"
    assert a.take_written() == b"MSG t hi\r\n"
    assert say(b, b"PUB t cr\r\r\n") == b"OK 1\r\n"
    assert a.take_written() == b"MSG t cr\r\r\n"
    assert say(b, b"PUB t \r\n") == b"OK 1\r\n"
    assert a.take_written() == b"MSG t \r\n"


def test_topic_length_limit() -> None:
    """A 200-byte topic works; a 201-byte one is ERR topic too long."""
    hub = PubSubHub()
    _, conn = serve(hub)
    topic = b"t" * 200
    assert say(conn, b"SUB " + topic + b"\n") == b"OK\r\n"
    assert say(conn, b"PUB " + topic + b" m\n") == b"MSG " + topic + b" m\r\nOK 1\r\n"
    assert say(conn, b"SUB " + topic + b"t\n") == b"ERR topic too long\r\n"
    assert say(conn, b"PUB " + topic + b"t m\n") == b"ERR topic too long\r\n"


def test_errors_leave_the_connection_usable() -> None:
    """Each invalid line gets its exact ERR and the connection goes on working."""
    hub = PubSubHub()
    _, conn = serve(hub)
    script = [
        (b"\n", b"ERR empty command\r\n"),
        (b"\r\n", b"ERR empty command\r\n"),
        (b"HELLO\n", b"ERR unknown command\r\n"),
        (b"sub t\n", b"ERR unknown command\r\n"),
        (b"pub t x\n", b"ERR unknown command\r\n"),
        (b"SUB\n", b"ERR missing topic\r\n"),
        (b"SUB \n", b"ERR missing topic\r\n"),
        (b"UNSUB\n", b"ERR missing topic\r\n"),
        (b"PUB\n", b"ERR missing topic\r\n"),
        (b"PUB  x\n", b"ERR missing topic\r\n"),
        (b"SUB a b\n", b"ERR topic contains a space\r\n"),
        (b"UNSUB a b\n", b"ERR topic contains a space\r\n"),
        (b"SUB " + b"x" * 201 + b"\n", b"ERR topic too long\r\n"),
    ]
    for line, reply in script:
        assert say(conn, line) == reply, line
        assert not conn.transport.is_closing()
    assert say(conn, b"SUB t\nPUB t still here\n") == b"OK\r\nMSG t still here\r\nOK 1\r\n"
    assert not conn.closed


# ------------------------------------------------------------ long lines


def test_longest_line_is_accepted() -> None:
    """A line of exactly 64 KiB (without its "\\n") is a normal command."""
    hub = PubSubHub()
    _, a = serve(hub)
    _, b = serve(hub)
    say(a, b"SUB t\n")
    line = b"PUB t " + b"m" * (LIMIT - 6)
    assert len(line) == LIMIT
    assert say(b, line + b"\n") == b"OK 1\r\n"
    assert a.take_written() == b"MSG t " + b"m" * (LIMIT - 6) + b"\r\n"
    assert not b.transport.is_closing()


def test_longest_crlf_line_is_accepted() -> None:
    """The limit is on the command, not its line end: 64 KiB ended "\\r\\n" is
    as good as 64 KiB ended "\\n"."""
    hub = PubSubHub()
    _, conn = serve(hub)
    message = b"m" * (LIMIT - len(b"PUB t "))
    assert say(conn, b"SUB t\r\nPUB t " + message + b"\r\n") == b"OK\r\nMSG t " + message + b"\r\nOK 1\r\n"


def test_crlf_line_one_byte_over_the_limit() -> None:
    """64 KiB and one byte, ended "\\r\\n", is ``ERR line too long``."""
    hub = PubSubHub()
    _, conn = serve(hub)
    conn.deliver(b"PUB t " + b"m" * (LIMIT + 1 - 6) + b"\r\n")
    assert conn.written == TOO_LONG
    assert conn.closed


def test_the_command_limit_is_configurable() -> None:
    """max_command_length sets the limit, its line end not counted."""
    hub = PubSubHub()
    conn = connect(PubSubServerProtocol(hub, max_command_length=10))
    assert say(conn, b"PUB t 1234\r\n") == b"OK 0\r\n"
    conn.deliver(b"PUB t 12345\n")
    assert conn.written == TOO_LONG
    assert conn.closed


def test_line_one_byte_over_the_limit() -> None:
    """A line of 64 KiB plus one byte (without its "\\n") is ``ERR line too long``."""
    hub = PubSubHub()
    _, conn = serve(hub)
    conn.deliver(b"PUB t " + b"m" * (LIMIT + 1 - 6) + b"\n")
    assert conn.written == TOO_LONG
    assert conn.closed


def test_line_too_long_then_closed_and_unsubscribed() -> None:
    """A line over 64 KiB is answered exactly ``ERR line too long`` (after the
    replies to the lines before it), the connection closes, nothing after it
    is run, and its subscriptions are gone."""
    hub = PubSubHub()
    protocol, conn = serve(hub)
    _, other = serve(hub)
    data = b"SUB t\n" + b"PUB t " + b"m" * (LIMIT - 5) + b"\nSUB u\n"
    conn.deliver(data)
    assert conn.written == b"OK\r\n" + TOO_LONG
    assert conn.closed
    assert hub.topics_of(protocol) == []
    assert hub.subscribers_of(b"t") == []
    assert hub.subscribers_of(b"u") == []
    assert say(other, b"PUB t later\n") == b"OK 0\r\n"


def test_nothing_after_an_over_long_command_is_kept() -> None:
    """A command one byte over the limit with no "\\r" (which the parser lets
    through, since it might have been the "\\r") is refused by the server; the
    rest of its chunk is dropped at once, not kept until the connection goes
    (found by tests/protocols/test_fuzz_pubsub.py)."""
    hub = PubSubHub()
    protocol = PubSubServerProtocol(hub, max_command_length=10)
    conn = connect(protocol, peer_reads=False)
    conn.deliver(b"PUB t 12345\n" + b"x" * 5000)
    assert conn.transport.is_closing()
    assert protocol.parser.take_buffer() == b""
    assert conn.read() == TOO_LONG
    assert conn.closed


def test_line_too_long_split_into_chunks() -> None:
    """An over-long line is caught while it is still arriving, before its "\\n",
    so the server does not buffer it; the reply is the same."""
    hub = PubSubHub()
    protocol, conn = serve(hub)
    conn.deliver(b"SUB t\n")
    for _ in range(16):
        conn.deliver(b"x" * 4096)
    conn.deliver(b"x")  # 64 KiB + 1: might yet be a 64 KiB command and its "\r"
    assert conn.written == b"OK\r\n"
    assert hub.topics_of(protocol) == [b"t"]
    conn.deliver(b"x")
    assert conn.written == b"OK\r\n" + TOO_LONG
    assert conn.closed
    assert hub.topics_of(protocol) == []


def test_line_too_long_waits_for_flush_when_peer_not_reading() -> None:
    """With the client not reading, the ERR stays queued and the connection
    closes once it has been read; it is the last thing sent."""
    hub = PubSubHub()
    protocol, conn = serve(hub, peer_reads=False)
    conn.deliver(b"SUB t\n" + b"y" * (LIMIT + 2))
    assert (conn.transport.is_closing(), conn.closed) == (True, False)
    assert hub.topics_of(protocol) == []
    assert conn.read() == b"OK\r\n" + TOO_LONG
    assert conn.closed
    assert conn.eof_written


# ---------------------------------------------------- connection endings


def test_connection_loss_removes_subscriptions() -> None:
    """A connection that is lost leaves every topic it was subscribed to."""
    hub = PubSubHub()
    protocol, conn = serve(hub)
    _, other = serve(hub)
    say(conn, b"SUB a\nSUB b\nSUB c\n")
    assert hub.topics_of(protocol) == [b"a", b"b", b"c"]
    conn.reset()
    assert conn.closed
    assert hub.topics_of(protocol) == []
    for topic in (b"a", b"b", b"c"):
        assert say(other, b"PUB " + topic + b" x\n") == b"OK 0\r\n"


def test_clean_loss_removes_subscriptions() -> None:
    """A connection lost without error also leaves its topics."""
    hub = PubSubHub()
    protocol, conn = serve(hub)
    say(conn, b"SUB a\n")
    conn.lose_connection()
    assert conn.closed
    assert hub.topics_of(protocol) == []


def test_a_subscriber_whose_write_fails_is_dropped_and_not_counted() -> None:
    """A send that fails (the peer had reset: the transport closes itself
    inside write, and connection_lost comes only later) is not a delivery:
    the PUB is answered OK 0 and the subscriber has left the hub at once."""
    hub = PubSubHub()
    gone, subscriber = serve(hub)
    _, publisher = serve(hub)
    assert say(subscriber, b"SUB news\n") == b"OK\r\n"
    transport = subscriber.transport
    transport.write = lambda data: transport.abort()  # type: ignore[method-assign]
    publisher.deliver(b"PUB news hi\n")
    assert publisher.take_written() == b"OK 0\r\n"
    assert hub.subscribers_of(b"news") == []
    assert hub.topics_of(gone) == []


def test_a_subscriber_whose_transport_is_closing_is_dropped_before_counting() -> None:
    """A subscriber whose transport is already closing (a reset seen, a
    close) is dropped from the hub by the next publication, not counted."""
    hub = PubSubHub()
    closing, subscriber = serve(hub)
    _, publisher = serve(hub)
    assert say(subscriber, b"SUB news\nSUB sports\n") == b"OK\r\nOK\r\n"
    subscriber.peer_reads = False  # the close waits on the unread OK: still closing, not lost
    subscriber.transport.write(b"queued\r\n")
    subscriber.transport.close()
    assert subscriber.transport.is_closing()
    assert not subscriber.closed
    publisher.deliver(b"PUB news hi\n")
    assert publisher.take_written() == b"OK 0\r\n"
    assert hub.topics_of(closing) == []


def test_a_half_closed_subscriber_counts_and_is_closed_when_the_server_stops() -> None:
    """A half-closed subscriber can still read, so it counts; server_stopping
    closes it, after what it was sent."""
    hub = PubSubHub()
    half_closed, quiet = serve(hub)
    _, publisher = serve(hub)
    assert say(quiet, b"SUB news\n") == b"OK\r\n"
    quiet.deliver_eof()
    assert say(publisher, b"PUB news hi\n") == b"OK 1\r\n"
    assert quiet.take_written() == b"MSG news hi\r\n"
    quiet.peer_reads = False
    assert say(publisher, b"PUB news last\n") == b"OK 1\r\n"
    half_closed.server_stopping()
    assert hub.subscribers_of(b"news") == []
    assert quiet.read() == b"MSG news last\r\n"
    assert quiet.closed


def test_server_stopping_ends_a_live_subscriber_after_what_it_was_sent() -> None:
    """A subscriber that has not half-closed waits for messages as long as it
    is open, so it would hold a graceful stop for the whole grace period:
    server_stopping closes it at once (it leaves the hub now), after the
    messages already sent to it."""
    hub = PubSubHub()
    live, subscriber = serve(hub)
    _, publisher = serve(hub)
    assert say(subscriber, b"SUB news\n") == b"OK\r\n"
    subscriber.peer_reads = False
    assert say(publisher, b"PUB news last\n") == b"OK 1\r\n"
    live.server_stopping()
    assert hub.subscribers_of(b"news") == []
    assert say(publisher, b"PUB news later\n") == b"OK 0\r\n"
    assert subscriber.read() == b"MSG news last\r\n"
    assert subscriber.closed
    assert subscriber.eof_written


def test_server_stopping_closes_a_connection_between_commands() -> None:
    """A connection with no command begun (a publisher between two PUBs) has
    nothing in flight: it is closed at once, as an idle keep-alive one is."""
    hub = PubSubHub()
    idle, conn = serve(hub)
    assert say(conn, b"PUB news hi\n") == b"OK 0\r\n"
    idle.server_stopping()
    assert conn.eof_written
    conn.clock.advance(0)  # connection_lost comes on a later turn, as on every driver
    assert conn.closed


def test_server_stopping_answers_a_command_that_has_begun_then_closes() -> None:
    """A command whose first bytes came before the stop is run and answered,
    and so is any whole line that came with its end; then the connection closes."""
    hub = PubSubHub()
    _, subscriber = serve(hub)
    assert say(subscriber, b"SUB news\n") == b"OK\r\n"
    finishing, conn = serve(hub)
    conn.deliver(b"PUB news he")
    finishing.server_stopping()
    assert not conn.transport.is_closing()
    conn.deliver(b"llo\nPUB news ag")
    assert conn.take_written() == b"OK 1\r\n"
    assert not conn.transport.is_closing()
    conn.deliver(b"ain\n")
    assert conn.take_written() == b"OK 1\r\n"
    assert conn.closed
    assert subscriber.take_written() == b"MSG news hello\r\nMSG news again\r\n"


def test_eof_while_finishing_a_command_closes() -> None:
    """A client that half-closes in the middle of its command while the
    server stops will never complete it: the connection closes, the piece
    unanswered."""
    hub = PubSubHub()
    finishing, conn = serve(hub)
    assert say(conn, b"SUB news\n") == b"OK\r\n"
    conn.deliver(b"PUB news half")
    finishing.server_stopping()
    conn.deliver_eof()
    assert conn.take_written() == b""
    assert conn.closed
    assert hub.subscribers_of(b"news") == []


def test_eof_from_non_subscriber_closes_after_flushing() -> None:
    """A client that is not subscribed and half-closes gets all its replies,
    then the server closes too."""
    hub = PubSubHub()
    _, conn = serve(hub, peer_reads=False)
    conn.deliver(b"PUB t x\nHELLO\n")
    conn.deliver_eof()
    assert (conn.transport.is_closing(), conn.closed) == (True, False)
    assert conn.read() == b"OK 0\r\nERR unknown command\r\n"
    assert conn.closed
    assert conn.eof_written


def test_eof_after_unsubscribing_everything_closes() -> None:
    """A client that subscribed and then unsubscribed counts as not subscribed at EOF."""
    hub = PubSubHub()
    _, conn = serve(hub)
    conn.deliver(b"SUB t\nUNSUB t\n")
    conn.deliver_eof()
    assert conn.written == b"OK\r\nOK\r\n"
    assert conn.closed


def test_eof_from_subscriber_stays_half_open() -> None:
    """A subscriber that half-closes stays connected and keeps getting MSGs."""
    hub = PubSubHub()
    protocol, listener = serve(hub)
    _, publisher = serve(hub)
    listener.deliver(b"SUB news\n")
    listener.deliver_eof()
    assert listener.take_written() == b"OK\r\n"
    assert not listener.closed
    assert not listener.transport.is_closing()
    assert not listener.eof_written
    for n in range(3):
        assert say(publisher, b"PUB news item %d\n" % n) == b"OK 1\r\n"
        assert listener.take_written() == b"MSG news item %d\r\n" % n
    assert hub.topics_of(protocol) == [b"news"]
    listener.lose_connection()
    assert hub.topics_of(protocol) == []
    assert say(publisher, b"PUB news late\n") == b"OK 0\r\n"


# ----------------------------------------------------------- slow consumers


def test_slow_consumer_is_dropped() -> None:
    """A subscriber that does not read gets MSGs until the next would take its
    backlog past max_backlog; that one is neither delivered nor counted, it
    gets ``ERR slow consumer`` as its last line and is closed, and its
    buffer never holds more than max_backlog plus that ERR line."""
    hub = PubSubHub()
    slow_protocol, slow = serve(hub, peer_reads=False, max_backlog=1000)
    fast_protocol, fast = serve(hub)
    _, publisher = serve(hub)
    slow.deliver(b"SUB t\n")
    assert slow.read() == b"OK\r\n"
    fast.deliver(b"SUB t\n")
    assert fast.take_written() == b"OK\r\n"

    message = b"m" * 92
    msg_line = b"MSG t " + message + b"\r\n"
    assert len(msg_line) == 100  # ten fit in 1000 bytes exactly
    replies: list[bytes] = []
    sizes: list[int] = []
    for _ in range(13):
        replies.append(say(publisher, b"PUB t " + message + b"\n"))
        sizes.append(slow.transport.get_write_buffer_size())
    assert replies == [b"OK 2\r\n"] * 10 + [b"OK 1\r\n"] * 3
    assert fast.take_written() == msg_line * 13
    assert max(sizes) <= 1000 + len(SLOW)
    assert sizes[9] == 1000
    assert sizes[10] == 1000 + len(SLOW)
    assert hub.topics_of(slow_protocol) == []
    assert hub.subscribers_of(b"t") == [fast_protocol]
    assert slow.transport.is_closing()

    assert slow.read() == msg_line * 10 + SLOW
    assert slow.written.endswith(SLOW)
    assert slow.closed
    assert slow.eof_written
    assert say(publisher, b"PUB t " + message + b"\n") == b"OK 1\r\n"


def test_slow_consumer_that_reads_in_time_is_kept() -> None:
    """A subscriber that reads before its backlog passes the limit is never dropped."""
    hub = PubSubHub()
    _, sub = serve(hub, peer_reads=False, max_backlog=1000)
    _, publisher = serve(hub)
    sub.deliver(b"SUB t\n")
    sub.read()
    message = b"m" * 92
    for round_ in range(5):
        for _ in range(10):
            assert say(publisher, b"PUB t " + message + b"\n") == b"OK 1\r\n", round_
        assert sub.read() == (b"MSG t " + message + b"\r\n") * 10
    assert not sub.transport.is_closing()


def test_slow_publisher_subscribed_to_its_own_topic() -> None:
    """A publisher whose own backlog is full is dropped as a slow consumer: its
    own publication is not counted, and the ERR is the last thing it gets."""
    hub = PubSubHub()
    protocol, conn = serve(hub, peer_reads=False, max_backlog=100)
    conn.deliver(b"SUB t\n")
    conn.deliver(b"PUB t " + b"a" * 60 + b"\n")
    assert conn.transport.get_write_buffer_size() == len(b"OK\r\nMSG t " + b"a" * 60 + b"\r\nOK 1\r\n")
    conn.deliver(b"PUB t " + b"b" * 60 + b"\n")
    assert hub.topics_of(protocol) == []
    assert conn.read() == b"OK\r\nMSG t " + b"a" * 60 + b"\r\nOK 1\r\n" + SLOW
    assert conn.closed


def test_slow_consumer_default_backlog() -> None:
    """With the default policy a subscriber may fall 1 MiB behind, and no more."""
    assert DEFAULT_MAX_BACKLOG == 1024 * 1024
    hub = PubSubHub()
    slow_protocol, slow = serve(hub, peer_reads=False)
    _, publisher = serve(hub)
    slow.deliver(b"SUB t\n")
    slow.read()
    message = b"x" * (1024 - 8)
    msg_line = b"MSG t " + message + b"\r\n"
    assert len(msg_line) == 1024
    publisher.deliver((b"PUB t " + message + b"\n") * 1030)
    assert publisher.take_written() == b"OK 1\r\n" * 1024 + b"OK 0\r\n" * 6
    assert slow.transport.get_write_buffer_size() == DEFAULT_MAX_BACKLOG + len(SLOW)
    assert hub.topics_of(slow_protocol) == []
    assert slow.read() == msg_line * 1024 + SLOW
    assert slow.closed


class Refuser:
    """A subscriber that never accepts a publication."""

    def __init__(self) -> None:
        self.offered: list[tuple[bytes, bytes]] = []

    def deliver(self, topic: bytes, message: bytes) -> bool:
        self.offered.append((topic, message))
        return False


def test_hub_counts_only_accepted_deliveries() -> None:
    """The count in ``OK <n>`` is of subscribers that accepted the publication,
    not of subscribers offered it."""
    hub = PubSubHub()
    refuser = Refuser()
    hub.subscribe(b"t", refuser)
    _, listener = serve(hub)
    _, publisher = serve(hub)
    say(listener, b"SUB t\n")
    assert say(publisher, b"PUB t hi\n") == b"OK 1\r\n"
    assert refuser.offered == [(b"t", b"hi")]
    assert listener.take_written() == b"MSG t hi\r\n"


# ------------------------------------------------------------ flow control


def test_client_not_reading_replies_is_paused() -> None:
    """A client that sends commands without reading the replies is paused once
    the server's buffer passes the high-water mark; its further commands wait,
    and it is resumed, losing nothing, as it reads."""
    hub = PubSubHub()
    protocol, conn = serve(hub, peer_reads=False)
    transport = conn.transport
    low, high = transport.get_write_buffer_limits()
    reply = b"OK 0\r\n"
    count = 2 * high // len(reply)
    conn.deliver(b"PUB t x\n" * count)
    size = transport.get_write_buffer_size()
    assert high < size <= high + len(reply)
    assert (transport.is_reading(), protocol.paused) == (False, True)
    conn.deliver(b"PUB t x\n" * 100)
    assert transport.get_write_buffer_size() == size  # held, not run

    data = conn.read(size - low - 1)  # not yet down to the low-water mark
    assert not transport.is_reading()
    assert transport.get_write_buffer_size() == low + 1

    received = bytearray(data)
    rounds = 0
    while len(received) < (count + 100) * len(reply):
        rounds += 1
        assert rounds < 100, "the server stopped answering"
        received += conn.read()
        assert transport.get_write_buffer_size() <= high + len(reply)
    assert bytes(received) == reply * (count + 100)
    assert transport.is_reading()
    assert not protocol.paused
    conn.deliver(b"PUB t y\n")
    assert conn.read() == reply


def test_subscriber_backlog_pauses_its_reading() -> None:
    """A subscriber whose buffer of MSGs passes the high-water mark stops being
    read from, yet stays subscribed; its commands run once it catches up."""
    hub = PubSubHub()
    protocol, sub = serve(hub, peer_reads=False)
    _, publisher = serve(hub)
    sub.deliver(b"SUB t\n")
    sub.read()
    _, high = sub.transport.get_write_buffer_limits()
    message = b"z" * 1000
    for _ in range(high // 1000 + 2):
        publisher.deliver(b"PUB t " + message + b"\n")
    assert not sub.transport.is_reading()
    sub.deliver(b"UNSUB t\n")
    assert hub.topics_of(protocol) == [b"t"]
    sub.peer_reads = True
    assert hub.topics_of(protocol) == []
    assert sub.written.endswith(b"MSG t " + message + b"\r\nOK\r\n")


# ---------------------------------------------------------------- property


LINES = [
    b"SUB a\n",
    b"SUB b\r\n",
    b"UNSUB a\n",
    b"UNSUB b\r\n",
    b"PUB a hello\n",
    b"PUB b two words\r\n",
    b"PUB a \n",
    b"PUB b cr\r\r\n",
    b"\n",
    b"\r\n",
    b"NOPE\n",
    b"sub a\n",
    b"SUB\n",
    b"PUB  x\n",
    b"SUB a b\n",
    b"SUB " + b"t" * 201 + b"\n",
]


def run_script(chunks: list[bytes], *, eof: bool) -> tuple[bytes, bytes, bool]:
    """Feed ``chunks`` to one connection while a second one listens on both
    topics; return what each was sent and whether the first was closed."""
    hub = PubSubHub()
    _, client = serve(hub)
    _, listener = serve(hub)
    listener.deliver(b"SUB a\nSUB b\n")
    listener.take_written()
    for chunk in chunks:
        client.deliver(chunk)
    if eof:
        client.deliver_eof()
    return client.written, listener.written, client.closed


@st.composite
def scripts(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A script of command lines and one way of chunking it."""
    lines = draw(st.lists(st.sampled_from(LINES), min_size=1, max_size=12))
    data = b"".join(lines)
    return data, draw(chunkings(data))


@given(scripts(), st.booleans())
def test_any_chunking_gives_the_same_output(script: tuple[bytes, list[bytes]], eof: bool) -> None:
    """However a client's bytes are split, the server sends exactly what it
    sends for the script delivered in one piece (to the client and to another
    subscriber), and ends the connection the same way."""
    data, chunks = script
    assert b"".join(chunks) == data
    whole = run_script([data], eof=eof)
    assert run_script(chunks, eof=eof) == whole
    assert whole[0].count(b"\r\n") >= data.count(b"\n")


@given(
    st.lists(st.sampled_from([*LINES[:12], b"PUB a " + b"x" * 20 + b"\n"]), min_size=1, max_size=10).flatmap(
        lambda lines: chunkings(b"".join(lines))
    )
)
def test_any_chunking_with_an_over_long_line(chunks: list[bytes]) -> None:
    """The verdict on an over-long line, and everything answered before it,
    does not depend on how the bytes were split."""

    def run(pieces: list[bytes]) -> tuple[bytes, bool]:
        # A 20-byte command limit, so over-long lines are cheap to try.  (A
        # subclass setting max_line_length would not do: the constructor sets
        # it from max_command_length.)
        conn = connect(PubSubServerProtocol(PubSubHub(), max_command_length=20))
        for piece in pieces:
            if conn.transport.is_closing():
                break
            conn.deliver(piece)
        return conn.written, conn.closed

    data = b"".join(chunks)
    whole = run([data])
    assert run(chunks) == whole
    assert whole[1] == (TOO_LONG in whole[0])
    assert whole[0].endswith(TOO_LONG) or not whole[1]
    assert whole[1] == (b"x" * 20 in data)
