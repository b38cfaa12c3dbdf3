"""The pub/sub wire format: parsing and encoding of commands and server lines."""

from __future__ import annotations

import pytest

from weft.protocols.errors import ArgumentError, ProtocolError, UnencodableFrameError
from weft.protocols.pubsub.wire import (
    MAX_TOPIC_LENGTH,
    Command,
    Error,
    InvalidCommandError,
    Message,
    Ok,
    Publish,
    ServerLine,
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

# ------------------------------------------------------------ parse_command


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"SUB news", Subscribe(b"news")),
        (b"UNSUB news", Unsubscribe(b"news")),
        (b"PUB news hello", Publish(b"news", b"hello")),
        (b"PUB news hello big world", Publish(b"news", b"hello big world")),
        (b"PUB news ", Publish(b"news", b"")),
        (b"PUB news  two leading", Publish(b"news", b" two leading")),
        (b"PUB news trailing ", Publish(b"news", b"trailing ")),
        (b"SUB x", Subscribe(b"x")),
        (b"SUB a.b/c:d-\xff", Subscribe(b"a.b/c:d-\xff")),
        (b"PUB t \x00\x01binary\xfe", Publish(b"t", b"\x00\x01binary\xfe")),
    ],
)
def test_parse_command_valid_forms(line: bytes, command: Command) -> None:
    """Every valid command form parses to its command, the message being the
    whole rest of the line (spaces and all, possibly empty)."""
    assert parse_command(line) == command


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"SUB news\r", Subscribe(b"news")),
        (b"UNSUB news\r", Unsubscribe(b"news")),
        (b"PUB news hello\r", Publish(b"news", b"hello")),
        (b"PUB news \r", Publish(b"news", b"")),
    ],
)
def test_parse_command_strips_one_carriage_return(line: bytes, command: Command) -> None:
    """A "\\r" before the (already removed) "\\n" is dropped."""
    assert parse_command(line) == command


def test_parse_command_strips_exactly_one_carriage_return() -> None:
    """Only one "\\r" is stripped: a second one is part of the topic or message."""
    assert parse_command(b"PUB news hello\r\r") == Publish(b"news", b"hello\r")
    assert parse_command(b"SUB news\r\r") == Subscribe(b"news\r")
    assert parse_command(b"UNSUB news\r\r") == Unsubscribe(b"news\r")
    assert parse_command(b"PUB news \r\r") == Publish(b"news", b"\r")


def test_parse_command_keeps_carriage_return_not_at_end() -> None:
    """A "\\r" inside the message is data, not a line end."""
    assert parse_command(b"PUB t a\rb") == Publish(b"t", b"a\rb")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", b"empty command"),
        (b"\r", b"empty command"),
        (b"HELLO", b"unknown command"),
        (b"HELLO world", b"unknown command"),
        (b"sub news", b"unknown command"),
        (b"unsub news", b"unknown command"),
        (b"pub news hi", b"unknown command"),
        (b"Sub news", b"unknown command"),
        (b"SUBX news", b"unknown command"),
        (b" SUB news", b"unknown command"),
        (b"\r\r", b"unknown command"),
        (b"SUB", b"missing topic"),
        (b"SUB ", b"missing topic"),
        (b"SUB \r", b"missing topic"),
        (b"UNSUB", b"missing topic"),
        (b"UNSUB ", b"missing topic"),
        (b"PUB", b"missing topic"),
        (b"PUB ", b"missing topic"),
        (b"PUB  message", b"missing topic"),
        (b"SUB a b", b"topic contains a space"),
        (b"UNSUB a b", b"topic contains a space"),
        (b"SUB  news", b"topic contains a space"),
        (b"SUB news ", b"topic contains a space"),
        (b"SUB " + b"t" * (MAX_TOPIC_LENGTH + 1), b"topic too long"),
        (b"UNSUB " + b"t" * (MAX_TOPIC_LENGTH + 1), b"topic too long"),
        (b"PUB " + b"t" * (MAX_TOPIC_LENGTH + 1) + b" hi", b"topic too long"),
    ],
)
def test_parse_command_errors(line: bytes, reason: bytes) -> None:
    """Each kind of invalid line raises InvalidCommandError with the exact reason
    the server sends after ``ERR`` (verbs are case-sensitive)."""
    with pytest.raises(InvalidCommandError) as info:
        parse_command(line)
    assert info.value.reason == reason
    assert isinstance(info.value, ProtocolError)
    assert str(info.value) == reason.decode()


def test_topic_length_boundary() -> None:
    """A topic of exactly 200 bytes is accepted, 201 bytes is too long."""
    assert MAX_TOPIC_LENGTH == 200
    ok = b"t" * 200
    assert parse_command(b"SUB " + ok) == Subscribe(ok)
    assert parse_command(b"UNSUB " + ok) == Unsubscribe(ok)
    assert parse_command(b"PUB " + ok + b" m") == Publish(ok, b"m")
    for line in (b"SUB " + ok + b"t", b"UNSUB " + ok + b"t", b"PUB " + ok + b"t m"):
        with pytest.raises(InvalidCommandError) as info:
            parse_command(line)
        assert info.value.reason == b"topic too long"


# ----------------------------------------------------------- encode_command


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (Subscribe(b"news"), b"SUB news\r\n"),
        (Unsubscribe(b"news"), b"UNSUB news\r\n"),
        (Publish(b"news", b"hello world"), b"PUB news hello world\r\n"),
        (Publish(b"news", b""), b"PUB news \r\n"),
        (Publish(b"news", b"ends with cr\r"), b"PUB news ends with cr\r\r\n"),
        (Subscribe(b"t" * 200), b"SUB " + b"t" * 200 + b"\r\n"),
    ],
)
def test_encode_command(command: Command, line: bytes) -> None:
    """Each command encodes to its exact line, ending "\\r\\n"."""
    assert encode_command(command) == line


@pytest.mark.parametrize(
    "command",
    [
        Subscribe(b"news"),
        Unsubscribe(b"news"),
        Publish(b"news", b"hello world"),
        Publish(b"news", b""),
        Publish(b"news", b" spaced "),
        Publish(b"news", b"trailing cr\r"),
        Publish(b"news", b"\r"),
        Subscribe(b"t" * 200),
    ],
)
def test_encode_then_parse_round_trips(command: Command) -> None:
    """What the client encodes, the server parses back to the same command
    (after the line's "\\n" is removed), a message's own trailing "\\r" included."""
    line = encode_command(command)
    assert line.endswith(b"\n")
    assert parse_command(line[:-1]) == command


@pytest.mark.parametrize(
    "command",
    [
        Subscribe(b""),
        Unsubscribe(b""),
        Publish(b"", b"hi"),
        Subscribe(b"a b"),
        Unsubscribe(b"a b"),
        Publish(b"a b", b"hi"),
        Subscribe(b"t" * 201),
        Publish(b"t" * 201, b"hi"),
    ],
)
def test_encode_command_rejects_bad_topics(command: Command) -> None:
    """A topic the wire format cannot carry raises ArgumentError (a ValueError)."""
    with pytest.raises(ArgumentError):
        encode_command(command)
    with pytest.raises(ValueError, match="invalid topic"):
        encode_command(command)


@pytest.mark.parametrize(
    "command",
    [
        Subscribe(b"a\nb"),
        Unsubscribe(b"a\n"),
        Publish(b"a\nb", b"hi"),
        Publish(b"news", b"two\nlines"),
        Publish(b"news", b"\n"),
    ],
)
def test_encode_command_rejects_newlines(command: Command) -> None:
    """A newline in a topic or message raises UnencodableFrameError: it would
    make the server see two lines."""
    with pytest.raises(UnencodableFrameError):
        encode_command(command)


def test_check_topic() -> None:
    """check_topic accepts 1 to 200 bytes with no space and rejects the rest."""
    check_topic(b"x")
    check_topic(b"t" * 200)
    for bad in (b"", b"t" * 201, b"a b", b" "):
        with pytest.raises(ArgumentError):
            check_topic(bad)


# --------------------------------------------------------- server encoders


def test_server_encoders() -> None:
    """Server lines are encoded exactly, each ending "\\r\\n"."""
    assert encode_ok() == b"OK\r\n"
    assert encode_ok(0) == b"OK 0\r\n"
    assert encode_ok(3) == b"OK 3\r\n"
    assert encode_ok(1234) == b"OK 1234\r\n"
    assert encode_error(b"unknown command") == b"ERR unknown command\r\n"
    assert encode_error(b"slow consumer") == b"ERR slow consumer\r\n"
    assert encode_message(b"news", b"hello world") == b"MSG news hello world\r\n"
    assert encode_message(b"news", b"") == b"MSG news \r\n"


# -------------------------------------------------------- parse_server_line


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (b"OK\r", Ok()),
        (b"OK 0\r", Ok(0)),
        (b"OK 17\r", Ok(17)),
        (b"OK " + b"9" * 20 + b"\r", Ok(10**20 - 1)),
        (b"ERR unknown command\r", Error(b"unknown command")),
        (b"ERR slow consumer\r", Error(b"slow consumer")),
        (b"MSG news hello world\r", Message(b"news", b"hello world")),
        (b"MSG news \r", Message(b"news", b"")),
        (b"MSG news ends with cr\r\r", Message(b"news", b"ends with cr\r")),
    ],
)
def test_parse_server_line_valid(line: bytes, said: ServerLine) -> None:
    """Every line a server sends parses to what it means; one "\\r" is stripped."""
    assert parse_server_line(line) == said


@pytest.mark.parametrize(
    "said",
    [Ok(), Ok(0), Ok(42), Error(b"topic too long"), Message(b"t", b"a b c"), Message(b"t", b"")],
)
def test_server_encoders_round_trip(said: ServerLine) -> None:
    """What the server encodes, the client parses back to the same thing."""
    if isinstance(said, Ok):
        line = encode_ok(said.count)
    elif isinstance(said, Error):
        line = encode_error(said.reason)
    else:
        line = encode_message(said.topic, said.message)
    assert line.endswith(b"\r\n")
    assert parse_server_line(line[:-1]) == said


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\r",
        b"HELLO\r",
        b"ok\r",
        b"OK \r",
        b"OK x\r",
        b"OK -1\r",
        b"OK 1 2\r",
        b"OKAY\r",
        b"ERR\r",
        b"ERR \r",
        b"err oops\r",
        b"MSG\r",
        b"MSG news\r",
        b"MSG  hello\r",
        b"MSG " + b"t" * 201 + b" hi\r",
        b"msg news hi\r",
        b"SUB news\r",
        b"OK " + b"1" * 21 + b"\r",
        b"OK " + b"9" * 5000 + b"\r",  # past int()'s 4300 digits: a ValueError, once
    ],
)
def test_parse_server_line_rejects_garbage(line: bytes) -> None:
    """Anything a pub/sub server would not send raises ProtocolError (a count
    too long for any real server included, which once escaped as ValueError)."""
    with pytest.raises(ProtocolError):
        parse_server_line(line)
