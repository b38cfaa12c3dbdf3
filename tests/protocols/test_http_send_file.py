"""Sending files from an HTTP handler (ResponseWriter.send_file and
write_file) on the memory driver, both ways: to a transport that sends file
regions itself (the memory transport, as a socket's with sendfile), and to
one that cannot (as a TLS layer's), where the server reads the file a piece
at a time, only as the client takes it.  The region is closed in every
path, and no descriptor leaks."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import read_replies, request
from weft.drivers import FileSlice
from weft.drivers.testing import MemoryConnection, connect
from weft.protocols.contract import file_writer_of
from weft.protocols.http import HTTPServerProtocol, HTTPUsageError, Request, ResponseWriter, ServerState
from weft.protocols.http._output import PIECE_SIZE

HIGH_WATER = 64 * 1024
CONTENT = bytes(range(256)) * 4096  # 1 MiB


class PlainTransport:
    """A memory transport without ``write_file``, as a TLS layer's or a plain
    asyncio transport: everything else is the memory transport's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "write_file":
            raise AttributeError(name)
        return getattr(self._inner, name)


class OverPlainTransport:
    """Gives ``protocol`` a :class:`PlainTransport` instead of the memory transport."""

    def __init__(self, protocol: HTTPServerProtocol) -> None:
        self.protocol = protocol

    def connection_made(self, transport: Any) -> None:
        self.protocol.connection_made(PlainTransport(transport))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.protocol, name)


Handler = Callable[[Request, ResponseWriter], object]

PATHS = ["sendfile", "fallback"]


def serve(handler: Handler, path: str, *, peer_reads: bool = True) -> MemoryConnection:
    """The server on the memory driver, through ``path``: "sendfile" (the
    transport takes regions) or "fallback" (it does not)."""
    server = HTTPServerProtocol(handler)
    conn = connect(server if path == "sendfile" else OverPlainTransport(server), peer_reads=peer_reads)
    assert (file_writer_of(server._transport) is None) == (path == "fallback")
    return conn


def state(conn: MemoryConnection) -> ServerState:
    return conn.protocol.state  # type: ignore[no-any-return]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "content.bin"
    path.write_bytes(CONTENT)
    return path


class FileHandler:
    """Answers each request with ``data_file`` via send_file, keeping the regions it made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.regions: list[FileSlice] = []
        self.responses: list[ResponseWriter] = []

    def __call__(self, request: Request, response: ResponseWriter) -> None:
        region = FileSlice.open(self.path)
        self.regions.append(region)
        self.responses.append(response)
        response.send_file(200, {"content-type": "application/octet-stream"}, region)


@pytest.mark.parametrize("path", PATHS)
def test_send_file_sends_the_file_with_its_length(data_file: Path, path: str) -> None:
    """The client gets the file whole, with Content-Length; the region is closed after."""
    handler = FileHandler(data_file)
    conn = serve(handler, path)
    conn.deliver(request("GET", "/file"))
    (reply,) = read_replies(conn.written)
    assert reply.headers["content-length"] == str(len(CONTENT))
    assert reply.body == CONTENT
    assert handler.regions[0].closed
    assert state(conn) is ServerState.IDLE


def test_a_transport_that_sends_files_gets_the_region_itself(data_file: Path) -> None:
    """With write_file the server reads nothing of the file: the region goes to
    the transport (which counts it in its buffer) untouched."""
    handler = FileHandler(data_file)
    conn = serve(handler, "sendfile", peer_reads=False)
    conn.deliver(request("GET", "/"))
    region = handler.regions[0]
    assert region.offset == 0
    assert conn.transport.get_write_buffer_size() > len(CONTENT)
    assert not region.closed
    conn.read()
    assert region.closed
    assert read_replies(conn.written)[0].body == CONTENT


def test_without_write_file_the_file_is_read_only_as_the_client_reads(data_file: Path) -> None:
    """The fallback reads a piece at a time while the transport takes more: at
    no point does the server hold more of the file than the high-water mark
    and one piece, however slowly the client reads."""
    handler = FileHandler(data_file)
    conn = serve(handler, "fallback", peer_reads=False)
    conn.deliver(request("GET", "/"))
    region = handler.regions[0]
    head_size = conn.transport.get_write_buffer_size() - region.offset
    assert 0 < head_size < 200
    received = bytearray()
    largest = 0
    while len(received) < head_size + len(CONTENT):
        taken_of_file = max(len(received) - head_size, 0)
        largest = max(largest, region.offset - taken_of_file)
        assert region.offset - taken_of_file <= HIGH_WATER + PIECE_SIZE
        received += conn.read(10_000)
    assert largest > HIGH_WATER  # the bound was reached, not avoided
    assert read_replies(bytes(received))[0].body == CONTENT
    assert region.closed


@pytest.mark.parametrize("path", PATHS)
def test_a_region_goes_out_in_order_with_the_bytes_around_it(data_file: Path, path: str) -> None:
    """write, write_file, write, end without a length: chunked, in order."""
    regions: list[FileSlice] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        region = FileSlice.open(data_file, offset=1000, count=50_000)
        regions.append(region)
        response.start(200)
        response.write(b"<before>")
        response.write_file(region)
        response.write(b"<after>")
        response.end(b"<end>")

    conn = serve(handler, path)
    conn.deliver(request("GET", "/") + request("GET", "/again"))
    replies = read_replies(conn.written)
    expected = b"<before>" + CONTENT[1000:51_000] + b"<after><end>"
    assert [reply.body for reply in replies] == [expected, expected]
    assert replies[0].headers["transfer-encoding"] == "chunked"
    assert all(region.closed for region in regions)


@pytest.mark.parametrize("path", PATHS)
def test_a_head_response_closes_the_region_and_sends_no_body(data_file: Path, path: str) -> None:
    """HEAD: the file's Content-Length, no body, the region closed at once."""
    handler = FileHandler(data_file)
    conn = serve(handler, path)
    conn.deliver(request("HEAD", "/") + request("GET", "/"))
    replies = read_replies(conn.written, methods=["HEAD", "GET"])
    assert [(reply.headers["content-length"], len(reply.body)) for reply in replies] == [
        (str(len(CONTENT)), 0),
        (str(len(CONTENT)), len(CONTENT)),
    ]
    assert handler.regions[0].closed


@pytest.mark.parametrize("path", PATHS)
def test_a_region_given_to_an_abandoned_response_is_closed(data_file: Path, path: str) -> None:
    """The connection is gone before the handler answers: send_file and write_file close the region."""
    responses: list[ResponseWriter] = []
    conn = serve(lambda request, response: responses.append(response), path)
    conn.deliver(request("GET", "/"))
    conn.reset()
    first, second = FileSlice.open(data_file), FileSlice.open(data_file)
    responses[0].send_file(200, {}, first)
    assert responses[0].write_file(second) is False
    assert first.closed
    assert second.closed


@pytest.mark.parametrize("path", PATHS)
def test_a_region_in_flight_is_closed_when_the_connection_ends(data_file: Path, path: str) -> None:
    """A client that leaves mid-file: the region still being sent is closed."""
    handler = FileHandler(data_file)
    conn = serve(handler, path, peer_reads=False)
    conn.deliver(request("GET", "/"))
    conn.read(100_000)
    assert not handler.regions[0].closed
    conn.reset()
    assert handler.regions[0].closed


def test_usage_errors_close_the_region(data_file: Path) -> None:
    """write_file before start(), and a region past the declared length, raise
    HTTPUsageError; the region is closed either way (the second also aborts)."""
    raised: list[type[Exception]] = []
    regions = [FileSlice.open(data_file), FileSlice.open(data_file)]

    def handler(request: Request, response: ResponseWriter) -> None:
        try:
            response.write_file(regions[0])
        except HTTPUsageError as exc:
            raised.append(type(exc))
        response.start(200, {"content-length": "10"})
        try:
            response.write_file(regions[1])
        except HTTPUsageError as exc:
            raised.append(type(exc))

    conn = serve(handler, "sendfile")
    conn.deliver(request("GET", "/"))
    assert raised == [HTTPUsageError, HTTPUsageError]
    assert all(region.closed for region in regions)
    assert conn.closed


def test_a_file_cut_short_while_read_aborts_the_connection(
    data_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fallback: the file is truncated while being sent; the response cannot be
    completed, so the connection is aborted (logged), never sent short."""
    handler = FileHandler(data_file)
    conn = serve(handler, "fallback", peer_reads=False)
    conn.deliver(request("GET", "/"))
    os.truncate(data_file, 200_000)
    with caplog.at_level(logging.ERROR, logger="weft.protocols.http"):
        for _ in range(100):
            conn.read()
            if conn.closed:
                break
    assert conn.closed
    assert "ended" in caplog.text
    assert handler.regions[0].closed


def test_on_writable_waits_for_the_region_in_the_fallback(data_file: Path) -> None:
    """After write_file the response is not writable until the region is out;
    on_writable then calls back, and the handler can finish."""
    calls: list[bool] = []

    def handler(request: Request, response: ResponseWriter) -> None:
        response.start(200, {"content-length": str(len(CONTENT) + 3)})
        calls.append(response.write_file(FileSlice.open(data_file)))

        def finish() -> None:
            calls.append(response.writable)
            response.end(b"end")

        response.on_writable(finish)

    conn = serve(handler, "fallback", peer_reads=False)
    conn.deliver(request("GET", "/"))
    assert calls == [False]
    while not calls[1:]:
        conn.read(50_000)
    assert calls == [False, True]
    conn.read()
    assert read_replies(conn.written)[0].body == CONTENT + b"end"


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fails the test if it leaves a descriptor open (regions are closed explicitly,
    not by their finaliser: garbage collection runs only after counting)."""
    before = open_descriptors()
    yield
    assert open_descriptors() == before
    gc.collect()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.usefixtures("no_leaks")
def test_no_descriptor_leaks_whatever_the_ending(data_file: Path) -> None:
    """Complete, HEAD, reset mid-file, aborted by a usage error: on both paths,
    every descriptor opened is closed by the time the exchange is over."""
    for path in PATHS:
        handler = FileHandler(data_file)
        conn = serve(handler, path)
        conn.deliver(request("GET", "/") + request("HEAD", "/") + request("GET", "/"))
        slow = serve(FileHandler(data_file), path, peer_reads=False)
        slow.deliver(request("GET", "/"))
        slow.read(70_000)
        slow.reset()

        def misuse(request: Request, response: ResponseWriter) -> None:
            response.start(200, {"content-length": "1"})
            response.write_file(FileSlice.open(data_file))

        broken = serve(misuse, path)
        broken.deliver(request("GET", "/"))  # the handler's HTTPUsageError is logged; the connection aborted
        assert broken.closed
        assert len(handler.regions) == 3
