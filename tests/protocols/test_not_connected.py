"""Wrong use: a shipped protocol's public method called before connection_made
raises NotConnectedError (a WeftError), naming the call and what to do first,
instead of an AttributeError about a missing 'transport'."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest

from weft.drivers.testing import connect
from weft.protocols.dns import DNSResolverProtocol
from weft.protocols.errors import InvalidStateError, NotConnectedError, WeftError
from weft.protocols.framing import LengthPrefixedProtocol, LineProtocol, NetstringProtocol
from weft.protocols.pubsub import PubSubClientProtocol
from weft.protocols.pubsub.wire import Subscribe


class Lines(LineProtocol):
    def line_received(self, line: bytes) -> None:
        pass


class Prefixed(LengthPrefixedProtocol):
    def frame_received(self, frame: bytes) -> None:
        pass


class Netstrings(NetstringProtocol):
    def frame_received(self, frame: bytes) -> None:
        pass


CALLS: dict[str, Callable[[], object]] = {
    "Lines.send_line": lambda: Lines().send_line(b"hi"),
    "Lines.pause_reading": lambda: Lines().pause_reading(),
    "Lines.start_tls": lambda: Lines().start_tls(ssl.create_default_context(), server_side=False),
    "Prefixed.send_frame": lambda: Prefixed().send_frame(b"hi"),
    "Netstrings.send_frame": lambda: Netstrings().send_frame(b"hi"),
    "PubSubClientProtocol.subscribe": lambda: PubSubClientProtocol().subscribe(b"news"),
    "PubSubClientProtocol.unsubscribe": lambda: PubSubClientProtocol().unsubscribe(b"news"),
    "PubSubClientProtocol.publish": lambda: PubSubClientProtocol().publish(b"news", b"hi"),
    "PubSubClientProtocol.send_command": lambda: PubSubClientProtocol().send_command(Subscribe(b"news")),
    "DNSResolverProtocol.resolve": lambda: DNSResolverProtocol(next_id=lambda: 1).resolve(
        "example.test", lambda lookup: None
    ),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_call_before_connection_made_says_what_to_do(call: str) -> None:
    """Each public method that needs the transport, called too early, raises
    NotConnectedError (an InvalidStateError, a WeftError) whose message
    names the very call the user made (not a helper it went through) and
    says to connect first and use it from connection_made on."""
    with pytest.raises(NotConnectedError) as raised:
        CALLS[call]()
    assert isinstance(raised.value, InvalidStateError)
    assert isinstance(raised.value, WeftError)
    message = str(raised.value)
    assert message.startswith(f"{call}() was used before the")
    assert "connection_made()" in message


def test_the_transport_attribute_still_reads_as_absent() -> None:
    """NotConnectedError is also an AttributeError, so the usual "is it
    connected yet?" checks keep working."""
    protocol = PubSubClientProtocol()
    assert not hasattr(protocol, "transport")
    assert getattr(protocol, "transport", None) is None
    with pytest.raises(NotConnectedError, match=r"^PubSubClientProtocol\.transport was used before"):
        _ = protocol.transport


def test_once_connected_the_same_calls_work() -> None:
    """After connection_made the transport is the instance's own: commands go out."""
    client = PubSubClientProtocol()
    conn = connect(client)
    client.subscribe(b"news")
    assert conn.take_written() == b"SUB news\r\n"
