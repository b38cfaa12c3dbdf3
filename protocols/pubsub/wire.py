"""The pub/sub wire format: parsing and encoding, shared by server and client.

Client to server, one command per line.  Lines end with ``\\n``; one ``\\r``
before it is dropped::

    SUB <topic>                -> OK
    UNSUB <topic>              -> OK
    PUB <topic> <message>      -> OK <n>   (n: subscribers it was delivered to)

Server to client, every line ending with ``\\r\\n``::

    OK | OK <n> | ERR <reason> | MSG <topic> <message>

A topic is 1 to 200 bytes with no space; a message is the rest of the line
and may be empty.  Anything else is answered ``ERR <reason>``, as is a
``SUB`` past the server's limits (``ERR too many subscriptions``,
``ERR too many topics``).
"""

from __future__ import annotations

from dataclasses import dataclass

from weft.protocols.errors import ArgumentError, ProtocolError, UnencodableFrameError

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_TOPIC_LENGTH",
    "Command",
    "Error",
    "InvalidCommandError",
    "Message",
    "Ok",
    "Publish",
    "Reply",
    "ServerLine",
    "Subscribe",
    "Unsubscribe",
    "check_topic",
    "encode_command",
    "encode_error",
    "encode_message",
    "encode_ok",
    "parse_command",
    "parse_server_line",
]

#: The longest topic, in bytes.
MAX_TOPIC_LENGTH = 200

#: The default limit on a line, its line end (``\n`` or ``\r\n``) excluded.
MAX_LINE_LENGTH = 64 * 1024

# The longest count an ``OK <n>`` may carry: 20 digits hold any 64-bit count.
_MAX_COUNT_DIGITS = 20


# ----------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``SUB <topic>``."""

    topic: bytes


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """``UNSUB <topic>``."""

    topic: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    """``PUB <topic> <message>``."""

    topic: bytes
    message: bytes


Command = Subscribe | Unsubscribe | Publish


class InvalidCommandError(ProtocolError):
    """A client line that is not a valid command; ``reason`` goes after ``ERR``."""

    def __init__(self, reason: bytes) -> None:
        super().__init__(reason.decode("ascii"))
        self.reason = reason


def _topic_problem(topic: bytes) -> bytes | None:
    if not topic:
        return b"missing topic"
    if len(topic) > MAX_TOPIC_LENGTH:
        return b"topic too long"
    if b" " in topic:
        return b"topic contains a space"
    return None


def parse_command(line: bytes) -> Command:
    """The command on ``line`` (its ``\\n`` already removed).

    Raises :class:`InvalidCommandError` with the reason to send back.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        raise InvalidCommandError(b"empty command")
    verb, _, rest = line.partition(b" ")
    if verb == b"PUB":
        topic, _, message = rest.partition(b" ")
        if (problem := _topic_problem(topic)) is not None:
            raise InvalidCommandError(problem)
        return Publish(topic, message)
    if verb == b"SUB" or verb == b"UNSUB":
        if (problem := _topic_problem(rest)) is not None:
            raise InvalidCommandError(problem)
        return Subscribe(rest) if verb == b"SUB" else Unsubscribe(rest)
    raise InvalidCommandError(b"unknown command")


def check_topic(topic: bytes) -> None:
    """Raise :class:`~weft.protocols.errors.ArgumentError` unless ``topic`` is valid."""
    if (problem := _topic_problem(topic)) is not None:
        raise ArgumentError(f"invalid topic {topic[:40]!r}: {problem.decode()}")


def encode_command(command: Command) -> bytes:
    """The line for ``command``, ending ``\\r\\n`` so that a message's own
    trailing ``\\r`` survives the server's stripping of one."""
    check_topic(command.topic)
    if b"\n" in command.topic:
        raise UnencodableFrameError("a pub/sub topic cannot hold a newline")
    if isinstance(command, Publish):
        if b"\n" in command.message:
            raise UnencodableFrameError("a pub/sub message cannot hold a newline")
        return b"PUB %s %s\r\n" % (command.topic, command.message)
    verb = b"SUB" if isinstance(command, Subscribe) else b"UNSUB"
    return b"%s %s\r\n" % (verb, command.topic)


# ------------------------------------------------------------ server lines


@dataclass(frozen=True, slots=True)
class Ok:
    """``OK``, or ``OK <n>`` after a publish (``count`` is n)."""

    count: int | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """``ERR <reason>``."""

    reason: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """``MSG <topic> <message>``: a publication on a subscribed topic."""

    topic: bytes
    message: bytes


Reply = Ok | Error
ServerLine = Ok | Error | Message


def encode_ok(count: int | None = None) -> bytes:
    """``OK`` or ``OK <count>``, with its line end."""
    return b"OK\r\n" if count is None else b"OK %d\r\n" % count


def encode_error(reason: bytes) -> bytes:
    """``ERR <reason>``, with its line end."""
    return b"ERR %s\r\n" % reason


def encode_message(topic: bytes, message: bytes) -> bytes:
    """``MSG <topic> <message>``, with its line end."""
    return b"MSG %s %s\r\n" % (topic, message)


def parse_server_line(line: bytes) -> ServerLine:
    """What the server said on ``line`` (its ``\\n`` already removed).

    Raises :class:`~weft.protocols.errors.ProtocolError` for anything a
    pub/sub server does not send.
    """
    if line.endswith(b"\r"):
        line = line[:-1]
    verb, _, rest = line.partition(b" ")
    if verb == b"MSG":
        topic, sep, message = rest.partition(b" ")
        if sep and _topic_problem(topic) is None:
            return Message(topic, message)
    elif verb == b"OK":
        if line == b"OK":
            return Ok()
        # A count has at most _MAX_COUNT_DIGITS digits: int() of a longer
        # string is slow, and past 4300 digits Python refuses it with a
        # ValueError, which a server must not be able to provoke.
        if rest.isdigit() and len(rest) <= _MAX_COUNT_DIGITS:
            return Ok(int(rest))
    elif verb == b"ERR" and rest:
        return Error(rest)
    raise ProtocolError(f"not a pub/sub server line: {line[:80]!r}")
