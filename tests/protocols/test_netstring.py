"""Tests for :class:`weft.protocols.framing._netstring.NetstringParser` and :func:`encode_netstring`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.frame_events import Event, run
from weft.drivers.testing import chunkings
from weft.protocols.errors import (
    ArgumentError,
    FrameTooLongError,
    MalformedFrameError,
)
from weft.protocols.framing import DEFAULT_MAX_FRAME_LENGTH, NetstringParser, encode_netstring


def ns(payload: bytes) -> bytes:
    """A netstring, written independently of the code under test."""
    return str(len(payload)).encode() + b":" + payload + b","


# -------------------------------------------------------------------- parsing


def test_payloads_come_out_in_order() -> None:
    """Each netstring's payload comes out, in order, without header or comma."""
    parser = NetstringParser()
    parser.feed(b"5:hello,0:,3:a:,,")
    assert list(parser.frames()) == [b"hello", b"", b"a:,"]
    assert parser.next_frame() is None
    assert parser.buffered == 0


def test_multi_digit_lengths() -> None:
    """Lengths of several digits are read in full."""
    payload = b"x" * 1234
    parser = NetstringParser()
    parser.feed(b"1234:" + payload + b",10:0123456789,")
    assert list(parser.frames()) == [payload, b"0123456789"]


def test_netstring_byte_by_byte() -> None:
    """A netstring fed one byte at a time comes out once its comma arrives, not before."""
    parser = NetstringParser()
    data = b"12:hello world!,"
    for index in range(len(data) - 1):
        parser.feed(data[index : index + 1])
        assert parser.next_frame() is None
    parser.feed(b",")
    assert parser.next_frame() == b"hello world!"


def test_accepts_bytearray_and_memoryview() -> None:
    """``feed`` takes any bytes-like object and payloads come out as ``bytes``."""
    parser = NetstringParser()
    parser.feed(bytearray(b"2:a"))
    parser.feed(memoryview(b"b,"))
    frame = parser.next_frame()
    assert frame == b"ab"
    assert type(frame) is bytes


def test_defaults() -> None:
    """The default limit is DEFAULT_MAX_FRAME_LENGTH and there is no error yet."""
    parser = NetstringParser()
    assert parser.max_length == DEFAULT_MAX_FRAME_LENGTH
    assert parser.error is None


# -------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b":", "empty length"),
        (b":,", "empty length"),
        (b"a:", "holds"),
        (b"5a:", "holds"),
        (b"-1:", "holds"),
        (b" 1:", "holds"),
        (b"+1:", "holds"),
        (b"1_0:", "holds"),
        (b"01:", "leading zero"),
        (b"00:", "leading zero"),
        (b"3:abcX", "','"),
        (b"0:x", "','"),
    ],
)
def test_malformed_headers_and_trailers(data: bytes, message: str) -> None:
    """Empty lengths, non-digits, leading zeros and a missing comma raise MalformedFrameError."""
    parser = NetstringParser()
    parser.feed(data)
    with pytest.raises(MalformedFrameError, match=message):
        parser.next_frame()
    assert parser.buffered == 0


def test_bad_header_byte_is_refused_before_the_colon() -> None:
    """A bad byte in the header is refused as soon as it arrives, without waiting for a colon."""
    parser = NetstringParser()
    parser.feed(b"12x")
    with pytest.raises(MalformedFrameError):
        parser.next_frame()


def test_leading_zero_is_refused_at_the_second_digit() -> None:
    """``0`` followed by a digit is refused at once; ``0:`` alone is the empty netstring."""
    parser = NetstringParser()
    parser.feed(b"0")
    assert parser.next_frame() is None
    parser.feed(b"7")
    with pytest.raises(MalformedFrameError, match="leading zero"):
        parser.next_frame()


def test_missing_comma_is_found_once_the_payload_is_in() -> None:
    """The byte after the payload must be a comma; anything else is refused when it arrives."""
    parser = NetstringParser()
    parser.feed(b"2:ok,3:abc")
    assert parser.next_frame() == b"ok"
    assert parser.next_frame() is None
    parser.feed(b";")
    with pytest.raises(MalformedFrameError):
        parser.next_frame()


# ---------------------------------------------------------------- the limit


def test_payload_exactly_at_the_limit_is_accepted() -> None:
    """A payload of exactly ``max_length`` bytes is accepted."""
    parser = NetstringParser(max_length=5)
    parser.feed(b"5:hello,")
    assert parser.next_frame() == b"hello"


def test_over_the_limit_is_refused_as_soon_as_the_header_is_read() -> None:
    """A header announcing more than ``max_length`` raises FrameTooLongError before any payload arrives."""
    parser = NetstringParser(max_length=10)
    parser.feed(b"11:")
    with pytest.raises(FrameTooLongError) as info:
        parser.next_frame()
    assert info.value.limit == 10
    assert info.value.length == 11
    assert parser.error is info.value
    assert parser.buffered == 0


def test_too_many_digits_are_refused_before_the_colon() -> None:
    """A length with more digits than the limit allows is refused at the extra digit:
    the parser never waits for (or keeps) an endless header."""
    parser = NetstringParser(max_length=99)
    parser.feed(b"10")
    assert parser.next_frame() is None
    parser.feed(b"0")
    with pytest.raises(FrameTooLongError) as info:
        parser.next_frame()
    assert info.value.length > info.value.limit == 99


def test_endless_digits_are_refused() -> None:
    """A stream of digits with no colon is refused, not buffered forever."""
    parser = NetstringParser(max_length=1000)
    parser.feed(b"9" * 100)
    with pytest.raises(FrameTooLongError):
        parser.next_frame()
    assert parser.buffered == 0


def test_longest_header_the_limit_allows_is_accepted() -> None:
    """A header with as many digits as the limit has is read (and judged by value)."""
    parser = NetstringParser(max_length=100)
    parser.feed(b"100:" + b"x" * 100 + b",")
    assert parser.next_frame() == b"x" * 100


def test_zero_max_length() -> None:
    """With ``max_length=0`` only ``0:,`` is accepted; ``1:`` is too long."""
    parser = NetstringParser(max_length=0)
    parser.feed(b"0:,0:,1:x,")
    assert parser.next_frame() == b""
    assert parser.next_frame() == b""
    with pytest.raises(FrameTooLongError):
        parser.next_frame()


def test_error_comes_in_stream_position_and_is_raised_again() -> None:
    """Good payloads before the bad netstring come out first; then the error, the same one each time."""
    parser = NetstringParser()
    parser.feed(b"1:a,2:bc,x:,1:z,")
    assert parser.next_frame() == b"a"
    assert parser.next_frame() == b"bc"
    with pytest.raises(MalformedFrameError) as first:
        parser.next_frame()
    with pytest.raises(MalformedFrameError) as second:
        parser.next_frame()
    assert second.value is first.value


def test_parser_ignores_input_after_the_error() -> None:
    """Once spent, the parser keeps nothing it is fed and gives no payload."""
    parser = NetstringParser()
    parser.feed(b":")
    with pytest.raises(MalformedFrameError) as info:
        parser.next_frame()
    parser.feed(b"1:a,")
    assert parser.buffered == 0
    with pytest.raises(MalformedFrameError) as again:
        parser.next_frame()
    assert again.value is info.value
    assert parser.take_buffer() == b""


# -------------------------------------------------------- buffered, take_buffer


def test_take_buffer_returns_unread_netstrings() -> None:
    """``take_buffer`` returns whole unread netstrings and a partial one, as fed."""
    parser = NetstringParser()
    parser.feed(b"1:a,2:bc,3:d")
    assert parser.next_frame() == b"a"
    assert parser.take_buffer() == b"2:bc,3:d"
    assert parser.buffered == 0
    assert parser.next_frame() is None


def test_take_buffer_gives_back_a_header_already_read() -> None:
    """A header the parser has read, waiting on its payload, is given back too."""
    parser = NetstringParser()
    parser.feed(b"10:abc")
    assert parser.next_frame() is None
    assert parser.buffered == 6  # the header is held with its payload, as fed
    assert parser.take_buffer() == b"10:abc"
    # And the parser starts afresh: the old header is forgotten.
    parser.feed(b"1:z,")
    assert parser.next_frame() == b"z"


def test_take_buffer_gives_back_a_header_with_its_whole_payload_but_no_comma() -> None:
    """Header read, payload complete, comma not yet in: all of it is given back."""
    parser = NetstringParser()
    parser.feed(b"3:abc")
    assert parser.next_frame() is None
    assert parser.take_buffer() == b"3:abc"


def test_take_buffer_of_a_partial_header() -> None:
    """Digits without their colon yet are given back as is."""
    parser = NetstringParser()
    parser.feed(b"12")
    assert parser.next_frame() is None
    assert parser.take_buffer() == b"12"


# ------------------------------------------------------------------ encoding


@pytest.mark.parametrize(
    ("payload", "encoded"),
    [(b"hello", b"5:hello,"), (b"", b"0:,"), (b"a,b:c", b"5:a,b:c,"), (b"x" * 12, b"12:" + b"x" * 12 + b",")],
)
def test_encode_netstring(payload: bytes, encoded: bytes) -> None:
    """The encoding is the decimal length, a colon, the payload and a comma."""
    assert encode_netstring(payload) == encoded


@given(payloads=st.lists(st.binary(max_size=120), max_size=5))
def test_encode_then_parse_round_trips(payloads: list[bytes]) -> None:
    """Netstrings encoded back to back parse back to the same payloads."""
    parser = NetstringParser(max_length=120)
    parser.feed(b"".join(encode_netstring(p) for p in payloads))
    assert list(parser.frames()) == payloads
    assert parser.buffered == 0


# --------------------------------------------------------- argument errors


def test_negative_max_length_is_an_argument_error() -> None:
    """A negative limit raises ArgumentError, which is also a ValueError."""
    with pytest.raises(ArgumentError):
        NetstringParser(max_length=-1)
    with pytest.raises(ValueError, match="max_length"):
        NetstringParser(max_length=-1)


# --------------------------------------------------------------- properties

# Pieces of netstrings, good and bad, so that random streams reach every
# branch of the header and trailer checks.
FRAGMENTS = [b":", b",", b"0", b"1", b"2", b"9", b"x", b"01:", b"3:", b"ab", b"0:,", b"1:a,", b"12:"]

junk_streams = st.lists(st.sampled_from(FRAGMENTS), max_size=20).map(b"".join)


@given(data=junk_streams, max_length=st.integers(0, 15), rnd=st.data())
def test_any_chunking_gives_the_events_of_a_single_feed(
    data: bytes, max_length: int, rnd: st.DataObject
) -> None:
    """For any bytes (mostly broken netstrings) and any chunking, the payloads and then the
    error type are those of one feed of all the bytes."""
    chunks = rnd.draw(chunkings(data))
    single = run(NetstringParser(max_length), [data] if data else [])
    assert run(NetstringParser(max_length), chunks) == single


@given(payloads=st.lists(st.binary(max_size=15), max_size=5), max_length=st.integers(0, 15), rnd=st.data())
def test_valid_stream_any_chunking_gives_payloads_up_to_the_first_too_long(
    payloads: list[bytes], max_length: int, rnd: st.DataObject
) -> None:
    """Well-formed netstrings in any chunking give their payloads in order, then
    FrameTooLongError at the first payload over the limit, if any."""
    data = b"".join(ns(p) for p in payloads)
    expected: list[Event] = []
    for payload in payloads:
        if len(payload) > max_length:
            expected.append(FrameTooLongError)
            break
        expected.append(payload)
    chunks = rnd.draw(chunkings(data))
    assert run(NetstringParser(max_length), chunks) == expected


@given(payloads=st.lists(st.binary(max_size=15), max_size=5), cut=st.integers(0, 20), rnd=st.data())
def test_take_buffer_at_any_point_returns_the_unconsumed_suffix(
    payloads: list[bytes], cut: int, rnd: st.DataObject
) -> None:
    """Feed some chunks of well-formed netstrings (the last possibly cut short), take some
    payloads, then ``take_buffer``: it returns exactly the bytes fed and not yet returned in a
    payload, a header already read included."""
    data = b"".join(ns(p) for p in payloads)
    data = data[: max(0, len(data) - cut)]
    chunks = rnd.draw(chunkings(data))
    fed_count = rnd.draw(st.integers(0, len(chunks)))
    parser = NetstringParser()
    fed = b"".join(chunks[:fed_count])
    consumed = 0
    for chunk in chunks[:fed_count]:
        parser.feed(chunk)
        for _ in range(rnd.draw(st.integers(0, 3))):
            payload = parser.next_frame()
            if payload is None:
                break
            assert fed[consumed : consumed + len(ns(payload))] == ns(payload)
            consumed += len(ns(payload))
    assert parser.take_buffer() == fed[consumed:]
    assert parser.buffered == 0
    assert parser.next_frame() is None
    # The parser carries on from a clean state with the rest of the stream.
    assert parser.error is None
