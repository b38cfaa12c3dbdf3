"""Fuzzing pub/sub: the wire parsers, the server, the client and the hub.

Arbitrary bytes and mutated valid streams, in arbitrary chunkings.  The
server must never raise, must answer every command line exactly once with a
line a pub/sub server may send, must close exactly when a line is over its
limit, and must stay within its limits; the client must raise nothing but
:class:`~weft.protocols.errors.ProtocolError`, which ends its connection;
the hub must never pass its limits whatever is asked of it.
``HYPOTHESIS_PROFILE=long`` runs it longer.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzzing import mutated, noise
from weft.drivers.testing import MemoryConnection, chunkings, connect
from weft.protocols.errors import ProtocolError
from weft.protocols.framing import LineParser
from weft.protocols.pubsub import (
    PubSubClientProtocol,
    PubSubHub,
    PubSubServerProtocol,
    SubscriptionLimitError,
    TooManySubscriptionsError,
    TooManyTopicsError,
)
from weft.protocols.pubsub.wire import (
    MAX_TOPIC_LENGTH,
    Command,
    Error,
    InvalidCommandError,
    Message,
    Ok,
    Publish,
    Reply,
    Subscribe,
    Unsubscribe,
    check_topic,
    encode_command,
    encode_error,
    encode_message,
    encode_ok,
    parse_command,
    parse_server_line,
)

LONG_TOPIC = b"t" * MAX_TOPIC_LENGTH
LIMIT = 40  # the server's command limit in these tests: over-long lines are cheap
#: A command exactly at the limit: what follows it decides its fate.
AT_LIMIT = b"PUB a " + b"m" * (LIMIT - 6)

#: Tokens that mean something to the server.
COMMAND_TOKENS = (
    b"SUB ",
    b"UNSUB ",
    b"PUB ",
    b"a",
    b"b",
    b" ",
    b"\n",
    b"\r",
    b"\r\n",
    LONG_TOPIC,
    AT_LIMIT,
    b"SUB a\n",
    b"PUB a hi\n",
    b"UNSUB a\n",
)

#: Tokens that mean something to the client.
SERVER_TOKENS = (
    b"OK",
    b"OK 1",
    b"OK 12",
    b"ERR ",
    b"ERR slow consumer",
    b"MSG a ",
    b" ",
    b"\r\n",
    b"\n",
    b"\r",
)

#: Every reason the server may give after ERR.
REASONS = {
    b"empty command",
    b"unknown command",
    b"missing topic",
    b"topic too long",
    b"topic contains a space",
    b"line too long",
    b"slow consumer",
    b"too many subscriptions",
    b"too many topics",
}


def lines_without_newline(tokens: tuple[bytes, ...]) -> st.SearchStrategy[bytes]:
    """One line's worth of noise (a line never holds its ``\\n``)."""
    return noise(tokens).map(lambda data: data.replace(b"\n", b""))


# -------------------------------------------------------------------- wire


@given(lines_without_newline(COMMAND_TOKENS))
def test_parse_command_takes_any_line(line: bytes) -> None:
    """Any line is a command or an InvalidCommandError with a known reason;
    a command has a valid topic and survives encoding and parsing again."""
    try:
        command = parse_command(line)
    except InvalidCommandError as exc:
        refused: InvalidCommandError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.reason in REASONS
        return
    check_topic(command.topic)
    encoded = encode_command(command)
    assert encoded.endswith(b"\r\n")
    assert parse_command(encoded[:-1]) == command


@given(lines_without_newline(SERVER_TOKENS))
def test_parse_server_line_takes_any_line(line: bytes) -> None:
    """Any line is something a server says or a ProtocolError; what it says
    survives encoding and parsing again."""
    try:
        said = parse_server_line(line)
    except ProtocolError:
        return
    if isinstance(said, Ok):
        encoded = encode_ok(said.count)
    elif isinstance(said, Error):
        encoded = encode_error(said.reason)
    else:
        check_topic(said.topic)
        encoded = encode_message(said.topic, said.message)
    assert parse_server_line(encoded[:-1]) == said


# ------------------------------------------------------------------ server

MAX_TOPICS = 4
MAX_SUBSCRIPTIONS = 2

VALID_COMMANDS = [
    b"SUB a\n",
    b"SUB b\r\n",
    b"SUB c\n",
    b"SUB d\n",
    b"SUB e\n",
    b"UNSUB a\n",
    b"UNSUB b\n",
    b"PUB a hello\n",
    b"PUB b two words\r\n",
    b"PUB c \n",
    b"PUB zz x\n",
]


@st.composite
def client_streams(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Noise, or a valid script mutated; with the valid lines before the first change."""
    if draw(st.booleans()):
        return draw(noise(COMMAND_TOKENS)), b""
    script = draw(st.lists(st.sampled_from(VALID_COMMANDS), max_size=10))
    mutation = draw(mutated(b"".join(script), COMMAND_TOKENS))
    intact = b""
    for line in script:
        if len(intact) + len(line) > mutation.first_change:
            break
        intact += line
    return mutation.data, intact


class Served:
    """A server connection under test, a listener subscribed to ``a``, and their hub."""

    def __init__(self, *, reads: bool) -> None:
        self.hub = PubSubHub(max_topics=MAX_TOPICS, max_subscriptions=MAX_SUBSCRIPTIONS)
        self.listener = connect(PubSubServerProtocol(self.hub))
        self.listener.deliver(b"SUB a\n")
        self.listener.take_written()
        self.protocol = PubSubServerProtocol(self.hub, max_command_length=LIMIT)
        self.conn: MemoryConnection = connect(self.protocol, peer_reads=reads)
        # A small high-water mark, so a client that does not read is paused.
        self.conn.transport.set_write_buffer_limits(high=64)
        self.largest_chunk = 0

    def run(self, chunks: list[bytes]) -> None:
        """Deliver ``chunks``, checking the server's bounds after each."""
        for chunk in chunks:
            self.conn.deliver(chunk)  # nothing may escape
            self.largest_chunk = max(self.largest_chunk, len(chunk))
            self.check_bounds()

    def catch_up(self) -> None:
        """The client that was not reading reads everything, and the server
        runs what it held back meanwhile.

        Read by read(), not by setting peer_reads: with peer_reads set, a
        reply written from resume_writing (inside the read) reaches the peer
        before the bytes being read (a memory driver bug, reported).
        """
        conn = self.conn
        for _ in range(10_000):
            if not conn.transport.get_write_buffer_size() and not self.protocol.paused:
                break
            conn.read()
            self.check_bounds()
        else:
            raise AssertionError("the server never caught up")
        conn.peer_reads = True

    def check_bounds(self) -> None:
        """The server is within every limit it has."""
        assert self.hub.subscription_count(self.protocol) <= MAX_SUBSCRIPTIONS
        assert self.hub.topic_count <= MAX_TOPICS
        # The parser holds at most a command and its "\r", and, while the
        # protocol is paused, what was left of the chunk it was reading (the
        # transport holds later ones).
        parser = self.protocol.parser
        assert isinstance(parser, LineParser)
        held = parser.buffered
        assert held <= LIMIT + 1 + (self.largest_chunk if self.protocol.paused else 0)
        # Past the high-water mark the server stops: at most one more reply
        # and the MSG of the client's own publication.
        assert self.conn.transport.get_write_buffer_size() <= 64 + LIMIT + 2 + len(b"OK 1\r\n")


def server_verdict(data: bytes) -> tuple[int, bool]:
    """How many lines of ``data`` the server runs, and whether it refuses one as too long."""
    *complete, tail = data.split(b"\n")
    for index, line in enumerate(complete):
        if len(line) - line.endswith(b"\r") > LIMIT:
            return index, True
    # An unfinished line is refused once it cannot be a command and its "\r".
    return len(complete), len(tail) > LIMIT + 1


@given(client_streams(), st.booleans(), st.booleans(), st.data())
def test_server_survives_hostile_clients(
    stream: tuple[bytes, bytes], reads: bool, eof: bool, rnd: st.DataObject
) -> None:
    """Whatever a client sends, in any chunking, reading its replies or not:
    nothing escapes; each line run gets exactly one reply (MSGs aside),
    every line sent is one a server may send; the connection closes, after
    ``ERR line too long``, exactly when a line is over the limit; the
    server's subscriptions, topics, parser and write buffer stay bounded;
    and replies to the valid lines before a mutation are untouched."""
    data, intact = stream
    served = Served(reads=reads)
    served.run(rnd.draw(chunkings(data)))
    if not reads:
        served.catch_up()
    ran, too_long = server_verdict(data)
    closed_early = served.conn.closed
    if eof and not closed_early:
        subscribed = served.hub.subscription_count(served.protocol) > 0
        served.conn.deliver_eof()
        assert served.conn.closed == (not subscribed)

    sent = served.conn.written
    assert sent.endswith(b"\r\n") or not sent
    said = [parse_server_line(line) for line in sent.split(b"\r\n")[:-1]]
    replies = [line for line in said if not isinstance(line, Message)]
    assert len(replies) == ran + too_long
    for reply in replies:
        assert not isinstance(reply, Error) or reply.reason in REASONS
    assert closed_early == too_long
    if too_long:
        assert replies[-1] == Error(b"line too long")
        assert served.hub.subscription_count(served.protocol) == 0
    for line in served.listener.written.split(b"\r\n")[:-1]:
        assert isinstance(parse_server_line(line), Message)

    if intact:
        alone = Served(reads=True)
        alone.run([intact])
        assert sent.startswith(alone.conn.written)
        assert served.listener.written.startswith(alone.listener.written)


# ------------------------------------------------------------------ client


class Recorder(PubSubClientProtocol):
    """A client with a short line limit that records every callback."""

    max_line_length = 30

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[object, ...]] = []
        self.lost: list[BaseException | None] = []

    def reply_received(self, command: Command, reply: Reply) -> None:
        self.events.append(("reply", command, reply))

    def message_received(self, topic: bytes, message: bytes) -> None:
        check_topic(topic)
        self.events.append(("message", topic, message))

    def server_error(self, reason: bytes) -> None:
        self.events.append(("server error", reason))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


COMMANDS: list[Command] = [Subscribe(b"a"), Unsubscribe(b"a"), Publish(b"a", b"hi"), Publish(b"b", b"")]


def answers(commands: list[Command]) -> st.SearchStrategy[bytes]:
    """A valid server transcript for ``commands``: each answered in order,
    with MSG lines and ERR replies here and there."""

    def reply(command: Command) -> st.SearchStrategy[bytes]:
        ok = encode_ok(3) if isinstance(command, Publish) else encode_ok()
        return st.sampled_from([ok, encode_error(b"unknown command")])

    message = st.sampled_from([b"", encode_message(b"a", b"hi"), encode_message(b"b", b"")])
    return st.tuples(*(st.tuples(message, reply(command)) for command in commands)).map(
        lambda pairs: b"".join(first + second for first, second in pairs)
    )


@st.composite
def server_streams(draw: st.DrawFn, commands: list[Command]) -> bytes:
    """Noise, or a valid transcript for ``commands`` mutated."""
    if draw(st.booleans()):
        return draw(noise(SERVER_TOKENS))
    return draw(mutated(draw(answers(commands)), SERVER_TOKENS)).data


def run_client(commands: list[Command], chunks: list[bytes]) -> tuple[list[tuple[object, ...]], str | None]:
    """Send ``commands``, then feed ``chunks`` as the server's bytes; return
    the callbacks seen and the error that ended the connection, if any,
    checking the client's promises on the way."""
    client = Recorder()
    conn = connect(client)
    for command in commands:
        client.send_command(command)
    error: ProtocolError | None = None
    for chunk in chunks:
        try:
            conn.deliver(chunk)
        except ProtocolError as exc:  # the only exception a server can provoke
            assert error is None, "nothing is delivered after the connection ended"
            error = exc
        if error is not None:
            assert conn.closed
            assert client.lost == [error]
    assert conn.closed == (error is not None)
    # Replies go to the commands in order; a reply of the wrong kind ends
    # the connection having used up the command it answered.
    answered = [event[1] for event in client.events if event[0] == "reply"]
    unanswered = len(commands) - len(answered) - len(client.pending)
    assert unanswered == 0 or (unanswered == 1 and error is not None)
    assert answered == commands[: len(answered)]
    assert client.pending == commands[len(commands) - len(client.pending) :]
    return client.events, None if error is None else type(error).__name__


@given(
    st.lists(st.sampled_from(COMMANDS), max_size=5).flatmap(
        lambda cs: st.tuples(st.just(cs), server_streams(cs))
    )
)
def test_client_survives_hostile_servers(case: tuple[list[Command], bytes]) -> None:
    """Whatever a server sends, in any chunking: the client raises nothing but
    ProtocolError, which ends its connection; replies go to the commands in
    the order they were sent; and any chunking gives the same callbacks and
    the same end as one piece."""
    commands, data = case
    whole = run_client(commands, [data] if data else [])
    for cut in (1, 2, 7):
        chunks = [data[start : start + cut] for start in range(0, len(data), cut)]
        assert run_client(commands, chunks) == whole


# --------------------------------------------------------------------- hub


class Sink:
    """An in-process subscriber that takes everything."""

    def deliver(self, topic: bytes, message: bytes) -> bool:
        return True


operations = st.lists(
    st.tuples(
        st.sampled_from(["subscribe", "unsubscribe", "unsubscribe_all", "publish"]),
        st.integers(0, 3),  # which subscriber
        st.sampled_from([b"a", b"b", b"c", b"d", b"e"]),
    ),
    max_size=40,
)


@given(operations)
def test_hub_never_passes_its_limits(ops: list[tuple[str, int, bytes]]) -> None:
    """Any sequence of hub operations keeps it within max_topics and
    max_subscriptions; a refusal raises the right error exactly when a
    model of the hub says the limit is reached, and changes nothing;
    publications reach exactly the model's subscribers."""
    hub = PubSubHub(max_topics=3, max_subscriptions=2)
    sinks = [Sink() for _ in range(4)]
    model: dict[int, list[bytes]] = {n: [] for n in range(4)}
    for op, who, topic in ops:
        sink = sinks[who]
        topics_in_use = {t for held in model.values() for t in held}
        if op == "subscribe":
            expected: type[SubscriptionLimitError] | None = None
            if topic not in model[who]:
                if len(model[who]) >= 2:
                    expected = TooManySubscriptionsError
                elif topic not in topics_in_use and len(topics_in_use) >= 3:
                    expected = TooManyTopicsError
            raised: type[SubscriptionLimitError] | None = None
            try:
                hub.subscribe(topic, sink)
            except SubscriptionLimitError as exc:
                raised = type(exc)
            assert raised is expected
            if raised is None and topic not in model[who]:
                model[who].append(topic)
        elif op == "unsubscribe":
            hub.unsubscribe(topic, sink)
            if topic in model[who]:
                model[who].remove(topic)
        elif op == "unsubscribe_all":
            hub.unsubscribe_all(sink)
            model[who] = []
        else:
            assert hub.publish(topic, b"x") == sum(topic in held for held in model.values())
        assert hub.topic_count == len({t for held in model.values() for t in held}) <= 3
        for n, held in model.items():
            assert hub.topics_of(sinks[n]) == held
            assert hub.subscription_count(sinks[n]) == len(held) <= 2
