"""Fuzzing the framing parsers and their protocols with hostile bytes.

For lines (three delimiters), length prefixes (1, 2 and 4 bytes) and
netstrings, parser and protocol alike: arbitrary bytes, and valid streams
with bytes flipped, inserted or deleted, in arbitrary chunkings, raise
nothing but the parser's :class:`~weft.protocols.errors.ProtocolError`; the
parser holds no more than its limit allows once drained (one chunk more
before); a spent parser holds nothing and raises the same error again; a
protocol gets the frames the parser gives, then ``frame_error`` once, and
its connection closes; frames before the first changed byte of a mutated
stream come out intact.  ``HYPOTHESIS_PROFILE=long`` runs it longer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzzing import mutated, noise
from weft.drivers.testing import chunkings, connect
from weft.protocols.errors import ProtocolError
from weft.protocols.framing import (
    FrameParser,
    FrameReceiver,
    LengthPrefixedParser,
    LengthPrefixedProtocol,
    LineParser,
    LineProtocol,
    NetstringParser,
    NetstringProtocol,
    encode_length_prefixed,
    encode_line,
    encode_netstring,
)

Parser = LineParser | LengthPrefixedParser | NetstringParser


# ------------------------------------------------------- recording protocols


class Records(FrameReceiver):
    """Records frames and framing errors; pauses after every ``pause_every``-th frame."""

    pause_every = 0

    def record(self, frame: bytes) -> None:
        self.frames.append(frame)
        if self.pause_every and len(self.frames) % self.pause_every == 0:
            self.pause_reading()

    def frame_error(self, exc: ProtocolError) -> None:
        self.errors.append(exc)
        super().frame_error(exc)

    def start_recording(self, pause_every: int) -> None:
        self.frames: list[bytes] = []
        self.errors: list[ProtocolError] = []
        self.pause_every = pause_every


class Lines(Records, LineProtocol):
    """A recording :class:`LineProtocol`."""

    def __init__(self, delimiter: bytes, max_length: int, pause_every: int) -> None:
        self.delimiter = delimiter
        self.max_line_length = max_length
        super().__init__()
        self.start_recording(pause_every)

    def line_received(self, line: bytes) -> None:
        self.record(line)


class Prefixed(Records, LengthPrefixedProtocol):
    """A recording :class:`LengthPrefixedProtocol`."""

    def __init__(self, prefix_size: int, max_length: int, pause_every: int) -> None:
        self.prefix_size = prefix_size
        self.max_length = max_length
        super().__init__()
        self.start_recording(pause_every)

    def frame_received(self, frame: bytes) -> None:
        self.record(frame)


class Netstrings(Records, NetstringProtocol):
    """A recording :class:`NetstringProtocol`."""

    def __init__(self, max_length: int, pause_every: int) -> None:
        self.max_length = max_length
        super().__init__()
        self.start_recording(pause_every)

    def frame_received(self, frame: bytes) -> None:
        self.record(frame)


# ------------------------------------------------------------------ formats


@dataclass(frozen=True)
class Format:
    """One framing format, as the fuzzer needs it."""

    name: str
    #: A parser with the given limit.
    parser: Callable[[int], Parser]
    #: A recording protocol with the given limit, pausing after every n-th frame.
    protocol: Callable[[int, int], Records]
    #: A valid frame of the format for a payload (the payload may be adjusted).
    encode: Callable[[bytes], bytes]
    #: The most bytes a drained parser with the given limit may hold.
    bound: Callable[[int], int]
    #: Tokens that mean something to the parser.
    vocabulary: tuple[bytes, ...]

    def __repr__(self) -> str:
        return self.name


def lines(delimiter: bytes) -> Format:
    """Lines cut at ``delimiter``; a payload loses the delimiter's first byte to be encodable."""
    return Format(
        name=f"lines {delimiter!r}",
        parser=lambda limit: LineParser(delimiter, limit),
        protocol=lambda limit, pause_every: Lines(delimiter, limit, pause_every),
        encode=lambda payload: encode_line(payload.replace(delimiter[:1], b""), delimiter),
        # A partial line may hold the first bytes of a delimiter.
        bound=lambda limit: limit + len(delimiter) - 1,
        vocabulary=(delimiter, delimiter[:1], b"\r", b"\n", b"\r\n"),
    )


def length_prefixed(size: int) -> Format:
    """Frames behind a ``size``-byte length."""
    return Format(
        name=f"length-prefixed {size}",
        parser=lambda limit: LengthPrefixedParser(size, limit),
        protocol=lambda limit, pause_every: Prefixed(size, limit, pause_every),
        encode=lambda payload: encode_length_prefixed(payload, size),
        # A prefix and all of a payload but its last byte.
        bound=lambda limit: max(size + limit - 1, size - 1),
        vocabulary=(b"\x00" * size, b"\x00" * (size - 1) + b"\x03", b"\xff", b"\x00"),
    )


NETSTRINGS = Format(
    name="netstrings",
    parser=NetstringParser,
    protocol=lambda limit, pause_every: Netstrings(limit, pause_every),
    encode=encode_netstring,
    # An unfinished header, or a header and a payload without its comma
    # (the header is kept with its payload, as it was fed, until the frame
    # can be cut whole).
    bound=lambda limit: len(str(limit)) + 1 + limit,
    vocabulary=(b"0:,", b"3:", b":", b",", b"0", b"1", b"9", b"12"),
)

FORMATS = [lines(b"\n"), lines(b"\r\n"), lines(b"\r\n\r\n"), *map(length_prefixed, (1, 2, 4)), NETSTRINGS]

limits = st.integers(0, 24)


@st.composite
def hostile_streams(draw: st.DrawFn, fmt: Format, limit: int) -> tuple[bytes, list[bytes]]:
    """Noise, or a valid stream of frames within ``limit`` mutated; with the
    payloads of the valid frames that end before the first change (none for
    noise)."""
    if draw(st.booleans()):
        return draw(noise(fmt.vocabulary)), []
    payloads = draw(st.lists(st.binary(max_size=limit), max_size=6))
    encoded = [fmt.encode(payload) for payload in payloads]
    mutation = draw(mutated(b"".join(encoded), fmt.vocabulary))
    intact: list[bytes] = []
    end = 0
    for frame in encoded:
        end += len(frame)
        if end > mutation.first_change:
            break
        intact.append(_payload_of(fmt, limit, frame))
    return mutation.data, intact


def _payload_of(fmt: Format, limit: int, frame: bytes) -> bytes:
    """The one payload ``frame`` holds, by a fresh parser."""
    parser = fmt.parser(limit)
    parser.feed(frame)
    payload = parser.next_frame()
    if payload is None:
        raise AssertionError(f"{fmt}: a valid frame {frame!r} gave no payload")
    return payload


# ------------------------------------------------------------------ parsers


def buffered_in(parser: FrameParser) -> int:
    """How many bytes ``parser`` holds (every weft parser says)."""
    assert isinstance(parser, LineParser | LengthPrefixedParser | NetstringParser)
    return parser.buffered


def parse_checked(fmt: Format, limit: int, chunks: list[bytes]) -> list[bytes | type[ProtocolError]]:
    """Feed ``chunks`` one by one, draining after each; check the invariants
    on the way; return the frames, then the error's type if one was raised.

    Any exception other than a ProtocolError from ``next_frame`` propagates
    and fails the test.
    """
    parser = fmt.parser(limit)
    bound = fmt.bound(limit)
    events: list[bytes | type[ProtocolError]] = []
    error: ProtocolError | None = None
    for chunk in chunks:
        parser.feed(chunk)  # never raises, whatever the bytes
        if error is not None:
            assert parser.buffered == 0, "a spent parser keeps nothing"
            with pytest.raises(ProtocolError) as again:
                parser.next_frame()
            assert again.value is error, "a spent parser raises its error again"
            continue
        assert parser.buffered <= bound + len(chunk)
        try:
            for frame in parser.frames():
                assert len(frame) <= limit
                events.append(frame)
        except ProtocolError as exc:
            error = exc
            events.append(type(exc))
        if error is not None:
            assert parser.error is error
            assert parser.buffered == 0, "a parser drops what it holds when it fails"
        assert parser.buffered <= bound
    return events


@given(fmt=st.sampled_from(FORMATS), limit=limits, rnd=st.data())
def test_parsers_survive_hostile_streams_in_any_chunking(fmt: Format, limit: int, rnd: st.DataObject) -> None:
    """Noise and mutated valid streams, in any chunking: only ProtocolError,
    bounded buffering, the same events as one feed, and the frames before
    the first changed byte intact."""
    data, intact = rnd.draw(hostile_streams(fmt, limit))
    chunks = rnd.draw(chunkings(data))
    events = parse_checked(fmt, limit, chunks)
    assert events == parse_checked(fmt, limit, [data] if data else [])
    assert events[: len(intact)] == intact


@given(fmt=st.sampled_from(FORMATS), limit=limits, rnd=st.data())
def test_parsers_handed_everything_before_draining(fmt: Format, limit: int, rnd: st.DataObject) -> None:
    """Fed every chunk before a single drain, a parser still raises nothing
    but ProtocolError and gives the same events: what it buffers meanwhile
    is the caller's to bound (the protocols drain after every chunk)."""
    data, _ = rnd.draw(hostile_streams(fmt, limit))
    parser = fmt.parser(limit)
    for chunk in rnd.draw(chunkings(data)):
        parser.feed(chunk)
    events: list[bytes | type[ProtocolError]] = []
    try:
        events.extend(parser.frames())
    except ProtocolError as exc:
        events.append(type(exc))
    assert events == parse_checked(fmt, limit, [data] if data else [])


# ---------------------------------------------------------------- protocols


@given(fmt=st.sampled_from(FORMATS), limit=limits, pause_every=st.integers(0, 3), rnd=st.data())
def test_protocols_survive_hostile_streams_in_any_chunking(
    fmt: Format, limit: int, pause_every: int, rnd: st.DataObject
) -> None:
    """A frame protocol on the memory driver, pausing now and then inside its
    handler, fed hostile bytes in any chunking: nothing escapes, it gets
    exactly the parser's frames, a framing error reaches ``frame_error``
    once and closes the connection, and its parser stays within bounds."""
    data, _ = rnd.draw(hostile_streams(fmt, limit))
    chunks = rnd.draw(chunkings(data))
    protocol = fmt.protocol(limit, pause_every)
    conn = connect(protocol)
    bound = fmt.bound(limit)
    for chunk in chunks:
        conn.deliver(chunk)
        assert buffered_in(protocol.parser) <= bound + len(chunk)
        for _ in range(len(data) + 1):
            if not protocol.paused:
                break
            protocol.resume_reading()
            conn.clock.advance(0)
        assert not protocol.paused
        assert buffered_in(protocol.parser) <= bound
    expected = parse_checked(fmt, limit, [data] if data else [])
    assert protocol.frames == [event for event in expected if isinstance(event, bytes)]
    errors = [event for event in expected if not isinstance(event, bytes)]
    assert [type(exc) for exc in protocol.errors] == errors
    assert conn.closed == bool(errors)
