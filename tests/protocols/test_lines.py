"""Tests for :class:`weft.protocols.framing._lines.LineParser` and :func:`encode_line`."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.frame_events import Event, drain, run
from weft.drivers.testing import chunked, chunkings
from weft.protocols.errors import (
    ArgumentError,
    FrameTooLongError,
    LineTooLongError,
    UnencodableFrameError,
)
from weft.protocols.framing import DEFAULT_MAX_FRAME_LENGTH, LineParser, encode_line

# Delimiters worth trying: the common ones, a word, and two that overlap
# themselves (a border), where a naive straddling search goes wrong.
DELIMITERS = [b"\n", b"\r\n", b"END", b"aa", b"\r\n\r\n"]

# Bytes that make up the delimiters above, plus a filler, so that random
# input is full of delimiters and near-delimiters.
ALPHABET = [b"a", b"b", b"\r", b"\n", b"E", b"N", b"D"]

streams = st.lists(st.sampled_from(ALPHABET), max_size=60).map(b"".join)


def model(data: bytes, delimiter: bytes, max_length: int) -> list[Event]:
    """What a line parser must report for ``data`` fed at once (the spec)."""
    *lines, partial = data.split(delimiter)
    events: list[Event] = []
    for line in lines:
        if len(line) > max_length:
            return [*events, LineTooLongError]
        events.append(line)
    # A partial line may end in the first bytes of a delimiter.
    if len(partial) > max_length + len(delimiter) - 1:
        events.append(LineTooLongError)
    return events


# ------------------------------------------------------------- basic cutting


def test_cuts_lines_at_newline_and_drops_the_delimiter() -> None:
    """Lines come out in order, without their delimiter; a trailing piece waits."""
    parser = LineParser()
    parser.feed(b"one\ntwo\nthr")
    assert list(parser.frames()) == [b"one", b"two"]
    assert parser.next_frame() is None
    parser.feed(b"ee\n")
    assert parser.next_frame() == b"three"
    assert parser.next_frame() is None


def test_next_line_is_next_frame() -> None:
    """``next_line`` is an alias of ``next_frame``."""
    parser = LineParser()
    parser.feed(b"a\nb\n")
    assert parser.next_line() == b"a"
    assert parser.next_frame() == b"b"
    assert parser.next_line() is None


def test_defaults() -> None:
    """The default delimiter is a newline and the default limit is DEFAULT_MAX_FRAME_LENGTH."""
    parser = LineParser()
    assert parser.delimiter == b"\n"
    assert parser.max_length == DEFAULT_MAX_FRAME_LENGTH
    assert parser.error is None


def test_accepts_bytearray_and_memoryview() -> None:
    """``feed`` takes any bytes-like object, and lines come out as ``bytes``."""
    parser = LineParser()
    parser.feed(bytearray(b"ab"))
    parser.feed(memoryview(b"c\nd\n"))
    lines = list(parser.frames())
    assert lines == [b"abc", b"d"]
    assert all(type(line) is bytes for line in lines)


def test_feeding_nothing_changes_nothing() -> None:
    """An empty feed neither completes nor adds anything."""
    parser = LineParser()
    parser.feed(b"ab")
    parser.feed(b"")
    assert parser.next_frame() is None
    assert parser.buffered == 2
    parser.feed(b"\n")
    assert parser.next_frame() == b"ab"


def test_empty_lines_are_lines() -> None:
    """Consecutive delimiters give empty lines, one per delimiter."""
    parser = LineParser()
    parser.feed(b"\n\na\n\n")
    assert list(parser.frames()) == [b"", b"", b"a", b""]


def test_empty_lines_with_multibyte_delimiter() -> None:
    """Back-to-back multi-byte delimiters give empty lines too."""
    parser = LineParser(b"\r\n")
    parser.feed(b"\r\n\r\nx\r\n")
    assert list(parser.frames()) == [b"", b"", b"x"]


def test_crlf_delimiter_keeps_lone_cr_and_lf() -> None:
    """With ``\\r\\n`` as delimiter, a lone ``\\r`` or ``\\n`` is part of the line."""
    parser = LineParser(b"\r\n")
    parser.feed(b"a\rb\nc\r\nd\r\n")
    assert list(parser.frames()) == [b"a\rb\nc", b"d"]


def test_word_delimiter() -> None:
    """A multi-byte word delimiter cuts where it appears and nowhere else."""
    parser = LineParser(b"END")
    parser.feed(b"oneENDtwoENthreeENDEND")
    assert list(parser.frames()) == [b"one", b"twoENthree", b""]


@pytest.mark.parametrize("cut", [1, 2])
def test_delimiter_straddling_two_chunks(cut: int) -> None:
    """A delimiter split across two feeds is still found, wherever the split falls."""
    parser = LineParser(b"END")
    data = b"helloEND"
    split_at = len(b"hello") + cut
    parser.feed(data[:split_at])
    assert parser.next_frame() is None
    parser.feed(data[split_at:])
    assert parser.next_frame() == b"hello"
    assert parser.buffered == 0


def test_crlf_straddling_two_chunks() -> None:
    """``\\r`` at the end of one chunk and ``\\n`` at the start of the next end a line."""
    parser = LineParser(b"\r\n")
    parser.feed(b"abc\r")
    assert parser.next_frame() is None
    parser.feed(b"\ndef\r\n")
    assert list(parser.frames()) == [b"abc", b"def"]


def test_delimiter_arriving_one_byte_at_a_time() -> None:
    """A delimiter fed byte by byte across three chunks ends the line."""
    parser = LineParser(b"END")
    for byte in b"xENDy":
        parser.feed(bytes([byte]))
    assert parser.next_frame() == b"x"
    assert parser.take_buffer() == b"y"


def test_self_overlapping_delimiter_straddling_chunks() -> None:
    """With ``aa`` as delimiter, the leftmost match wins whatever the chunking, as in a single feed."""
    whole = LineParser(b"aa")
    whole.feed(b"xaaa")
    split = LineParser(b"aa")
    split.feed(b"xa")
    split.feed(b"aa")
    assert list(whole.frames()) == list(split.frames()) == [b"x"]
    assert whole.take_buffer() == split.take_buffer() == b"a"


# ---------------------------------------------------------------- max_length


@pytest.mark.parametrize("delimiter", [b"\n", b"\r\n", b"END"])
def test_line_exactly_at_the_limit_is_accepted(delimiter: bytes) -> None:
    """A line of exactly ``max_length`` bytes (delimiter not counted) is accepted."""
    parser = LineParser(delimiter, max_length=5)
    parser.feed(b"12345" + delimiter)
    assert parser.next_frame() == b"12345"


@pytest.mark.parametrize("delimiter", [b"\n", b"\r\n", b"END"])
def test_line_one_over_the_limit_is_refused(delimiter: bytes) -> None:
    """A line of ``max_length + 1`` bytes raises LineTooLongError with its limit and length."""
    parser = LineParser(delimiter, max_length=5)
    parser.feed(b"123456" + delimiter)
    with pytest.raises(LineTooLongError) as info:
        parser.next_frame()
    assert info.value.limit == 5
    assert info.value.length == 6
    assert isinstance(info.value, FrameTooLongError)


@pytest.mark.parametrize("delimiter", [b"\n", b"\r\n", b"END"])
def test_line_at_the_limit_arriving_byte_by_byte_is_accepted(delimiter: bytes) -> None:
    """A line at the limit is accepted even when its delimiter trickles in byte by byte."""
    parser = LineParser(delimiter, max_length=5)
    for byte in b"12345" + delimiter:
        parser.feed(bytes([byte]))
        events = drain(parser)
        assert LineTooLongError not in events
    assert parser.error is None


def test_zero_max_length_accepts_only_empty_lines() -> None:
    """With ``max_length=0`` empty lines pass and the first non-empty one is refused."""
    parser = LineParser(max_length=0)
    parser.feed(b"\n\nx\n")
    assert parser.next_frame() == b""
    assert parser.next_frame() == b""
    with pytest.raises(LineTooLongError):
        parser.next_frame()


def test_unterminated_line_over_the_limit_is_refused_without_its_delimiter() -> None:
    """A partial line that can no longer fit is refused before its delimiter arrives."""
    parser = LineParser(max_length=4)
    parser.feed(b"abcdefgh")
    with pytest.raises(LineTooLongError) as info:
        parser.next_frame()
    assert info.value.length > info.value.limit == 4


def test_partial_line_may_hold_the_start_of_a_delimiter() -> None:
    """A partial line of ``max_length + len(delimiter) - 1`` bytes is not yet an error:
    its tail may be the start of the delimiter."""
    parser = LineParser(b"END", max_length=3)
    parser.feed(b"abcEN")
    assert parser.next_frame() is None
    parser.feed(b"D")
    assert parser.next_frame() == b"abc"


def test_error_comes_in_stream_position_and_is_raised_again() -> None:
    """Good lines before an over-long line come out first; then the error, and the same error again."""
    parser = LineParser(max_length=3)
    parser.feed(b"ok\nabc\ntoolong\nafter\n")
    assert parser.next_frame() == b"ok"
    assert parser.next_frame() == b"abc"
    assert parser.error is None
    with pytest.raises(LineTooLongError) as first:
        parser.next_frame()
    assert parser.error is first.value
    with pytest.raises(LineTooLongError) as second:
        parser.next_frame()
    assert second.value is first.value


def test_error_from_a_partial_line_comes_after_the_whole_lines() -> None:
    """An over-long partial line in the same chunk as good lines is raised after them."""
    parser = LineParser(max_length=3)
    parser.feed(b"a\nbb\n" + b"x" * 50)
    assert parser.next_frame() == b"a"
    assert parser.next_frame() == b"bb"
    with pytest.raises(LineTooLongError):
        parser.next_frame()


def test_parser_ignores_input_after_the_error() -> None:
    """Once spent, the parser keeps nothing it is fed and yields no more lines."""
    parser = LineParser(max_length=3)
    parser.feed(b"toolong\n")
    with pytest.raises(LineTooLongError) as info:
        parser.next_frame()
    parser.feed(b"fine\nfine\n")
    assert parser.buffered == 0
    with pytest.raises(LineTooLongError) as again:
        parser.next_frame()
    assert again.value is info.value
    assert parser.take_buffer() == b""


# -------------------------------------------------------- buffered, take_buffer


def test_buffered_counts_pending_lines_with_delimiters_and_the_partial() -> None:
    """``buffered`` is the number of fed bytes not yet handed out, delimiters included."""
    parser = LineParser(b"\r\n")
    assert parser.buffered == 0
    parser.feed(b"a\r\nbb\r\nccc")
    assert parser.buffered == 3 + 4 + 3
    assert parser.next_frame() == b"a"
    assert parser.buffered == 4 + 3
    assert parser.next_frame() == b"bb"
    assert parser.buffered == 3
    parser.feed(b"\r")
    assert parser.buffered == 4


def test_take_buffer_returns_pending_lines_and_the_partial() -> None:
    """``take_buffer`` returns whole pending lines with their delimiters, then the partial line."""
    parser = LineParser(b"END")
    parser.feed(b"oneENDtwoENDthreeENDfo")
    assert parser.next_frame() == b"one"
    assert parser.take_buffer() == b"twoENDthreeENDfo"
    assert parser.buffered == 0
    assert parser.next_frame() is None


def test_take_buffer_keeps_a_partial_delimiter() -> None:
    """The first bytes of a delimiter at the end of the partial line are given back too."""
    parser = LineParser(b"\r\n")
    parser.feed(b"x\r\nabc\r")
    assert parser.next_frame() == b"x"
    assert parser.take_buffer() == b"abc\r"


def test_parser_works_on_after_take_buffer() -> None:
    """After ``take_buffer`` the parser starts afresh: a straddling delimiter is not remembered."""
    parser = LineParser(b"\r\n")
    parser.feed(b"abc\r")
    assert parser.take_buffer() == b"abc\r"
    parser.feed(b"\nxyz\r\n")
    assert list(parser.frames()) == [b"\nxyz"]


def test_take_buffer_when_empty() -> None:
    """``take_buffer`` on a fresh or drained parser returns nothing."""
    parser = LineParser()
    assert parser.take_buffer() == b""
    parser.feed(b"a\n")
    assert parser.next_frame() == b"a"
    assert parser.take_buffer() == b""


def test_take_buffer_gives_back_a_partial_line_over_the_limit_not_yet_reached() -> None:
    """Bytes after a pending line are given back whole by ``take_buffer`` even if, read as a line,
    they would be too long: the error belongs to the stream position, not to the feed.

    This is what raw mode relies on: a header line and a long body in one chunk.
    """
    parser = LineParser(max_length=4)
    parser.feed(b"RAW\n" + b"b" * 20)
    assert parser.next_frame() == b"RAW"
    assert parser.take_buffer() == b"b" * 20
    assert parser.error is None


def test_take_buffer_gives_back_a_whole_line_over_the_limit_not_yet_reached() -> None:
    """A whole over-long line found when it was fed, and the lines after it, are given back
    as fed by ``take_buffer`` before ``next_frame`` reaches it; the parser then goes on."""
    parser = LineParser(max_length=4)
    parser.feed(b"ok\n" + b"x" * 50 + b"\nmore\ntail")
    assert parser.next_frame() == b"ok"
    assert parser.buffered == 50 + 1 + 5 + 4
    assert parser.take_buffer() == b"x" * 50 + b"\nmore\ntail"
    parser.feed(b"y\n")
    assert list(parser.frames()) == [b"y"]
    assert parser.error is None


# ----------------------------------------------------------------- encoding


@pytest.mark.parametrize("delimiter", [b"\n", b"\r\n", b"END"])
def test_encode_line_appends_the_delimiter(delimiter: bytes) -> None:
    """``encode_line`` is the line followed by the delimiter, and parses back to the line."""
    encoded = encode_line(b"hello", delimiter)
    assert encoded == b"hello" + delimiter
    parser = LineParser(delimiter)
    parser.feed(encoded)
    assert list(parser.frames()) == [b"hello"]
    assert parser.buffered == 0


def test_encode_line_default_delimiter() -> None:
    """The default delimiter of ``encode_line`` is a newline; an empty line is just it."""
    assert encode_line(b"x") == b"x\n"
    assert encode_line(b"") == b"\n"


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [(b"a\nb", b"\n"), (b"\n", b"\n"), (b"a\r\nb", b"\r\n"), (b"theEND", b"END")],
)
def test_encode_line_refuses_a_line_holding_its_delimiter(line: bytes, delimiter: bytes) -> None:
    """A line holding its delimiter raises UnencodableFrameError, which is also a ValueError."""
    with pytest.raises(UnencodableFrameError):
        encode_line(line, delimiter)
    with pytest.raises(ValueError, match="delimiter"):
        encode_line(line, delimiter)


@pytest.mark.parametrize(("line", "delimiter"), [(b"x\r\n", b"\r\n\r\n"), (b"xa", b"aa"), (b"ba", b"bab")])
def test_encode_line_refuses_a_line_whose_end_completes_an_early_delimiter(
    line: bytes, delimiter: bytes
) -> None:
    """A line that does not hold the delimiter but whose tail would join the delimiter's
    head into an earlier delimiter is refused: the peer would see another line."""
    parser = LineParser(delimiter)
    parser.feed(line + delimiter)
    assert list(parser.frames()) != [line]  # what a naive encoding would do to the peer
    with pytest.raises(UnencodableFrameError):
        encode_line(line, delimiter)


def test_encode_line_accepts_partial_delimiters_that_cannot_join() -> None:
    """A line ending with the start of a delimiter that has no self-overlap is fine."""
    assert encode_line(b"abc\r", b"\r\n") == b"abc\r\r\n"
    assert encode_line(b"EN", b"END") == b"ENEND"


@given(
    line=st.lists(st.sampled_from(ALPHABET), max_size=12).map(b"".join), delimiter=st.sampled_from(DELIMITERS)
)
def test_encode_line_round_trips_or_refuses(line: bytes, delimiter: bytes) -> None:
    """For any line, ``encode_line`` either refuses it or gives bytes that parse back to exactly it."""
    try:
        encoded = encode_line(line, delimiter)
    except UnencodableFrameError:
        parser = LineParser(delimiter)
        parser.feed(line + delimiter)
        assert list(parser.frames()) != [line] or parser.buffered != 0
        return
    parser = LineParser(delimiter, max_length=len(line))
    parser.feed(encoded)
    assert list(parser.frames()) == [line]
    assert parser.buffered == 0


# --------------------------------------------------------- argument errors


@pytest.mark.parametrize("max_length", [-1, -100])
def test_negative_max_length_is_an_argument_error(max_length: int) -> None:
    """A negative limit raises ArgumentError (a ValueError)."""
    with pytest.raises(ArgumentError):
        LineParser(max_length=max_length)
    with pytest.raises(ValueError, match="max_length"):
        LineParser(max_length=max_length)


def test_empty_delimiter_is_an_argument_error() -> None:
    """An empty delimiter raises ArgumentError."""
    with pytest.raises(ArgumentError, match="delimiter"):
        LineParser(b"")


def test_a_str_delimiter_is_a_type_error() -> None:
    """A delimiter of the wrong type raises TypeError, as wrong types do everywhere."""
    with pytest.raises(TypeError, match="bytes"):
        LineParser("\n")  # type: ignore[arg-type]


def test_zero_max_length_is_allowed() -> None:
    """A limit of zero is a valid (if strict) limit."""
    assert LineParser(max_length=0).max_length == 0


# --------------------------------------------------------------- properties


@given(data=streams, delimiter=st.sampled_from(DELIMITERS), max_length=st.integers(0, 6), rnd=st.data())
def test_any_chunking_gives_the_events_of_a_single_feed(
    data: bytes, delimiter: bytes, max_length: int, rnd: st.DataObject
) -> None:
    """For any bytes and any chunking, the lines (and the error, if any) are those of one
    feed of all the bytes, which are those the spec (``bytes.split``) gives."""
    chunks = rnd.draw(chunkings(data))
    expected = model(data, delimiter, max_length)
    assert run(LineParser(delimiter, max_length), [data] if data else []) == expected
    assert run(LineParser(delimiter, max_length), chunks) == expected


@given(chunks=chunked(streams), delimiter=st.sampled_from(DELIMITERS), max_length=st.integers(0, 6))
def test_draining_only_at_the_end_gives_the_same_events(
    chunks: list[bytes], delimiter: bytes, max_length: int
) -> None:
    """Feeding every chunk first and draining once gives the events of draining after each chunk."""
    lazy = LineParser(delimiter, max_length)
    for chunk in chunks:
        lazy.feed(chunk)
    assert drain(lazy) == run(LineParser(delimiter, max_length), chunks)


@given(chunks=chunked(streams), delimiter=st.sampled_from(DELIMITERS), max_length=st.integers(0, 6))
def test_after_an_error_the_same_error_is_raised_whatever_follows(
    chunks: list[bytes], delimiter: bytes, max_length: int
) -> None:
    """Once a parser has raised, more input changes nothing: it raises that same error again."""
    parser = LineParser(delimiter, max_length)
    events = run(parser, chunks)
    if parser.error is None:
        assert LineTooLongError not in events
        return
    error = parser.error
    parser.feed(b"more" + delimiter + b"more" + delimiter)
    with pytest.raises(LineTooLongError) as info:
        parser.next_frame()
    assert info.value is error


@given(data=streams, delimiter=st.sampled_from(DELIMITERS), rnd=st.data())
def test_take_buffer_at_any_point_returns_the_unconsumed_suffix(
    data: bytes, delimiter: bytes, rnd: st.DataObject
) -> None:
    """Feed some chunks, take some lines, then ``take_buffer``: it returns exactly the bytes fed
    and not handed out in a line, and ``buffered`` counted them."""
    chunks = rnd.draw(chunkings(data))
    fed_count = rnd.draw(st.integers(0, len(chunks)))
    parser = LineParser(delimiter, max_length=len(data))
    fed = b"".join(chunks[:fed_count])
    consumed = 0
    for chunk in chunks[:fed_count]:
        parser.feed(chunk)
        for _ in range(rnd.draw(st.integers(0, 3))):
            line = parser.next_frame()
            if line is None:
                break
            assert fed[consumed : consumed + len(line) + len(delimiter)] == line + delimiter
            consumed += len(line) + len(delimiter)
    assert parser.buffered == len(fed) - consumed
    assert parser.take_buffer() == fed[consumed:]
    assert parser.buffered == 0
    # What is taken is gone; the parser carries on with the rest of the stream.
    for chunk in chunks[fed_count:]:
        parser.feed(chunk)
    rest = b"".join(chunks[fed_count:])
    assert list(parser.frames()) == rest.split(delimiter)[:-1]


# ------------------------------------------- the limit, checked as a chunk is cut
#
# A chunk longer than the limit is proved clean by hops from delimiter to
# delimiter (LineParser._surely_within_limit) rather than by measuring every
# line; these hold it to the spec where that proof is tightest: lines at,
# just under and just over the limit, in chunks many times longer, with the
# delimiters that overlap themselves.


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_a_long_chunk_of_lines_all_at_the_limit_is_accepted(delimiter: bytes) -> None:
    """Hundreds of lines of exactly ``max_length`` bytes in one feed: every one comes out."""
    lines = [bytes([65 + index % 20]) * 16 for index in range(300)]
    parser = LineParser(delimiter, max_length=16)
    parser.feed(b"".join(line + delimiter for line in lines) + b"Z" * (16 + len(delimiter) - 1))
    assert drain(parser) == lines


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_one_line_over_the_limit_deep_in_a_long_chunk_is_refused_in_place(delimiter: bytes) -> None:
    """One line of ``max_length + 1`` bytes among hundreds of short ones: the lines before it
    come out, then the error."""
    before = [b"b" * (index % 16) for index in range(500)]
    after = [b"b" * 3] * 50
    data = b"".join(line + delimiter for line in [*before, b"Z" * 17, *after])
    parser = LineParser(delimiter, max_length=16)
    parser.feed(data)
    assert drain(parser) == [*before, LineTooLongError]


# A line's length: short (0 to 3 bytes), or near the limit (-2 to +1 from it).
line_lengths = st.lists(
    st.tuples(st.just(0), st.integers(0, 3)) | st.tuples(st.just(1), st.integers(-2, 1)),
    min_size=1,
    max_size=80,
)


@given(
    limit=st.integers(0, 24),
    lengths=line_lengths,
    delimiter=st.sampled_from(DELIMITERS),
    filler=st.sampled_from(ALPHABET),
    rnd=st.data(),
)
def test_lines_near_the_limit_in_long_chunks_give_the_events_of_the_spec(
    limit: int, lengths: list[tuple[int, int]], delimiter: bytes, filler: bytes, rnd: st.DataObject
) -> None:
    """Lines short or at the limit (-2 to +1 bytes from it), made of one of the delimiters'
    bytes so that partial and overlapping delimiters abound, in one feed and in any
    chunking: the lines and the error the spec (``bytes.split``) gives."""
    lines = [filler * max(0, near * limit + length) for near, length in lengths]
    data = delimiter.join(lines)
    expected = model(data, delimiter, limit)
    assert run(LineParser(delimiter, limit), [data]) == expected
    assert run(LineParser(delimiter, limit), rnd.draw(chunkings(data))) == expected


# ---------------------------------------------------------------- linearity


@pytest.mark.parametrize("delimiter", [b"\n", b"\r\n", b"END"])
def test_one_long_line_byte_by_byte_is_scanned_in_linear_time(delimiter: bytes) -> None:
    """A 200 000-byte line fed one byte at a time is searched at most a constant number of
    times per byte: ``bytes_scanned <= (len(delimiter) + 1) * input length``.

    Each feed searches its new byte, plus for a multi-byte delimiter the
    ``len(delimiter) - 1`` held bytes a straddling delimiter could start in:
    at most ``len(delimiter) + 1`` bytes per one-byte feed.  An
    implementation that re-searches its whole buffer on every feed (as
    Twisted's ``LineReceiver`` does) scans ``1 + 2 + ... + n``, about
    ``n * n / 2`` = 2e10 bytes here, so it fails this bound by a factor of
    tens of thousands.  No clock is involved: the parser counts what it scans.
    """
    payload = bytes(range(97, 123)) * (200_000 // 26)
    parser = LineParser(delimiter, max_length=len(payload))
    for index in range(len(payload)):
        parser.feed(payload[index : index + 1])
        assert parser.next_frame() is None
    for byte in delimiter:
        parser.feed(bytes([byte]))
    assert parser.next_frame() == payload
    total = len(payload) + len(delimiter)
    assert parser.bytes_scanned <= (len(delimiter) + 1) * total


@pytest.mark.parametrize("delimiter", [b"\n", b"\r\n", b"END"])
def test_one_long_line_in_small_random_chunks_is_scanned_in_linear_time(delimiter: bytes) -> None:
    """A 200 000-byte line (whose bytes include the delimiter's first bytes, so that partial
    matches keep occurring) fed in chunks of 1 to 3 bytes is scanned at most
    ``(len(delimiter) + 1)`` times per byte; a rescanning parser would scan about n²/6."""
    rng = random.Random(1234)
    unit = (b"abc" + delimiter[:-1]) if len(delimiter) > 1 else b"abc"
    payload = unit * (200_000 // len(unit))
    parser = LineParser(delimiter, max_length=len(payload))
    data = payload + delimiter
    position = 0
    while position < len(data):
        size = rng.randint(1, 3)
        parser.feed(data[position : position + size])
        position += size
    assert list(parser.frames()) == [payload]
    assert parser.bytes_scanned <= (len(delimiter) + 1) * len(data)


def test_many_short_lines_byte_by_byte_are_scanned_in_linear_time() -> None:
    """Many short lines fed one byte at a time also cost a constant number of scans per byte."""
    data = b"line\r\n" * 20_000
    parser = LineParser(b"\r\n")
    count = 0
    for index in range(len(data)):
        parser.feed(data[index : index + 1])
        count += len(list(parser.frames()))
    assert count == 20_000
    assert parser.bytes_scanned <= 3 * len(data)


def test_a_reader_one_line_behind_does_not_keep_the_lines_it_took() -> None:
    """A reader always one line behind (fed a line, it takes the one before), 10 000 times:
    the queue keeps the waiting line and a few taken ones, not every line ever fed.
    (White-box: the queue's list, ``_frames``, holds the lines taken and waiting.)"""
    parser = LineParser()
    parser.feed(b"0\n")
    for index in range(1, 10_001):
        parser.feed(b"%d\n" % index)
        assert parser.next_frame() == b"%d" % (index - 1)
        assert parser.buffered == len(b"%d\n" % index)
        assert len(parser._frames) <= 4
    assert list(parser.frames()) == [b"10000"]
