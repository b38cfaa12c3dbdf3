"""Fuzzing the echo protocol: any bytes, any chunking, a peer reading as it likes.

``HYPOTHESIS_PROFILE=long`` runs it longer.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from weft.drivers.testing import connect
from weft.protocols import EchoProtocol

HIGH = 64


@given(
    steps=st.lists(st.tuples(st.binary(min_size=1, max_size=200), st.integers(0, 300)), max_size=20),
    eof=st.booleans(),
)
def test_echo_survives_any_peer(steps: list[tuple[bytes, int]], eof: bool) -> None:
    """A peer that sends chunks of any bytes and reads back as little or as
    much as it likes in between: nothing escapes, the write buffer never
    holds more than the high-water mark plus one chunk, what the peer reads
    is always a prefix of what it sent, and in the end it reads back exactly
    what it sent (then, after its EOF, the echo closes)."""
    conn = connect(EchoProtocol(), peer_reads=False)
    conn.transport.set_write_buffer_limits(high=HIGH)
    sent = bytearray()
    largest = 0
    for chunk, read in steps:
        conn.deliver(chunk)
        sent += chunk
        largest = max(largest, len(chunk))
        assert conn.transport.get_write_buffer_size() <= HIGH + largest
        conn.read(read)
        assert conn.transport.get_write_buffer_size() <= HIGH + largest
        assert sent.startswith(conn.written)
    if eof:
        conn.deliver_eof()
    for _ in range(len(sent) + 1):
        if not conn.read():
            break
    assert conn.written == bytes(sent)
    assert conn.closed == eof
