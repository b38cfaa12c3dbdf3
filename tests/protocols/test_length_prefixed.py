"""Tests for :class:`weft.protocols.framing._length_prefixed.LengthPrefixedParser` and its encoder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.frame_events import Event, run
from weft.drivers.testing import chunkings
from weft.protocols.errors import (
    ArgumentError,
    FrameTooLongError,
    UnencodableFrameError,
)
from weft.protocols.framing import (
    DEFAULT_MAX_FRAME_LENGTH,
    PREFIX_SIZES,
    LengthPrefixedParser,
    encode_length_prefixed,
)


def prefix(length: int, size: int) -> bytes:
    """A big-endian length prefix, written independently of the code under test."""
    return length.to_bytes(size, "big")


def model(data: bytes, size: int, max_length: int) -> list[Event]:
    """The frames (and error) ``data`` holds, read the obvious way (the spec)."""
    events: list[Event] = []
    position = 0
    while len(data) - position >= size:
        length = int.from_bytes(data[position : position + size], "big")
        if length > max_length:
            return [*events, FrameTooLongError]
        if len(data) - position - size < length:
            break
        events.append(data[position + size : position + size + length])
        position += size + length
    return events


# -------------------------------------------------------------------- parsing


@pytest.mark.parametrize("size", PREFIX_SIZES)
def test_frames_come_out_in_order_without_their_prefix(size: int) -> None:
    """Each frame's payload comes out, in order, with the prefix removed."""
    parser = LengthPrefixedParser(prefix_size=size)
    parser.feed(prefix(3, size) + b"one" + prefix(5, size) + b"three" + prefix(2, size) + b"tw")
    assert list(parser.frames()) == [b"one", b"three", b"tw"]
    assert parser.next_frame() is None
    assert parser.buffered == 0


@pytest.mark.parametrize("size", PREFIX_SIZES)
def test_prefix_is_big_endian(size: int) -> None:
    """The length is read big-endian: 0x0102 is 258, not 513."""
    if size == 1:
        payload = b"x" * 0x81
        data = b"\x81" + payload
    else:
        payload = b"x" * 0x0102
        data = bytes(size - 2) + b"\x01\x02" + payload
    parser = LengthPrefixedParser(prefix_size=size)
    parser.feed(data)
    assert parser.next_frame() == payload
    assert parser.buffered == 0


@pytest.mark.parametrize("size", PREFIX_SIZES)
def test_zero_length_frames(size: int) -> None:
    """A zero length is an empty frame; several in a row are several frames."""
    parser = LengthPrefixedParser(prefix_size=size)
    parser.feed(prefix(0, size) * 3)
    assert list(parser.frames()) == [b"", b"", b""]


@pytest.mark.parametrize("size", PREFIX_SIZES)
def test_incomplete_prefix_and_payload_wait(size: int) -> None:
    """Nothing comes out until the prefix and the whole payload have arrived."""
    parser = LengthPrefixedParser(prefix_size=size)
    data = prefix(4, size) + b"abcd"
    for index in range(len(data) - 1):
        parser.feed(data[index : index + 1])
        assert parser.next_frame() is None
        assert parser.buffered == index + 1
    parser.feed(data[-1:])
    assert parser.next_frame() == b"abcd"


def test_accepts_bytearray_and_memoryview() -> None:
    """``feed`` takes any bytes-like object and frames come out as ``bytes``."""
    parser = LengthPrefixedParser(prefix_size=1)
    parser.feed(bytearray(b"\x02a"))
    parser.feed(memoryview(b"b"))
    frame = parser.next_frame()
    assert frame == b"ab"
    assert type(frame) is bytes


def test_defaults() -> None:
    """The defaults are a 4-byte prefix and DEFAULT_MAX_FRAME_LENGTH."""
    parser = LengthPrefixedParser()
    assert parser.prefix_size == 4
    assert parser.max_length == DEFAULT_MAX_FRAME_LENGTH
    assert parser.error is None
    assert PREFIX_SIZES == (1, 2, 4)


# ---------------------------------------------------------------- the limit


@pytest.mark.parametrize("size", PREFIX_SIZES)
def test_frame_exactly_at_the_limit_is_accepted(size: int) -> None:
    """A payload of exactly ``max_length`` bytes is accepted."""
    parser = LengthPrefixedParser(prefix_size=size, max_length=10)
    parser.feed(prefix(10, size) + b"0123456789")
    assert parser.next_frame() == b"0123456789"


@pytest.mark.parametrize("size", PREFIX_SIZES)
def test_over_the_limit_is_refused_as_soon_as_the_prefix_is_read(size: int) -> None:
    """A prefix announcing more than ``max_length`` raises FrameTooLongError before any payload arrives,
    with the announced length, and the buffer is dropped."""
    parser = LengthPrefixedParser(prefix_size=size, max_length=10)
    parser.feed(prefix(11, size))
    with pytest.raises(FrameTooLongError) as info:
        parser.next_frame()
    assert info.value.limit == 10
    assert info.value.length == 11
    assert parser.error is info.value
    assert parser.buffered == 0


def test_huge_announced_length_is_refused_without_waiting() -> None:
    """A 4 GiB announcement is refused at once; the parser never waits for or keeps such a payload."""
    parser = LengthPrefixedParser(prefix_size=4, max_length=1000)
    parser.feed(b"\xff\xff\xff\xff" + b"x" * 10)
    with pytest.raises(FrameTooLongError) as info:
        parser.next_frame()
    assert info.value.length == 0xFFFFFFFF
    assert parser.buffered == 0


def test_zero_max_length_accepts_only_empty_frames() -> None:
    """With ``max_length=0`` empty frames pass and a one-byte frame is refused."""
    parser = LengthPrefixedParser(prefix_size=2, max_length=0)
    parser.feed(b"\x00\x00\x00\x00\x00\x01x")
    assert parser.next_frame() == b""
    assert parser.next_frame() == b""
    with pytest.raises(FrameTooLongError):
        parser.next_frame()


def test_error_comes_in_stream_position_and_is_raised_again() -> None:
    """Good frames before the over-long one come out first; then the error, again and again."""
    parser = LengthPrefixedParser(prefix_size=1, max_length=3)
    parser.feed(b"\x01a\x03abc\x04abcd\x01z")
    assert parser.next_frame() == b"a"
    assert parser.next_frame() == b"abc"
    with pytest.raises(FrameTooLongError) as first:
        parser.next_frame()
    with pytest.raises(FrameTooLongError) as second:
        parser.next_frame()
    assert second.value is first.value


def test_parser_ignores_input_after_the_error() -> None:
    """Once spent, the parser keeps nothing it is fed and gives no frame."""
    parser = LengthPrefixedParser(prefix_size=1, max_length=1)
    parser.feed(b"\x05")
    with pytest.raises(FrameTooLongError) as info:
        parser.next_frame()
    parser.feed(b"\x01a\x01b")
    assert parser.buffered == 0
    with pytest.raises(FrameTooLongError) as again:
        parser.next_frame()
    assert again.value is info.value
    assert parser.take_buffer() == b""


# -------------------------------------------------------- buffered, take_buffer


def test_take_buffer_returns_unread_frames_with_their_prefixes() -> None:
    """``take_buffer`` returns whole unread frames, prefixes included, and a partial one."""
    parser = LengthPrefixedParser(prefix_size=2)
    parser.feed(b"\x00\x01a\x00\x02bc\x00\x05de")
    assert parser.next_frame() == b"a"
    assert parser.buffered == 4 + 4
    assert parser.take_buffer() == b"\x00\x02bc\x00\x05de"
    assert parser.buffered == 0
    assert parser.next_frame() is None


def test_take_buffer_gives_back_a_prefix_already_looked_at() -> None:
    """A prefix the parser has read (and is waiting on the payload of) is given back too."""
    parser = LengthPrefixedParser(prefix_size=4)
    parser.feed(b"\x00\x00\x00\x09abc")
    assert parser.next_frame() is None
    assert parser.take_buffer() == b"\x00\x00\x00\x09abc"
    parser.feed(b"\x00\x00\x00\x01z")
    assert parser.next_frame() == b"z"


def test_take_buffer_of_a_partial_prefix() -> None:
    """Half a prefix is given back as is."""
    parser = LengthPrefixedParser(prefix_size=4)
    parser.feed(b"\x00\x00")
    assert parser.next_frame() is None
    assert parser.take_buffer() == b"\x00\x00"


# ------------------------------------------------------------------ encoding


@pytest.mark.parametrize("size", PREFIX_SIZES)
def test_encode_puts_a_big_endian_length_in_front(size: int) -> None:
    """The encoding is the payload's length in ``size`` big-endian bytes, then the payload."""
    assert encode_length_prefixed(b"hello", size) == prefix(5, size) + b"hello"
    assert encode_length_prefixed(b"", size) == bytes(size)


def test_encode_default_prefix_is_four_bytes() -> None:
    """Without a size the prefix is 4 bytes."""
    assert encode_length_prefixed(b"ab") == b"\x00\x00\x00\x02ab"


@pytest.mark.parametrize(("size", "longest"), [(1, 255), (2, 65535)])
def test_encode_longest_payload_that_fits(size: int, longest: int) -> None:
    """The longest payload a prefix can describe is encoded and parses back."""
    payload = b"p" * longest
    encoded = encode_length_prefixed(payload, size)
    assert encoded[:size] == b"\xff" * size
    parser = LengthPrefixedParser(prefix_size=size, max_length=longest)
    parser.feed(encoded)
    assert parser.next_frame() == payload


@pytest.mark.parametrize(("size", "too_long"), [(1, 256), (2, 65536)])
def test_encode_refuses_a_payload_too_long_for_the_prefix(size: int, too_long: int) -> None:
    """A payload one byte longer than the prefix can describe raises UnencodableFrameError (a ValueError)."""
    with pytest.raises(UnencodableFrameError):
        encode_length_prefixed(b"p" * too_long, size)
    with pytest.raises(ValueError, match="prefix"):
        encode_length_prefixed(b"p" * too_long, size)


@given(payloads=st.lists(st.binary(max_size=300), max_size=5), size=st.sampled_from(PREFIX_SIZES))
def test_encode_then_parse_round_trips(payloads: list[bytes], size: int) -> None:
    """Frames encoded back to back parse back to the same payloads (or the encoder refuses them)."""
    encodable = [p for p in payloads if len(p) < 1 << (8 * size)]
    parser = LengthPrefixedParser(prefix_size=size, max_length=300)
    parser.feed(b"".join(encode_length_prefixed(p, size) for p in encodable))
    assert list(parser.frames()) == encodable
    assert parser.buffered == 0


# --------------------------------------------------------- argument errors


@pytest.mark.parametrize("size", [0, 3, 8, -1])
def test_unsupported_prefix_size_is_an_argument_error(size: int) -> None:
    """Only 1, 2 and 4-byte prefixes exist; anything else raises ArgumentError, for parser and encoder."""
    with pytest.raises(ArgumentError, match="prefix_size"):
        LengthPrefixedParser(prefix_size=size)
    with pytest.raises(ArgumentError, match="prefix_size"):
        encode_length_prefixed(b"x", size)


def test_negative_max_length_is_an_argument_error() -> None:
    """A negative limit raises ArgumentError, which is also a ValueError."""
    with pytest.raises(ArgumentError):
        LengthPrefixedParser(max_length=-1)
    with pytest.raises(ValueError, match="max_length"):
        LengthPrefixedParser(max_length=-1)


# --------------------------------------------------------------- properties

# Streams of frames, some over the small limits used below, possibly cut
# short, possibly followed by junk.
frame_streams = st.tuples(
    st.sampled_from(PREFIX_SIZES),
    st.lists(st.binary(max_size=8), max_size=6),
    st.binary(max_size=6),
).map(lambda t: (t[0], b"".join(encode_length_prefixed(p, t[0]) for p in t[1]) + t[2]))


@given(stream=frame_streams, max_length=st.integers(0, 6), rnd=st.data())
def test_any_chunking_gives_the_events_of_a_single_feed(
    stream: tuple[int, bytes], max_length: int, rnd: st.DataObject
) -> None:
    """For any chunking, the frames and then the error type are those of one feed, which are
    those the obvious reading of the stream gives."""
    size, data = stream
    chunks = rnd.draw(chunkings(data))
    expected = model(data, size, max_length)
    assert run(LengthPrefixedParser(size, max_length), [data] if data else []) == expected
    assert run(LengthPrefixedParser(size, max_length), chunks) == expected


@given(data=st.binary(max_size=40), max_length=st.integers(0, 300), rnd=st.data())
def test_any_chunking_of_random_bytes_gives_the_events_of_a_single_feed(
    data: bytes, max_length: int, rnd: st.DataObject
) -> None:
    """Even for arbitrary bytes (1-byte prefixes, so they parse as something) chunking changes nothing."""
    chunks = rnd.draw(chunkings(data))
    single = run(LengthPrefixedParser(1, max_length), [data] if data else [])
    assert run(LengthPrefixedParser(1, max_length), chunks) == single == model(data, 1, max_length)


@given(stream=frame_streams, rnd=st.data())
def test_take_buffer_at_any_point_returns_the_unconsumed_suffix(
    stream: tuple[int, bytes], rnd: st.DataObject
) -> None:
    """Feed some chunks, take some frames, then ``take_buffer``: it returns exactly the bytes
    fed and not yet returned in a frame (prefixes included), as ``buffered`` counted."""
    size, data = stream
    chunks = rnd.draw(chunkings(data))
    fed_count = rnd.draw(st.integers(0, len(chunks)))
    parser = LengthPrefixedParser(size, max_length=1 << (8 * size))
    fed = b"".join(chunks[:fed_count])
    consumed = 0
    for chunk in chunks[:fed_count]:
        parser.feed(chunk)
        for _ in range(rnd.draw(st.integers(0, 3))):
            frame = parser.next_frame()
            if frame is None:
                break
            assert fed[consumed : consumed + size + len(frame)] == prefix(len(frame), size) + frame
            consumed += size + len(frame)
    assert parser.buffered == len(fed) - consumed
    assert parser.take_buffer() == fed[consumed:]
    assert parser.buffered == 0
    assert parser.next_frame() is None
