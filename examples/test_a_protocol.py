"""How to unit-test your own protocol with weft's memory driver.

Run: python -m pytest examples/test_a_protocol.py
"""

from weft.drivers.testing import connect, connect_pair
from weft.protocols.framing import LineProtocol


class Greeter(LineProtocol):
    """Answers ``NAME <x>`` with ``hello, <x>``; anything else is an error."""

    def line_received(self, line: bytes) -> None:
        verb, _, name = line.partition(b" ")
        if verb == b"NAME" and name:
            self.send_line(b"hello, " + name)
        else:
            self.send_line(b"error")


def test_greets_by_name() -> None:
    """The test plays the peer: deliver bytes, read what was written."""
    conn = connect(Greeter())
    conn.deliver(b"NAME weft\n")
    assert conn.take_written() == b"hello, weft\n"


def test_lines_split_anywhere_still_work() -> None:
    """Delivery in odd chunks changes nothing."""
    conn = connect(Greeter())
    for chunk in (b"NA", b"ME a", b"da\nNAME", b" bo", b"b\n"):
        conn.deliver(chunk)
    assert conn.written == b"hello, ada\nhello, bob\n"


def test_two_protocols_back_to_back() -> None:
    """A pump connects two protocols and moves bytes one at a time if asked."""
    replies: list[bytes] = []

    class Client(LineProtocol):
        def line_received(self, line: bytes) -> None:
            replies.append(line)

    client = Client()
    pump = connect_pair(client, Greeter())
    client.send_line(b"NAME pump")
    client.send_line(b"garbage")
    pump.run(max_bytes=1)
    assert replies == [b"hello, pump", b"error"]
