"""PubSubClientProtocol against a real PubSubServerProtocol, through memory pumps."""

from __future__ import annotations

from typing import Any

import pytest

from weft.drivers.testing import Pump, connect, connect_pair
from weft.protocols.contract import Protocol
from weft.protocols.errors import ArgumentError, LineTooLongError, ProtocolError, UnencodableFrameError
from weft.protocols.pubsub import PubSubClientProtocol, PubSubHub, PubSubServerProtocol
from weft.protocols.pubsub.wire import Command, Error, Ok, Publish, Reply, Subscribe, Unsubscribe


class Recorder(PubSubClientProtocol):
    """A client that records every callback."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[tuple[Command, Reply]] = []
        self.messages: list[tuple[bytes, bytes]] = []
        self.server_errors: list[bytes] = []
        self.lost: list[BaseException | None] = []

    def reply_received(self, command: Command, reply: Reply) -> None:
        self.replies.append((command, reply))

    def message_received(self, topic: bytes, message: bytes) -> None:
        self.messages.append((topic, message))

    def server_error(self, reason: bytes) -> None:
        self.server_errors.append(reason)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


def pair(hub: PubSubHub, *, max_backlog: int | None = None) -> tuple[Recorder, PubSubServerProtocol, Pump]:
    """A recording client connected to a server protocol on ``hub``."""
    client = Recorder()
    server = (
        PubSubServerProtocol(hub)
        if max_backlog is None
        else PubSubServerProtocol(hub, max_backlog=max_backlog)
    )
    return client, server, connect_pair(client, server)


class Scripted(Protocol):
    """A fake server that sends fixed bytes as soon as it is connected."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def connection_made(self, transport: Any) -> None:
        transport.write(self.data)


# --------------------------------------------------------------- round trips


def test_subscribe_publish_round_trip() -> None:
    """A client subscribed to a topic and publishing on it gets the message and
    both replies, each with the command it answers."""
    hub = PubSubHub()
    client, _, pump = pair(hub)
    client.subscribe(b"news")
    client.publish(b"news", b"hello world")
    pump.run()
    assert client.messages == [(b"news", b"hello world")]
    assert client.replies == [(Subscribe(b"news"), Ok()), (Publish(b"news", b"hello world"), Ok(1))]
    assert client.pending == []
    assert client.server_errors == []
    assert client.lost == []


def test_two_clients_share_a_hub() -> None:
    """One client's publication reaches another client subscribed on the same hub."""
    hub = PubSubHub()
    listener, _, listener_pump = pair(hub)
    talker, _, talker_pump = pair(hub)
    listener.subscribe(b"chat")
    listener_pump.run()
    talker.publish(b"chat", b"hi there")
    talker.publish(b"chat", b"")
    talker.publish(b"elsewhere", b"nobody")
    talker_pump.run()
    listener_pump.run()
    assert talker.replies == [
        (Publish(b"chat", b"hi there"), Ok(1)),
        (Publish(b"chat", b""), Ok(1)),
        (Publish(b"elsewhere", b"nobody"), Ok(0)),
    ]
    assert talker.messages == []
    assert listener.messages == [(b"chat", b"hi there"), (b"chat", b"")]
    assert listener.replies == [(Subscribe(b"chat"), Ok())]

    listener.unsubscribe(b"chat")
    listener_pump.run()
    talker.publish(b"chat", b"gone")
    talker_pump.run()
    listener_pump.run()
    assert listener.replies[-1] == (Unsubscribe(b"chat"), Ok())
    assert talker.replies[-1] == (Publish(b"chat", b"gone"), Ok(0))
    assert listener.messages == [(b"chat", b"hi there"), (b"chat", b"")]


def test_replies_matched_in_order() -> None:
    """Many commands sent before any reply are each matched to their own reply, in order."""
    hub = PubSubHub()
    client, _, pump = pair(hub)
    commands: list[Command] = [
        Subscribe(b"a"),
        Publish(b"a", b"1"),
        Subscribe(b"b"),
        Publish(b"b", b"2"),
        Unsubscribe(b"a"),
        Publish(b"a", b"3"),
        Unsubscribe(b"never"),
        Publish(b"b", b"trailing cr\r"),
    ]
    for command in commands:
        client.send_command(command)
    assert client.pending == commands
    pump.run()
    assert client.replies == [
        (Subscribe(b"a"), Ok()),
        (Publish(b"a", b"1"), Ok(1)),
        (Subscribe(b"b"), Ok()),
        (Publish(b"b", b"2"), Ok(1)),
        (Unsubscribe(b"a"), Ok()),
        (Publish(b"a", b"3"), Ok(0)),
        (Unsubscribe(b"never"), Ok()),
        (Publish(b"b", b"trailing cr\r"), Ok(1)),
    ]
    assert client.messages == [(b"a", b"1"), (b"b", b"2"), (b"b", b"trailing cr\r")]
    assert client.pending == []


def test_pending_empties_as_replies_arrive() -> None:
    """``pending`` lists the unanswered commands, oldest first, shrinking by one per reply."""
    hub = PubSubHub()
    client, _, pump = pair(hub)
    client.subscribe(b"t")
    client.publish(b"t", b"x")
    client.unsubscribe(b"t")
    assert client.pending == [Subscribe(b"t"), Publish(b"t", b"x"), Unsubscribe(b"t")]
    pump.deliver("client")
    assert len(client.pending) == 3  # the server answered, the answers are on their way
    pump.deliver("server", max_bytes=len(b"OK\r\n"))
    assert client.pending == [Publish(b"t", b"x"), Unsubscribe(b"t")]
    pump.deliver("server", max_bytes=len(b"MSG t x\r\n"))
    assert client.messages == [(b"t", b"x")]
    assert client.pending == [Publish(b"t", b"x"), Unsubscribe(b"t")]
    pump.deliver("server", max_bytes=len(b"OK 1\r\n"))
    assert client.pending == [Unsubscribe(b"t")]
    pump.deliver("server")
    assert client.pending == []
    assert [reply for _, reply in client.replies] == [Ok(), Ok(1), Ok()]


def test_pending_is_a_copy() -> None:
    """Changing the list ``pending`` returns does not change the client."""
    client, _, _ = pair(PubSubHub())
    client.subscribe(b"t")
    client.pending.clear()
    assert client.pending == [Subscribe(b"t")]


def test_err_reply_matched_to_its_command() -> None:
    """An ERR from the server is handed over with the command it answers
    (here a publication over the server's line limit), after the replies
    to the commands before it."""
    hub = PubSubHub()
    client, server, pump = pair(hub)
    client.max_command_length = 1_000_000  # let it through, for the server to refuse
    huge = Publish(b"t", b"m" * (64 * 1024))
    client.subscribe(b"t")
    client.send_command(huge)
    client.subscribe(b"after")
    pump.run()
    assert client.replies == [(Subscribe(b"t"), Ok()), (huge, Error(b"line too long"))]
    assert client.pending == [Subscribe(b"after")]
    assert client.server_errors == []
    assert hub.topics_of(server) == []
    assert len(client.lost) == 1


def test_err_replies_from_a_scripted_server() -> None:
    """Played by hand, a server's ERR lines between OKs go to the right commands."""
    client = Recorder()
    conn = connect(client)
    client.subscribe(b"a")
    client.publish(b"a", b"x")
    client.unsubscribe(b"b")
    assert conn.take_written() == b"SUB a\r\nPUB a x\r\nUNSUB b\r\n"
    conn.deliver(b"OK\r\nERR unknown command\r\nERR missing topic\r\n")
    assert client.replies == [
        (Subscribe(b"a"), Ok()),
        (Publish(b"a", b"x"), Error(b"unknown command")),
        (Unsubscribe(b"b"), Error(b"missing topic")),
    ]
    assert client.pending == []
    assert not conn.closed


def test_longest_server_line_is_accepted() -> None:
    """A publication at the server's 64 KiB line limit, sent with a bare "\\n",
    comes back as a MSG line one byte longer (its "\\r"): the client takes it
    and stays connected."""
    hub = PubSubHub()
    client, _, pump = pair(hub)
    client.subscribe(b"t")
    pump.run()
    message = b"m" * (64 * 1024 - len(b"PUB t "))
    raw = connect(PubSubServerProtocol(hub))
    raw.deliver(b"PUB t " + message + b"\n")
    assert raw.written == b"OK 1\r\n"
    pump.run()
    assert client.messages == [(b"t", message)]
    assert not pump.client_transport.is_closing()
    assert client.lost == []


def test_longest_publication_from_the_client() -> None:
    """The longest command the client sends is the server's limit (64 KiB, its
    "\r\n" not counted); one byte more is refused before anything is sent, with
    UnencodableFrameError (an ArgumentError), and the connection carries on."""
    hub = PubSubHub()
    client, _, pump = pair(hub)
    longest = b"m" * (64 * 1024 - len(b"PUB t "))
    client.subscribe(b"t")
    client.publish(b"t", longest)
    pump.run()
    assert client.messages == [(b"t", longest)]
    assert client.replies == [(Subscribe(b"t"), Ok()), (Publish(b"t", longest), Ok(1))]
    with pytest.raises(UnencodableFrameError):
        client.publish(b"t", longest + b"m")
    with pytest.raises(ArgumentError):
        client.publish(b"t", longest + b"m")
    assert client.pending == []
    assert pump.client_transport.get_write_buffer_size() == 0
    client.publish(b"t", b"still fine")
    pump.run()
    assert client.messages[-1] == (b"t", b"still fine")
    assert client.lost == []


def test_an_over_long_server_line_ends_the_connection_with_an_error() -> None:
    """A server line over the client's limit is a protocol violation: it propagates
    (through the memory driver) and the connection ends with that LineTooLongError."""
    client = Recorder()
    conn = connect(client)
    with pytest.raises(LineTooLongError) as caught:
        conn.deliver(b"MSG t " + b"m" * (64 * 1024) + b"\r\n")
    assert client.lost == [caught.value]
    assert conn.closed


# ----------------------------------------------------------- the callbacks


def test_constructor_callbacks() -> None:
    """``on_message`` and ``on_reply`` passed to the constructor are called
    with the messages and the (command, reply) pairs."""
    messages: list[tuple[bytes, bytes]] = []
    replies: list[tuple[Command, Reply]] = []
    client = PubSubClientProtocol(
        on_message=lambda topic, message: messages.append((topic, message)),
        on_reply=lambda command, reply: replies.append((command, reply)),
    )
    pump = connect_pair(client, PubSubServerProtocol(PubSubHub()))
    client.subscribe(b"t")
    client.publish(b"t", b"hello there")
    pump.run()
    assert messages == [(b"t", b"hello there")]
    assert replies == [(Subscribe(b"t"), Ok()), (Publish(b"t", b"hello there"), Ok(1))]


def test_no_callbacks_is_fine() -> None:
    """A client with no callbacks still matches replies and empties ``pending``."""
    client = PubSubClientProtocol()
    pump = connect_pair(client, PubSubServerProtocol(PubSubHub()))
    client.subscribe(b"t")
    client.publish(b"t", b"x")
    pump.run()
    assert client.pending == []
    assert not pump.client_transport.is_closing()


def test_subclass_overrides_replace_constructor_callbacks() -> None:
    """A subclass's overridden callbacks are the ones called."""
    called: list[str] = []

    class Sub(PubSubClientProtocol):
        def message_received(self, topic: bytes, message: bytes) -> None:
            called.append(f"message {topic!r} {message!r}")

        def reply_received(self, command: Command, reply: Reply) -> None:
            called.append(f"reply {type(command).__name__} {reply!r}")

    client = Sub(
        on_message=lambda topic, message: called.append("on_message"),
        on_reply=lambda command, reply: called.append("on_reply"),
    )
    pump = connect_pair(client, PubSubServerProtocol(PubSubHub()))
    client.subscribe(b"t")
    client.publish(b"t", b"m")
    pump.run()
    assert called == [
        "reply Subscribe Ok(count=None)",
        "message b't' b'm'",
        "reply Publish Ok(count=1)",
    ]


# ------------------------------------------------------------ server errors


def test_slow_consumer_goes_to_server_error() -> None:
    """The unsolicited ``ERR slow consumer`` goes to ``server_error``, after
    the messages sent before it, and is not taken as the reply to a pending
    command; then the connection ends."""
    hub = PubSubHub()
    client, server, pump = pair(hub, max_backlog=200)
    client.subscribe(b"t")
    pump.run()
    pump.stall("client")  # the client's host stops reading

    publisher, _, publisher_pump = pair(hub)
    for n in range(5):
        publisher.publish(b"t", b"%d" % n + b"x" * 40)
    publisher_pump.run()
    counts = [reply for _, reply in publisher.replies]
    assert counts == [Ok(1), Ok(1), Ok(1), Ok(1), Ok(0)]
    assert hub.topics_of(server) == []

    client.subscribe(b"other")  # never answered: the server is closing
    pump.unstall("client")
    pump.run()
    assert client.messages == [(b"t", b"%d" % n + b"x" * 40) for n in range(4)]
    assert client.server_errors == [b"slow consumer"]
    assert client.replies == [(Subscribe(b"t"), Ok())]
    assert client.pending == [Subscribe(b"other")]
    assert len(client.lost) == 1
    assert pump.server_transport.connection_lost_called


# ------------------------------------------------------ protocol violations


def test_garbage_line_raises_and_ends_connection() -> None:
    """A line no pub/sub server sends raises ProtocolError out of the delivering
    call, and the client's connection ends with that error."""
    client = Recorder()
    conn = connect(client)
    client.subscribe(b"t")
    with pytest.raises(ProtocolError):
        conn.deliver(b"HELLO there\r\n")
    assert conn.closed
    assert len(client.lost) == 1
    assert isinstance(client.lost[0], ProtocolError)
    assert conn.transport.is_closing()
    assert client.replies == []


def test_reply_with_nothing_pending_raises() -> None:
    """A reply when no command is waiting for one is a ProtocolError that ends the connection."""
    client = Recorder()
    conn = connect(client)
    with pytest.raises(ProtocolError, match="nobody sent"):
        conn.deliver(b"OK\r\n")
    assert conn.closed
    assert isinstance(client.lost[0], ProtocolError)


def test_one_reply_too_many_raises() -> None:
    """Replies beyond the commands sent raise, after the matching ones were handed over."""
    client = Recorder()
    conn = connect(client)
    client.subscribe(b"t")
    with pytest.raises(ProtocolError):
        conn.deliver(b"OK\r\nOK\r\n")
    assert client.replies == [(Subscribe(b"t"), Ok())]
    assert conn.closed
    assert isinstance(client.lost[0], ProtocolError)


@pytest.mark.parametrize(
    ("send", "line"),
    [("subscribe", b"OK 1\r\n"), ("publish", b"OK\r\n")],
)
def test_wrong_kind_of_ok_raises(send: str, line: bytes) -> None:
    """``OK <n>`` answering a SUB, or a bare ``OK`` answering a PUB, is a ProtocolError."""
    client = Recorder()
    conn = connect(client)
    if send == "subscribe":
        client.subscribe(b"t")
    else:
        client.publish(b"t", b"m")
    with pytest.raises(ProtocolError):
        conn.deliver(line)
    assert conn.closed
    assert client.replies == []


def test_garbage_through_a_pump() -> None:
    """Through a pump, the ProtocolError propagates out of ``pump.run`` and the
    client's connection ends with it (and its peer is reset)."""
    client = Recorder()
    server = Scripted(b"OK\r\nWHAT\r\n")
    pump = connect_pair(client, server)
    client.subscribe(b"t")
    with pytest.raises(ProtocolError):
        pump.run()
    assert client.replies == [(Subscribe(b"t"), Ok())]
    assert len(client.lost) == 1
    assert isinstance(client.lost[0], ProtocolError)
    assert pump.client_transport.connection_lost_called
    pump.run()
    assert pump.server_transport.connection_lost_called


# ------------------------------------------------------------ byte by byte


def test_one_byte_at_a_time() -> None:
    """With the pump moving one byte per step in each direction, the client
    sees exactly what it sees when everything moves at once."""

    def exchange(max_bytes: int | None) -> tuple[Recorder, Recorder]:
        hub = PubSubHub()
        a, _, pump_a = pair(hub)
        b, _, pump_b = pair(hub)
        a.subscribe(b"t")
        a.subscribe(b"u")
        pump_a.run(max_bytes=max_bytes)
        b.publish(b"t", b"first message")
        b.publish(b"u", b"")
        b.publish(b"t", b"ends with cr\r")
        b.unsubscribe(b"u")
        pump_b.run(max_bytes=max_bytes)
        a.publish(b"t", b"mine")
        a.unsubscribe(b"t")
        pump_a.run(max_bytes=max_bytes)
        return a, b

    a, b = exchange(1)
    assert a.messages == [(b"t", b"first message"), (b"u", b""), (b"t", b"ends with cr\r"), (b"t", b"mine")]
    assert a.replies == [
        (Subscribe(b"t"), Ok()),
        (Subscribe(b"u"), Ok()),
        (Publish(b"t", b"mine"), Ok(1)),
        (Unsubscribe(b"t"), Ok()),
    ]
    assert b.replies == [
        (Publish(b"t", b"first message"), Ok(1)),
        (Publish(b"u", b""), Ok(1)),
        (Publish(b"t", b"ends with cr\r"), Ok(1)),
        (Unsubscribe(b"u"), Ok()),
    ]
    assert a.pending == []
    assert b.pending == []
    whole_a, whole_b = exchange(None)
    assert (whole_a.messages, whole_a.replies) == (a.messages, a.replies)
    assert (whole_b.messages, whole_b.replies) == (b.messages, b.replies)
