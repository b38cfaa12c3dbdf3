"""The pub/sub client protocol: commands out, replies and messages in.

Subclass it and override the callbacks, or pass functions::

    class Printer(PubSubClientProtocol):
        def message_received(self, topic: bytes, message: bytes) -> None:
            print(topic, message)

    client = PubSubClientProtocol(on_message=lambda topic, message: print(topic, message))

The server answers commands in order, so each reply is matched to the
command it answers and handed over with it.  ``ERR slow consumer`` is the one
line the server sends unasked, just before it closes the connection; it goes
to :meth:`PubSubClientProtocol.server_error`.  Any line a pub/sub server
would not send (an over-long one included) raises
:class:`~weft.protocols.errors.ProtocolError`, which ends the connection with
that error.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from weft.protocols.errors import ProtocolError, UnencodableFrameError
from weft.protocols.framing._receiver import LineProtocol
from weft.protocols.pubsub.wire import (
    MAX_LINE_LENGTH,
    Command,
    Error,
    Message,
    Ok,
    Publish,
    Reply,
    Subscribe,
    Unsubscribe,
    encode_command,
    parse_server_line,
)

__all__ = ["PubSubClientProtocol"]

_SLOW_CONSUMER = b"slow consumer"


class PubSubClientProtocol(LineProtocol):
    """Talks to a pub/sub server over any transport."""

    delimiter = b"\n"
    #: The longest command sent, line end excluded: the server's default limit.
    max_command_length = MAX_LINE_LENGTH
    # The server relays a PUB line of up to its limit as a MSG line of the
    # same length, plus the "\r" of its "\r\n".
    max_line_length = MAX_LINE_LENGTH + 1

    def __init__(
        self,
        *,
        on_message: Callable[[bytes, bytes], object] | None = None,
        on_reply: Callable[[Command, Reply], object] | None = None,
    ) -> None:
        super().__init__()
        self._on_message = on_message
        self._on_reply = on_reply
        self._pending: deque[Command] = deque()

    # ------------------------------------------------------------ commands

    def subscribe(self, topic: bytes) -> None:
        """Send ``SUB topic``."""
        self.send_command(Subscribe(topic))

    def unsubscribe(self, topic: bytes) -> None:
        """Send ``UNSUB topic``."""
        self.send_command(Unsubscribe(topic))

    def publish(self, topic: bytes, message: bytes) -> None:
        """Send ``PUB topic message``."""
        self.send_command(Publish(topic, message))

    def send_command(self, command: Command) -> None:
        """Send any command; its reply goes to :meth:`reply_received`.

        Raises :class:`~weft.protocols.errors.ArgumentError` for a topic or
        message the wire format cannot carry, or a command longer than
        ``max_command_length``, before anything is sent.
        """
        line = encode_command(command)
        if len(line) - 2 > self.max_command_length:
            raise UnencodableFrameError(
                f"a {len(line) - 2}-byte command is over the limit of {self.max_command_length}"
            )
        self._pending.append(command)
        self.transport.write(line)

    @property
    def pending(self) -> list[Command]:
        """Commands sent and not yet answered, oldest first."""
        return list(self._pending)

    # ----------------------------------------------------------- callbacks

    def message_received(self, topic: bytes, message: bytes) -> None:
        """A publication on a subscribed topic."""
        if self._on_message is not None:
            self._on_message(topic, message)

    def reply_received(self, command: Command, reply: Reply) -> None:
        """The server's answer to ``command``: ``Ok`` or ``Error``."""
        if self._on_reply is not None:
            self._on_reply(command, reply)

    def server_error(self, reason: bytes) -> None:
        """An error the server sent unasked (``slow consumer``); it closes next."""

    # ------------------------------------------------------------ plumbing

    def frame_error(self, exc: ProtocolError) -> None:
        """A server line over the limit: end the connection with the error."""
        raise exc

    def line_received(self, line: bytes) -> None:
        """Dispatch one server line."""
        said = parse_server_line(line)
        if isinstance(said, Message):
            self.message_received(said.topic, said.message)
            return
        if isinstance(said, Error) and said.reason == _SLOW_CONSUMER:
            self.server_error(said.reason)
            return
        if not self._pending:
            raise ProtocolError(f"the server answered a command nobody sent: {line[:80]!r}")
        command = self._pending.popleft()
        if isinstance(said, Ok) and (said.count is None) == isinstance(command, Publish):
            raise ProtocolError(f"the server answered {command!r} with {line[:80]!r}")
        self.reply_received(command, said)
