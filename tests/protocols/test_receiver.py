"""Tests for the frame-receiving protocol base classes, driven through the memory driver."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weft.drivers.testing import MemoryConnection, chunkings, connect
from weft.protocols.errors import (
    FrameTooLongError,
    LineTooLongError,
    MalformedFrameError,
    ProtocolError,
    UnencodableFrameError,
)
from weft.protocols.framing import (
    PREFIX_SIZES,
    FrameReceiver,
    LengthPrefixedProtocol,
    LineParser,
    LineProtocol,
    NetstringProtocol,
    encode_length_prefixed,
    encode_netstring,
)


class Scripted(LineProtocol):
    """Records what it receives and obeys a few commands sent as lines.

    ``QUIT`` closes the transport, ``pause`` pauses reading, ``raw`` switches
    to raw mode.  In raw mode a ``|`` ends the raw data: what follows it goes
    back to line mode through ``set_line_mode``.
    """

    def __init__(self, *, delimiter: bytes = b"\n", max_line_length: int = 1000) -> None:
        self.delimiter = delimiter
        self.max_line_length = max_line_length
        super().__init__()
        self.lines: list[bytes] = []
        self.raw: list[bytes] = []
        self.errors: list[ProtocolError] = []
        self.lost: list[BaseException | None] = []

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"QUIT":
            self.transport.close()
        elif line == b"pause":
            self.pause_reading()
        elif line == b"raw":
            self.set_raw_mode()

    def raw_data_received(self, data: bytes) -> None:
        used, bar, rest = data.partition(b"|")
        if used:
            self.raw.append(used)
        if bar:
            self.set_line_mode(rest)

    def frame_error(self, exc: ProtocolError) -> None:
        self.errors.append(exc)
        super().frame_error(exc)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


class KeepOpen(Scripted):
    """Like :class:`Scripted`, but a framing error does not close the connection."""

    def frame_error(self, exc: ProtocolError) -> None:
        self.errors.append(exc)


def scripted(max_line_length: int = 1000) -> tuple[Scripted, MemoryConnection]:
    """A connected :class:`Scripted` with the given ``max_line_length``."""
    protocol = Scripted(max_line_length=max_line_length)
    return protocol, connect(protocol)


# --------------------------------------------------------------- line mode


def test_lines_are_delivered_in_order() -> None:
    """Lines come out in order, without delimiter, whether whole in one chunk or split over several."""
    protocol, conn = scripted()
    conn.deliver(b"one\ntwo\nth")
    assert protocol.lines == [b"one", b"two"]
    conn.deliver(b"ree")
    assert protocol.lines == [b"one", b"two"]
    conn.deliver(b"\n\nfour\n")
    assert protocol.lines == [b"one", b"two", b"three", b"", b"four"]
    assert not conn.closed


def test_custom_delimiter_straddling_deliveries() -> None:
    """The class's delimiter is used, and found even when split between two deliveries."""
    protocol = Scripted(delimiter=b"\r\n")
    conn = connect(protocol)
    conn.deliver(b"a\nb\r")
    conn.deliver(b"\nc\r\n")
    assert protocol.lines == [b"a\nb", b"c"]


def test_nothing_is_delivered_before_connection_made() -> None:
    """Data handed to a protocol that has no connection yet is ignored."""
    protocol = Scripted()
    protocol.data_received(b"early\n")
    conn = connect(protocol)
    conn.deliver(b"late\n")
    assert protocol.lines == [b"late"]


def test_send_line_writes_the_line_and_delimiter() -> None:
    """``send_line`` writes the line followed by the protocol's delimiter."""
    protocol, conn = scripted()
    protocol.send_line(b"hello")
    protocol.send_line(b"")
    assert conn.take_written() == b"hello\n\n"
    crlf = Scripted(delimiter=b"\r\n")
    crlf_conn = connect(crlf)
    crlf.send_line(b"a\nb")
    assert crlf_conn.written == b"a\nb\r\n"


def test_send_line_refuses_a_line_holding_the_delimiter() -> None:
    """``send_line`` of a line holding the delimiter raises UnencodableFrameError and writes nothing."""
    protocol, conn = scripted()
    with pytest.raises(UnencodableFrameError):
        protocol.send_line(b"two\nlines")
    assert conn.written == b""
    assert not conn.closed


def test_send_line_round_trips_to_a_peer_protocol() -> None:
    """What ``send_line`` writes, delivered to another protocol, gives back the same lines."""
    sender, sender_conn = scripted()
    for line in [b"alpha", b"", b"beta gamma"]:
        sender.send_line(line)
    receiver, receiver_conn = scripted()
    for byte in sender_conn.take_written():
        receiver_conn.deliver(bytes([byte]))
    assert receiver.lines == [b"alpha", b"", b"beta gamma"]


# ----------------------------------------------------------------- pausing


def test_pause_in_a_handler_holds_lines_already_buffered() -> None:
    """``pause_reading()`` from a line handler stops delivery even of lines in the same chunk;
    ``resume_reading()`` delivers the held lines in order, then later data."""
    protocol, conn = scripted()
    conn.deliver(b"a\npause\nb\nc\n")
    assert protocol.lines == [b"a", b"pause"]
    assert protocol.paused
    assert not conn.transport.is_reading()
    conn.deliver(b"d\n")  # held by the paused transport
    assert protocol.lines == [b"a", b"pause"]
    protocol.resume_reading()
    assert not protocol.paused
    assert protocol.lines == [b"a", b"pause", b"b", b"c"]
    conn.clock.advance(0)  # the transport hands over what it held
    assert protocol.lines == [b"a", b"pause", b"b", b"c", b"d"]


def test_pause_from_outside_holds_new_data_until_resume() -> None:
    """A protocol paused from outside its handlers receives nothing until resumed; nothing is lost."""
    protocol, conn = scripted()
    protocol.pause_reading()
    conn.deliver(b"x\ny")
    conn.deliver(b"\n")
    assert protocol.lines == []
    protocol.resume_reading()
    conn.clock.advance(0)
    assert protocol.lines == [b"x", b"y"]


def test_pause_again_while_delivering_held_lines() -> None:
    """A second ``pause`` among the held lines stops delivery again at that line."""
    protocol, conn = scripted()
    conn.deliver(b"pause\none\npause\ntwo\n")
    assert protocol.lines == [b"pause"]
    protocol.resume_reading()
    assert protocol.lines == [b"pause", b"one", b"pause"]
    protocol.resume_reading()
    assert protocol.lines == [b"pause", b"one", b"pause", b"two"]


def test_resume_when_not_paused_is_harmless() -> None:
    """``resume_reading()`` on a protocol that is not paused changes nothing."""
    protocol, conn = scripted()
    protocol.resume_reading()
    conn.deliver(b"a\n")
    assert protocol.lines == [b"a"]
    assert conn.transport.is_reading()


# ------------------------------------------------------- closing and errors


def test_no_line_is_delivered_after_the_protocol_closes() -> None:
    """Once a handler closes the transport, the lines after it in the same chunk are not delivered."""
    protocol, conn = scripted()
    conn.deliver(b"a\nQUIT\nb\nc\n")
    assert protocol.lines == [b"a", b"QUIT"]
    assert conn.closed
    assert protocol.lost == [None]
    conn.deliver(b"d\n")
    assert protocol.lines == [b"a", b"QUIT"]


def test_line_over_the_limit_calls_frame_error_and_closes() -> None:
    """A line over ``max_line_length`` goes to ``frame_error`` (after the good lines before it),
    and the default ``frame_error`` closes the connection cleanly."""
    protocol, conn = scripted(max_line_length=5)
    conn.deliver(b"ok\n12345\n123456\nnext\n")
    assert protocol.lines == [b"ok", b"12345"]
    assert len(protocol.errors) == 1
    assert isinstance(protocol.errors[0], LineTooLongError)
    assert protocol.errors[0].limit == 5
    assert conn.closed
    assert protocol.lost == [None]


def test_unterminated_line_over_the_limit_closes() -> None:
    """A line that never ends, past the limit, is an error too: the connection does not wait for it."""
    protocol, conn = scripted(max_line_length=5)
    conn.deliver(b"abc")
    assert not conn.closed
    conn.deliver(b"defghij")
    assert [type(e) for e in protocol.errors] == [LineTooLongError]
    assert conn.closed


def test_data_after_a_framing_error_is_ignored() -> None:
    """After a framing error nothing more is delivered, even if ``frame_error`` keeps the connection open."""
    protocol = KeepOpen(max_line_length=3)
    conn = connect(protocol)
    conn.deliver(b"ok\ntoo long\nlater\n")
    conn.deliver(b"more\n")
    assert protocol.lines == [b"ok"]
    assert len(protocol.errors) == 1
    assert not conn.closed
    assert conn.transport.is_reading()


# ---------------------------------------------------------------- raw mode


def test_raw_mode_gets_the_rest_of_the_chunk_and_later_data() -> None:
    """``set_raw_mode()`` in a line handler sends the rest of the buffer, then later data, to
    ``raw_data_received``, unparsed and in order."""
    protocol, conn = scripted()
    conn.deliver(b"x\nraw\nrest1\nrest")
    assert protocol.lines == [b"x", b"raw"]
    assert b"".join(protocol.raw) == b"rest1\nrest"
    conn.deliver(b"more\n")
    assert protocol.lines == [b"x", b"raw"]
    assert b"".join(protocol.raw) == b"rest1\nrestmore\n"


def test_raw_mode_with_nothing_left_in_the_chunk() -> None:
    """Switching to raw at the end of a chunk delivers no empty raw data; the next chunk is raw."""
    protocol, conn = scripted()
    conn.deliver(b"raw\n")
    assert protocol.raw == []
    conn.deliver(b"abc\n")
    assert protocol.raw == [b"abc\n"]
    assert protocol.lines == [b"raw"]


def test_set_raw_mode_outside_a_handler_hands_over_held_bytes_at_once() -> None:
    """``set_raw_mode()`` called from outside a handler delivers the partial line the parser
    holds to ``raw_data_received`` at once, before any later data."""
    protocol, conn = scripted()
    conn.deliver(b"line\npartial")
    assert protocol.lines == [b"line"]
    protocol.set_raw_mode()
    assert protocol.raw == [b"partial"]
    conn.deliver(b"-more")
    assert protocol.raw == [b"partial", b"-more"]


def test_set_line_mode_parses_extra_first() -> None:
    """``set_line_mode(extra)`` from the raw handler returns to lines, parsing ``extra`` first."""
    protocol, conn = scripted()
    conn.deliver(b"raw\nabc")
    conn.deliver(b"def|l1\nl2\npar")
    assert b"".join(protocol.raw) == b"abcdef"
    assert protocol.lines == [b"raw", b"l1", b"l2"]
    conn.deliver(b"tial\n")
    assert protocol.lines == [b"raw", b"l1", b"l2", b"partial"]
    assert b"".join(protocol.raw) == b"abcdef"


def test_several_switches_in_one_chunk() -> None:
    """Switching to raw and back several times within one chunk loses and reorders nothing."""
    protocol, conn = scripted()
    conn.deliver(b"a\nraw\nAB|b\nraw\n|c\nraw\nCD\nE|d\n")
    assert protocol.lines == [b"a", b"raw", b"b", b"raw", b"c", b"raw", b"d"]
    assert protocol.raw == [b"AB", b"CD\nE"]


def test_set_line_mode_extra_goes_before_lines_held_while_paused() -> None:
    """``set_line_mode(extra)`` parses ``extra`` before the bytes the parser still holds."""
    protocol, conn = scripted()
    conn.deliver(b"pause\nq1\nq2\n")
    assert protocol.lines == [b"pause"]
    protocol.set_raw_mode()
    protocol.set_line_mode(b"first\n")
    assert protocol.lines == [b"pause"]
    protocol.resume_reading()
    assert protocol.lines == [b"pause", b"first", b"q1", b"q2"]
    assert protocol.raw == []


def test_raw_mode_while_paused_waits_for_resume() -> None:
    """Raw data that arrives while paused is delivered, in order, after ``resume_reading()``."""
    protocol, conn = scripted()
    conn.deliver(b"raw\n")
    protocol.pause_reading()
    conn.deliver(b"abc")
    conn.deliver(b"def")
    assert protocol.raw == []
    protocol.resume_reading()
    conn.clock.advance(0)
    assert b"".join(protocol.raw) == b"abcdef"


def test_raw_body_longer_than_a_line_in_the_same_chunk_as_its_header() -> None:
    """Raw bytes after the switching line are raw even when they would be too long as a line:
    they are not judged against ``max_line_length``, nor lost, whatever the chunking."""
    protocol, conn = scripted(max_line_length=8)
    body = b"b" * 50 + b"\n" + b"c" * 30
    conn.deliver(b"raw\n" + body)
    assert protocol.errors == []
    assert not conn.closed
    assert b"".join(protocol.raw) == body


# ------------------------------------------------- property: mode switching


class Blocks(LineProtocol):
    """A tiny protocol: a line ``RAW <n>`` is followed by exactly ``n`` raw bytes, then lines again."""

    max_line_length = 12

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, bytes]] = []
        self.remaining = 0
        self.block = bytearray()

    def line_received(self, line: bytes) -> None:
        if not line.startswith(b"RAW "):
            self.events.append(("line", line))
            return
        size = int(line[4:])
        if size == 0:
            self.events.append(("raw", b""))
            return
        self.remaining = size
        self.set_raw_mode()

    def raw_data_received(self, data: bytes) -> None:
        if self.remaining <= 0:
            raise AssertionError(f"raw data {data!r} outside a block")
        used = data[: self.remaining]
        self.block += used
        self.remaining -= len(used)
        if self.remaining == 0:
            self.events.append(("raw", bytes(self.block)))
            self.block.clear()
            self.set_line_mode(data[len(used) :])

    def frame_error(self, exc: ProtocolError) -> None:
        self.events.append(("error", type(exc).__name__.encode()))
        super().frame_error(exc)


plain_lines = (
    st.binary(max_size=16)
    .map(lambda b: b.replace(b"\n", b""))
    .map(lambda b: b"_" + b if b.startswith(b"RAW ") else b)
)
items = st.lists(
    st.one_of(
        st.tuples(st.just("line"), plain_lines),
        st.tuples(st.just("raw"), st.binary(max_size=40)),
    ),
    max_size=8,
)


def encode_items(stream_items: list[tuple[str, bytes]]) -> tuple[bytes, list[tuple[str, bytes]], bool]:
    """The bytes of ``stream_items``, the events a correct :class:`Blocks` sees, and whether it errs."""
    data = b""
    expected: list[tuple[str, bytes]] = []
    erred = False
    for kind, payload in stream_items:
        if kind == "line":
            data += payload + b"\n"
            if not erred:
                if len(payload) > Blocks.max_line_length:
                    expected.append(("error", b"LineTooLongError"))
                    erred = True
                else:
                    expected.append(("line", payload))
        else:
            data += b"RAW %d\n" % len(payload) + payload
            if not erred:
                expected.append(("raw", payload))
    return data, expected, erred


@given(stream_items=items, rnd=st.data())
def test_mode_switching_protocol_sees_the_same_events_for_any_chunking(
    stream_items: list[tuple[str, bytes]], rnd: st.DataObject
) -> None:
    """A protocol that alternates line and raw mode sees exactly the events its input holds
    (lines, raw blocks, then the error if a line is too long) for any chunking: no byte is lost,
    reordered, or judged in the wrong mode."""
    data, expected, erred = encode_items(stream_items)
    chunks = rnd.draw(chunkings(data))
    protocol = Blocks()
    conn = connect(protocol)
    for chunk in chunks:
        conn.deliver(chunk)
    assert protocol.events == expected
    assert conn.closed == erred
    if not erred:
        assert protocol.remaining == 0
        assert protocol.parser.take_buffer() == b""


# ----------------------------------------------- length-prefixed, netstring


class Frames(LengthPrefixedProtocol):
    """Records frames and framing errors."""

    def __init__(self, *, prefix_size: int = 4, max_length: int = 1000) -> None:
        self.prefix_size = prefix_size
        self.max_length = max_length
        super().__init__()
        self.frames: list[bytes] = []
        self.errors: list[ProtocolError] = []

    def frame_received(self, frame: bytes) -> None:
        self.frames.append(frame)

    def frame_error(self, exc: ProtocolError) -> None:
        self.errors.append(exc)
        super().frame_error(exc)


class Netstrings(NetstringProtocol):
    """Records payloads and framing errors."""

    def __init__(self, *, max_length: int = 1000) -> None:
        self.max_length = max_length
        super().__init__()
        self.frames: list[bytes] = []
        self.errors: list[ProtocolError] = []

    def frame_received(self, frame: bytes) -> None:
        self.frames.append(frame)

    def frame_error(self, exc: ProtocolError) -> None:
        self.errors.append(exc)
        super().frame_error(exc)


PAYLOADS = [b"", b"a", b"hello, world", b"\x00\xff" * 50, b"3:abc,"]


@pytest.mark.parametrize("size", PREFIX_SIZES)
def test_length_prefixed_round_trip(size: int) -> None:
    """Frames sent with ``send_frame`` and delivered byte by byte to another instance come out the same."""
    sender = Frames(prefix_size=size)
    sender_conn = connect(sender)
    for payload in PAYLOADS:
        sender.send_frame(payload)
    wire = sender_conn.take_written()
    assert wire[:size] == bytes(size)  # the first frame is empty: a zero prefix
    receiver = Frames(prefix_size=size)
    receiver_conn = connect(receiver)
    for byte in wire:
        receiver_conn.deliver(bytes([byte]))
    assert receiver.frames == PAYLOADS
    assert receiver.errors == []
    assert not receiver_conn.closed


def test_length_prefixed_send_frame_too_long_for_the_prefix() -> None:
    """``send_frame`` of a payload a 1-byte prefix cannot describe raises and writes nothing."""
    sender = Frames(prefix_size=1)
    conn = connect(sender)
    with pytest.raises(UnencodableFrameError):
        sender.send_frame(b"x" * 256)
    assert conn.written == b""


def test_length_prefixed_frame_over_the_limit_closes() -> None:
    """A prefix announcing more than ``max_length`` calls ``frame_error`` at once (no payload sent yet)
    after the good frames before it, and the connection closes; later data is ignored."""
    receiver = Frames(prefix_size=2, max_length=3)
    conn = connect(receiver)
    conn.deliver(encode_length_prefixed(b"ok", 2) + b"\x00\x04")
    assert receiver.frames == [b"ok"]
    assert [type(e) for e in receiver.errors] == [FrameTooLongError]
    assert conn.closed
    conn.deliver(encode_length_prefixed(b"no", 2))
    assert receiver.frames == [b"ok"]


@given(payloads=st.lists(st.binary(max_size=30), max_size=6), rnd=st.data())
def test_length_prefixed_any_chunking(payloads: list[bytes], rnd: st.DataObject) -> None:
    """Whatever the chunking of the wire, the receiver gets the frames sent, in order."""
    sender = Frames(prefix_size=1)
    sender_conn = connect(sender)
    for payload in payloads:
        sender.send_frame(payload)
    receiver = Frames(prefix_size=1)
    receiver_conn = connect(receiver)
    for chunk in rnd.draw(chunkings(sender_conn.take_written())):
        receiver_conn.deliver(chunk)
    assert receiver.frames == payloads


def test_netstring_round_trip() -> None:
    """Netstrings sent with ``send_frame`` and delivered byte by byte come out the same."""
    sender = Netstrings()
    sender_conn = connect(sender)
    for payload in PAYLOADS:
        sender.send_frame(payload)
    wire = sender_conn.take_written()
    assert wire.startswith(b"0:,1:a,")
    receiver = Netstrings()
    receiver_conn = connect(receiver)
    for byte in wire:
        receiver_conn.deliver(bytes([byte]))
    assert receiver.frames == PAYLOADS
    assert receiver.errors == []
    assert not receiver_conn.closed


@pytest.mark.parametrize(
    ("bad", "error"),
    [(b"x:", MalformedFrameError), (b"3:abcd", MalformedFrameError), (b"01:", MalformedFrameError)],
)
def test_netstring_malformed_input_closes(bad: bytes, error: type[ProtocolError]) -> None:
    """Malformed netstring input calls ``frame_error`` after the good payloads and closes the
    connection; data after it is ignored."""
    receiver = Netstrings()
    conn = connect(receiver)
    conn.deliver(b"2:ok," + bad)
    assert receiver.frames == [b"ok"]
    assert [type(e) for e in receiver.errors] == [error]
    assert conn.closed
    conn.deliver(b"1:z,")
    assert receiver.frames == [b"ok"]


def test_netstring_over_the_limit_closes_before_the_payload() -> None:
    """A netstring header over ``max_length`` is refused as soon as it is read."""
    receiver = Netstrings(max_length=10)
    conn = connect(receiver)
    conn.deliver(b"11:")
    assert [type(e) for e in receiver.errors] == [FrameTooLongError]
    assert conn.closed


def test_netstring_error_with_frame_error_kept_open_ignores_later_data() -> None:
    """With a ``frame_error`` that does not close, data after the error is still never delivered."""

    class Lenient(Netstrings):
        def frame_error(self, exc: ProtocolError) -> None:
            self.errors.append(exc)

    receiver = Lenient()
    conn = connect(receiver)
    conn.deliver(b"1:a,:")
    conn.deliver(b"1:b,")
    assert receiver.frames == [b"a"]
    assert len(receiver.errors) == 1
    assert not conn.closed


# ------------------------------------------- the one-loop delivery path
#
# weft's own parsers hand their frames to FrameReceiver through one shared
# iterator (``_deliver_ready``); these prove that path keeps the rules of the
# general one: pause, closing, a switch of mode in a handler, and handlers
# that are not the default ones.


class Commanded(LengthPrefixedProtocol):
    """Records frames; ``pause``, ``close`` and ``again:<bytes>`` are commands.

    ``again:`` re-parses what follows it through ``set_frame_mode``, from a
    handler, in frame mode: the parser's frames are replaced under the loop.
    """

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[bytes] = []

    def frame_received(self, frame: bytes) -> None:
        self.frames.append(frame)
        if frame == b"pause":
            self.pause_reading()
        elif frame == b"close":
            self.transport.close()
        elif frame.startswith(b"again:"):
            self.set_frame_mode(frame.removeprefix(b"again:"))


def wire(*payloads: bytes) -> bytes:
    return b"".join(encode_length_prefixed(payload) for payload in payloads)


def test_length_prefixed_pause_in_a_handler_holds_the_rest_of_the_chunk() -> None:
    """Frames after a pause in the same chunk wait for resume, then come in order."""
    protocol = Commanded()
    connect(protocol).deliver(wire(b"a", b"pause", b"b", b"c"))
    assert protocol.frames == [b"a", b"pause"]
    protocol.resume_reading()
    assert protocol.frames == [b"a", b"pause", b"b", b"c"]


def test_length_prefixed_close_in_a_handler_stops_delivery() -> None:
    """Nothing after the frame whose handler closed the transport is delivered."""
    protocol = Commanded()
    conn = connect(protocol)
    conn.deliver(wire(b"a", b"close", b"b"))
    assert protocol.frames == [b"a", b"close"]
    assert conn.closed


def test_length_prefixed_set_frame_mode_in_a_handler_parses_its_extra_first() -> None:
    """Bytes handed back from a handler are parsed before the frames still held."""
    protocol = Commanded()
    connect(protocol).deliver(wire(b"again:" + wire(b"x", b"y"), b"z"))
    assert protocol.frames == [b"again:" + wire(b"x", b"y"), b"x", b"y", b"z"]


def test_a_line_protocol_that_handles_frames_itself_gets_every_line() -> None:
    """A subclass overriding ``frame_received`` (not ``line_received``) is still called."""

    class FrameHandler(LineProtocol):
        def __init__(self) -> None:
            super().__init__()
            self.got: list[bytes] = []

        def frame_received(self, frame: bytes) -> None:
            self.got.append(frame)

    protocol = FrameHandler()
    connect(protocol).deliver(b"one\ntwo\nthr")
    assert protocol.got == [b"one", b"two"]


def test_a_protocol_with_a_parser_of_its_own_is_served_through_next_frame() -> None:
    """``make_parser`` may return any FrameParser: frames still come out, and errors too."""

    class Upper(LineParser):
        """A parser of one's own (a subclass, so not weft's own type)."""

        def next_frame(self) -> bytes | None:
            frame = super().next_frame()
            return None if frame is None else frame.upper()

    class Shouting(Scripted):
        def make_parser(self) -> LineParser:
            return Upper(max_length=5)

    protocol = Shouting()
    conn = connect(protocol)
    conn.deliver(b"abc\ndef\ntoolong\n")
    assert protocol.lines == [b"ABC", b"DEF"]
    assert [type(e) for e in protocol.errors] == [LineTooLongError]
    assert conn.closed


def test_a_line_over_the_limit_after_good_ones_in_one_chunk() -> None:
    """The good lines before an over-long one are delivered, then frame_error, then nothing."""
    protocol, conn = scripted(max_line_length=3)
    conn.deliver(b"ab\ncd\ntoo long\nef\n")
    assert protocol.lines == [b"ab", b"cd"]
    assert [type(e) for e in protocol.errors] == [LineTooLongError]
    assert conn.closed


# --------------------------------- what can happen inside the one loop's batch
#
# The loop tests nothing per frame but the transport closing: a pause or a
# switch to raw mode ends the parser's iterator under it.  These prove each
# way a handler can change things in the middle of a chunk's frames.


class Reentrant(Scripted):
    """Like :class:`Scripted`; a line ``feed:<bytes>`` hands ``<bytes>`` to its own
    ``data_received`` from inside the handler, as a transport that delivers
    synchronously (a loopback peer answering a write) would; ``pause+resume``
    pauses and resumes in the same handler."""

    def line_received(self, line: bytes) -> None:
        super().line_received(line)
        if line.startswith(b"feed:"):
            self.data_received(line.removeprefix(b"feed:").replace(b"|", b"\n"))
        elif line == b"pause+resume":
            self.pause_reading()
            self.resume_reading()


def test_pause_and_resume_in_one_handler_goes_on_with_the_rest_in_order() -> None:
    """A handler that pauses and resumes at once: every line after it comes, once, in order."""
    protocol = Reentrant()
    connect(protocol).deliver(b"a\npause+resume\nb\nc\n")
    assert protocol.lines == [b"a", b"pause+resume", b"b", b"c"]


def test_data_arriving_inside_a_handler_comes_after_the_lines_before_it() -> None:
    """Bytes delivered from inside a handler are queued behind the lines already cut."""
    protocol = Reentrant()
    connect(protocol).deliver(b"a\nfeed:x|y|\nb\nc\n")
    assert protocol.lines == [b"a", b"feed:x|y|", b"b", b"c", b"x", b"y"]


def test_data_arriving_inside_a_handler_that_paused_waits_for_resume() -> None:
    """A handler pauses, then bytes arrive from inside it: none of their lines, nor the
    lines after the pausing one, is delivered until resume; then all come, in order."""

    class PauseThenFeed(Reentrant):
        def line_received(self, line: bytes) -> None:
            if line == b"hold":
                self.lines.append(line)
                self.pause_reading()
                self.data_received(b"x\ny\n")
                return
            super().line_received(line)

    protocol = PauseThenFeed()
    connect(protocol).deliver(b"a\nhold\nb\n")
    assert protocol.lines == [b"a", b"hold"]
    protocol.resume_reading()
    assert protocol.lines == [b"a", b"hold", b"b", b"x", b"y"]


def test_pausing_on_every_line_of_a_long_chunk_delivers_each_line_once_in_order() -> None:
    """2 000 lines in one chunk, the handler pausing on each and resumed each time: every
    line arrives once, in order (each pause sets aside the rest of the batch in O(1))."""
    protocol, conn = scripted()
    lines = [b"pause"] * 2000
    conn.deliver(b"".join(line + b"\n" for line in lines))
    resumes = 0
    while protocol.paused and resumes <= len(lines):
        protocol.resume_reading()
        resumes += 1
    assert protocol.lines == lines
    assert resumes == len(lines)


def test_empty_lines_in_one_chunk_are_each_delivered() -> None:
    """Delimiters back to back are empty lines, every one delivered, with the partial kept."""
    protocol, conn = scripted()
    conn.deliver(b"\n\n\na\n\nb")
    assert protocol.lines == [b"", b"", b"", b"a", b""]
    conn.deliver(b"\n")
    assert protocol.lines == [b"", b"", b"", b"a", b"", b"b"]


def test_a_close_before_an_over_long_line_in_the_same_chunk_reports_no_error() -> None:
    """A handler that closes ends delivery there: the over-long line after it in the same
    chunk is never reached, so ``frame_error`` is not called."""
    protocol, conn = scripted(max_line_length=4)
    conn.deliver(b"a\nQUIT\n" + b"x" * 40 + b"\nb\n")
    assert protocol.lines == [b"a", b"QUIT"]
    assert protocol.errors == []
    assert conn.closed


def test_a_line_over_the_limit_in_a_chunk_longer_than_the_limit_after_a_pause() -> None:
    """Lines, a pause, more lines, then an over-long line, in one chunk longer than the
    limit: delivery stops at the pause; on resume the lines come, then the error."""
    protocol, conn = scripted(max_line_length=8)
    conn.deliver(b"a\npause\nb\nc\n" + b"z" * 30 + b"\nnever\n")
    assert protocol.lines == [b"a", b"pause"]
    assert protocol.errors == []
    protocol.resume_reading()
    assert protocol.lines == [b"a", b"pause", b"b", b"c"]
    assert [type(e) for e in protocol.errors] == [LineTooLongError]
    conn.clock.advance(0)  # the close, asked while the transport was paused, completes
    assert conn.closed


class Switching(FrameReceiver):
    """Records frames; the frame ``raw`` switches to raw mode, whose bytes it records."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[bytes] = []
        self.raw: list[bytes] = []

    def frame_received(self, frame: bytes) -> None:
        self.frames.append(frame)
        if frame == b"raw":
            self.set_raw_mode()

    def raw_data_received(self, data: bytes) -> None:
        self.raw.append(data)


class SwitchingFrames(Switching, LengthPrefixedProtocol):
    """:class:`Switching` for length-prefixed frames."""


class SwitchingNetstrings(Switching, NetstringProtocol):
    """:class:`Switching` for netstrings."""


@pytest.mark.parametrize(
    ("make", "encode"),
    [(SwitchingFrames, encode_length_prefixed), (SwitchingNetstrings, encode_netstring)],
    ids=["length-prefixed", "netstrings"],
)
def test_raw_mode_in_the_middle_of_a_chunk_of_frames_gets_the_rest_as_sent(
    make: type[SwitchingFrames | SwitchingNetstrings], encode: Callable[[bytes], bytes]
) -> None:
    """A switch to raw mode from a frame handler in the middle of a chunk: the frames after
    it, whole or not, reach ``raw_data_received`` exactly as they were on the wire."""
    protocol = make()
    conn = connect(protocol)
    rest = encode(b"b") + encode(b"c") + encode(b"partial")[:-2]
    conn.deliver(encode(b"a") + encode(b"raw") + rest)
    conn.deliver(b"more")
    assert protocol.frames == [b"a", b"raw"]
    assert b"".join(protocol.raw) == rest + b"more"
