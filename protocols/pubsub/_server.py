"""The pub/sub server protocol: one per connection, all sharing a hub.

Memory stays bounded whatever the clients do (https://github.com/weft-project/weft/blob/main/docs/pubsub.md,
"Limits", has the whole list with each default and reply):

* a connection may be subscribed to at most ``max_subscriptions`` topics
  (the hub's limit, 1,000 by default) and the hub holds at most
  ``max_topics`` topics (100,000 by default); a ``SUB`` past either is
  answered ``ERR too many subscriptions`` or ``ERR too many topics`` and the
  connection goes on;
* a topic is at most 200 bytes (``ERR topic too long``);
* a line over ``max_command_length`` (64 KiB, its ``\n`` or ``\r\n`` not
  counted) is answered ``ERR line too long`` and the connection closes; the
  server stops keeping such a line as soon as it is over the limit;
* a client that sends commands but does not read the replies is stopped
  from sending more: past the transport's high-water mark the server pauses
  reading from it until its backlog drains (ordinary flow control);
* a subscriber that does not read what it is sent falls behind.  It may
  fall up to ``max_backlog`` bytes behind (1 MiB by default: sixteen times
  the default high-water mark, so a burst does not cost a connection); a
  publication that would take it past that is not delivered (and not
  counted), and the subscriber is sent ``ERR slow consumer``, unsubscribed
  from everything and closed.  Every subscriber's buffer holds the same
  bytes object for one publication (the line is encoded once, not once per
  subscriber), so many slow subscribers of one topic cost one copy of each
  message between them on drivers whose write buffers keep references (the
  reactor's, the memory driver's).

When a client half-closes (sends EOF), the server closes its side too after
flushing, unless the client is subscribed to something: then it stays
half-open and keeps delivering, so ``printf 'SUB news\\n' | weft connect ...``
listens for as long as it likes.

Who counts.  ``PUB`` answers ``OK <n>``, ``n`` the subscribers the message
was handed to, and a subscriber whose connection is known to be gone is
dropped from the hub before it could be counted: its transport is closing
or lost (a reset seen, a close), or the write of this very message failed
(the kernel refused it: the peer had reset, as ``weft connect`` does when
interrupted).  A half-closed subscriber still counts: TCP's half-close
ends only the client's sending, and it can still read.  A peer that
vanished without a trace (no reset) is counted by the first publication
that reaches it, as TCP cannot tell sooner; that write draws the reset
that drops it.

A graceful stop (``weft serve``'s SIGINT or SIGTERM) closes every
connection between commands at once, after flushing what it was sent
(:meth:`PubSubServerProtocol.server_stopping`): a subscriber waits for
messages for as long as it is left open, so nothing it does would end by
itself, and it would otherwise hold the stop for the whole grace period.
A connection whose command has begun to arrive is answered first, then
closed; one that half-closed can send nothing more, so it is closed at once.
"""

from __future__ import annotations

import enum

from weft.protocols.errors import ArgumentError, LineTooLongError, ProtocolError
from weft.protocols.framing._lines import LineParser
from weft.protocols.framing._receiver import LineProtocol
from weft.protocols.pubsub._hub import PubSubHub, SubscriptionLimitError, TooManyTopicsError
from weft.protocols.pubsub.wire import (
    MAX_LINE_LENGTH,
    InvalidCommandError,
    Publish,
    Subscribe,
    Unsubscribe,
    encode_error,
    encode_message,
    encode_ok,
    parse_command,
)

__all__ = ["DEFAULT_MAX_BACKLOG", "PubSubServerProtocol"]

#: How far behind a subscriber may fall, in unsent bytes, before it is dropped.
DEFAULT_MAX_BACKLOG = 1024 * 1024

_TOO_MANY_TOPICS = b"too many topics"
_TOO_MANY_SUBSCRIPTIONS = b"too many subscriptions"


class _MessageLine:
    """The ``MSG`` line of the publication being fanned out, encoded once.

    :meth:`PubSubHub.publish` hands every subscriber the same topic and
    message objects, so the line built for the first subscriber is the line
    for all of them: each transport queues a reference to that one bytes
    object instead of a copy of its own (a thousand slow subscribers of one
    topic would otherwise hold a thousand copies of every message).  The
    last line is remembered with the objects it was built from; identity is
    a sound test because it keeps them alive, and only exact ``bytes`` (which
    cannot change) are remembered.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[bytes, bytes, bytes] = (b"", b"", b"")

    def __call__(self, topic: bytes, message: bytes) -> bytes:
        last_topic, last_message, line = self._last  # one read: safe if two threads share it
        if topic is last_topic and message is last_message:
            return line
        line = encode_message(topic, message)
        if type(topic) is bytes and type(message) is bytes:
            self._last = (topic, message, line)
        return line


_message_line = _MessageLine()


class _Phase(enum.Enum):
    """Where a connection is on its way to its end (the transport says when it has ended)."""

    #: Commands come and are answered.
    SERVING = "serving"
    #: The client half-closed: no more commands come; a subscriber still
    #: gets its messages.
    HALF_CLOSED = "half-closed"
    #: The server is stopping and a command had begun to arrive: it is
    #: answered, then the connection closes.
    FINISHING = "finishing"


class PubSubServerProtocol(LineProtocol):
    """Serves the pub/sub wire format (see :mod:`weft.protocols.pubsub.wire`)."""

    delimiter = b"\n"

    def __init__(
        self,
        hub: PubSubHub,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        max_command_length: int = MAX_LINE_LENGTH,
        max_subscriptions: int | None = None,
    ) -> None:
        """Serve ``hub``.  ``max_subscriptions`` overrides the hub's
        per-connection limit for this connection (``None``: the hub's)."""
        if max_subscriptions is not None and max_subscriptions < 0:
            raise ArgumentError(f"max_subscriptions must be >= 0 or None, not {max_subscriptions}")
        self.max_command_length = max_command_length
        # The parser's limit leaves room for the optional "\r"; line_received
        # judges the command itself.
        self.max_line_length = max_command_length + 1
        super().__init__()
        self.hub = hub
        self.max_backlog = max_backlog
        #: This connection's subscription limit; ``None`` means the hub's.
        self.max_subscriptions = max_subscriptions
        self._phase = _Phase.SERVING

    def line_received(self, line: bytes) -> None:
        """Run one command and answer it."""
        if len(line) - line.endswith(b"\r") > self.max_command_length:
            self.frame_error(
                LineTooLongError(
                    f"command longer than {self.max_command_length} bytes",
                    limit=self.max_command_length,
                    length=len(line),
                )
            )
            return
        try:
            command = parse_command(line)
        except InvalidCommandError as exc:
            self.transport.write(encode_error(exc.reason))
            return
        if isinstance(command, Publish):
            count = self.hub.publish(command.topic, command.message)
            self.transport.write(encode_ok(count))
        elif isinstance(command, Subscribe):
            try:
                self.hub.subscribe(command.topic, self, max_subscriptions=self.max_subscriptions)
            except SubscriptionLimitError as exc:
                reason = _TOO_MANY_TOPICS if isinstance(exc, TooManyTopicsError) else _TOO_MANY_SUBSCRIPTIONS
                self.transport.write(encode_error(reason))
                return
            self.transport.write(encode_ok())
        elif isinstance(command, Unsubscribe):
            self.hub.unsubscribe(command.topic, self)
            self.transport.write(encode_ok())

    def deliver(self, topic: bytes, message: bytes) -> bool:
        """Send one publication, unless this subscriber is gone or too far behind.

        Gone: its transport is closing or lost, or becomes so by this very
        write (the send failed); it then leaves every topic, so it is counted
        by no publication, this one included.
        """
        transport = self.transport
        if transport.is_closing():
            self.hub.unsubscribe_all(self)
            return False
        line = _message_line(topic, message)
        if transport.get_write_buffer_size() + len(line) > self.max_backlog:
            self.hub.unsubscribe_all(self)
            transport.write(encode_error(b"slow consumer"))
            transport.close()
            return False
        transport.write(line)
        if transport.is_closing():  # the send failed: the peer reset, or is gone
            self.hub.unsubscribe_all(self)
            return False
        return True

    def frame_error(self, exc: ProtocolError) -> None:
        """A line over the limit: say so, then close."""
        self.hub.unsubscribe_all(self)
        # Nothing after an over-long line is run, so nothing after it is
        # kept: a line judged too long here (a command one byte over, which
        # the parser let through in case its last byte was the "\r") may
        # have come with the rest of its chunk.
        self.parser.take_buffer()
        self.transport.write(encode_error(b"line too long"))
        self.transport.close()

    def pause_writing(self) -> None:
        """The client is not reading its replies: stop reading its commands."""
        self.pause_reading()

    def resume_writing(self) -> None:
        """The client caught up: read its commands again."""
        self.resume_reading()

    def eof_received(self) -> bool:
        """Stay half-open for a subscriber, close for anyone else (and while
        finishing: the command begun will never be whole)."""
        if self._phase is _Phase.FINISHING:
            self.hub.unsubscribe_all(self)
            return False
        self._phase = _Phase.HALF_CLOSED
        return self.hub.subscription_count(self) > 0

    def server_stopping(self) -> None:
        """The server is stopping gracefully: close now, after what was sent,
        unless a command has begun to arrive; then answer it and close.

        A subscriber, half-closed or not, would otherwise hold the stop for
        the whole grace period: it waits for messages as long as it is open.
        A client between commands has nothing in flight (as an idle
        keep-alive connection, which HTTP servers close at a stop).
        """
        if self._phase is _Phase.HALF_CLOSED or not self._command_begun():
            self._end()
            return
        self._phase = _Phase.FINISHING
        # The check after each line goes on this connection's own handler
        # (an instance attribute, found before the class's method by the
        # delivery loop), so no other connection's lines pay for it.
        self.line_received = self._line_received_then_end  # type: ignore[method-assign]

    def _line_received_then_end(self, line: bytes) -> None:
        """(While finishing) run the command; close once no other has begun."""
        PubSubServerProtocol.line_received(self, line)
        if not self._command_begun() and not self.transport.is_closing():
            self._end()

    def _command_begun(self) -> bool:
        """Whether bytes of a command are held: part of a line, or whole
        lines waiting while reading is paused."""
        parser = self.parser
        # Another parser (a subclass's): what it holds is unknown, so assume some.
        return not isinstance(parser, LineParser) or parser.buffered > 0

    def _end(self) -> None:
        """Leave every topic and close, after flushing what was written."""
        self.hub.unsubscribe_all(self)
        self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Leave every topic."""
        self.hub.unsubscribe_all(self)
