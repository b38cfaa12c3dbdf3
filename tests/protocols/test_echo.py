"""EchoProtocol: byte-exact echo, close after EOF, and bounded memory."""

from __future__ import annotations

from weft.drivers.testing import connect
from weft.protocols import EchoProtocol


def test_echoes_every_byte_in_order() -> None:
    """Every chunk delivered comes back, byte for byte and in order."""
    conn = connect(EchoProtocol())
    chunks = [b"hello", b" ", b"world\n", b"\x00\xff\r\n", bytes(range(256)), b"x"]
    for chunk in chunks:
        conn.deliver(chunk)
        assert conn.take_written() == chunk
    assert not conn.closed
    assert conn.transport.is_reading()


def test_closes_after_peer_eof_once_all_echoed() -> None:
    """After the peer's EOF the protocol closes, having echoed everything first."""
    conn = connect(EchoProtocol())
    conn.deliver(b"one ")
    conn.deliver(b"two ")
    conn.deliver(b"three")
    assert not conn.closed
    conn.deliver_eof()
    assert conn.written == b"one two three"
    assert conn.eof_written
    assert conn.closed


def test_close_after_eof_waits_for_the_buffer_to_flush() -> None:
    """With a peer that is not reading, EOF does not end the connection until
    everything echoed has been read."""
    conn = connect(EchoProtocol(), peer_reads=False)
    conn.deliver(b"abc")
    conn.deliver(b"def")
    conn.deliver_eof()
    assert (conn.closed, conn.transport.is_closing()) == (False, True)
    assert conn.read() == b"abcdef"
    assert conn.closed
    assert conn.written == b"abcdef"


def test_pauses_reading_when_peer_stops_reading() -> None:
    """A peer that sends but never reads cannot make the echo protocol buffer
    without bound: past the high-water mark it stops reading, data delivered
    meanwhile is held, and the buffer never exceeds high-water plus one chunk."""
    conn = connect(EchoProtocol(), peer_reads=False)
    transport = conn.transport
    _low, high = transport.get_write_buffer_limits()
    chunk_size = 4096
    chunks = [bytes([i % 251]) * chunk_size for i in range(200)]
    assert len(chunks) * chunk_size > 4 * high  # far more than the limit allows
    sizes: list[int] = []
    for chunk in chunks:
        conn.deliver(chunk)
        sizes.append(transport.get_write_buffer_size())
    assert max(sizes) > high  # it did fill up to the mark ...
    assert max(sizes) <= high + chunk_size  # ... and no further
    assert not transport.is_reading()
    assert sizes[-1] == sizes[-100]  # the later chunks were held, not echoed
    assert conn.written == b""


def test_resumes_and_echoes_everything_when_peer_reads() -> None:
    """Once the peer reads, the echo protocol reads again and eventually every
    byte held while it was paused is echoed, in order, with nothing lost."""
    conn = connect(EchoProtocol(), peer_reads=False)
    transport = conn.transport
    _low, high = transport.get_write_buffer_limits()
    chunks = [b"%06d" % i + bytes([i % 256]) * 1000 for i in range(300)]
    expected = b"".join(chunks)
    for chunk in chunks:
        conn.deliver(chunk)
    assert not transport.is_reading()
    assert transport.get_write_buffer_size() < len(expected)

    received = bytearray()
    rounds = 0
    while len(received) < len(expected):
        rounds += 1
        assert rounds < 1000, "no progress"
        data = conn.read(10_000)
        assert data, "the echo protocol stopped producing"
        received += data
        assert transport.get_write_buffer_size() <= high + len(chunks[0])
    assert bytes(received) == expected
    assert transport.is_reading()
    assert transport.get_write_buffer_size() == 0

    conn.deliver(b"after")
    assert conn.read() == b"after"


def test_reading_resumes_after_one_full_read() -> None:
    """Reading everything buffered (down to the low-water mark) resumes reading
    at once: the held data is echoed right away, and all of it arrives."""
    conn = connect(EchoProtocol(), peer_reads=False)
    transport = conn.transport
    _low, high = transport.get_write_buffer_limits()
    chunk = b"z" * 1024
    count = (high // len(chunk)) * 2
    for _ in range(count):
        conn.deliver(chunk)
    assert not transport.is_reading()
    first = conn.read()
    assert 0 < len(first) < count * len(chunk)
    assert transport.get_write_buffer_size() > 0  # held data was echoed since
    conn.peer_reads = True
    assert conn.written == chunk * count
    assert transport.is_reading()


def test_eof_held_while_paused_closes_after_everything() -> None:
    """An EOF that arrives while reading is paused waits behind the held data:
    the connection closes only after every byte was echoed."""
    conn = connect(EchoProtocol(), peer_reads=False)
    _low, high = conn.transport.get_write_buffer_limits()
    chunks = [bytes([65 + i % 26]) * 2048 for i in range(2 * high // 2048)]
    for chunk in chunks:
        conn.deliver(chunk)
    conn.deliver_eof()
    assert not conn.closed
    conn.peer_reads = True
    assert conn.written == b"".join(chunks)
    assert conn.closed
