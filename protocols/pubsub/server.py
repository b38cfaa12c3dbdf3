"""The pub/sub server protocol: one per connection, all sharing a hub.

Memory stays bounded whatever the clients do:

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
  from everything and closed.

When a client half-closes (sends EOF), the server closes its side too after
flushing, unless the client is subscribed to something: then it stays
half-open and keeps delivering, so ``printf 'SUB news\\n' | weft connect ...``
listens for as long as it likes.
"""

from __future__ import annotations

from weft.protocols.errors import LineTooLongError, ProtocolError
from weft.protocols.framing.receiver import LineProtocol
from weft.protocols.pubsub.hub import PubSubHub
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


class PubSubServerProtocol(LineProtocol):
    """Serves the pub/sub wire format (see :mod:`weft.protocols.pubsub.wire`)."""

    delimiter = b"\n"

    def __init__(
        self,
        hub: PubSubHub,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        max_command_length: int = MAX_LINE_LENGTH,
    ) -> None:
        self.max_command_length = max_command_length
        # The parser's limit leaves room for the optional "\r"; line_received
        # judges the command itself.
        self.max_line_length = max_command_length + 1
        super().__init__()
        self.hub = hub
        self.max_backlog = max_backlog

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
            self.hub.subscribe(command.topic, self)
            self.transport.write(encode_ok())
        elif isinstance(command, Unsubscribe):
            self.hub.unsubscribe(command.topic, self)
            self.transport.write(encode_ok())

    def deliver(self, topic: bytes, message: bytes) -> bool:
        """Send one publication, unless this subscriber is closing or too far behind."""
        transport = self.transport
        if transport.is_closing():
            return False
        line = encode_message(topic, message)
        if transport.get_write_buffer_size() + len(line) > self.max_backlog:
            self.hub.unsubscribe_all(self)
            transport.write(encode_error(b"slow consumer"))
            transport.close()
            return False
        transport.write(line)
        return True

    def frame_error(self, exc: ProtocolError) -> None:
        """A line over the limit: say so, then close."""
        self.hub.unsubscribe_all(self)
        self.transport.write(encode_error(b"line too long"))
        self.transport.close()

    def pause_writing(self) -> None:
        """The client is not reading its replies: stop reading its commands."""
        self.pause_reading()

    def resume_writing(self) -> None:
        """The client caught up: read its commands again."""
        self.resume_reading()

    def eof_received(self) -> bool:
        """Stay half-open for a subscriber, close for anyone else."""
        return bool(self.hub.topics_of(self))

    def connection_lost(self, exc: BaseException | None) -> None:
        """Leave every topic."""
        self.hub.unsubscribe_all(self)
