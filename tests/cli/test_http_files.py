"""The static file handler behind `weft serve http`, on the memory driver: real files, no sockets."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from email.utils import formatdate
from pathlib import Path

import pytest

from tests.support.http import Reply, read_replies
from weft._cli.file_server import FileServer
from weft.drivers._core.file_region import FileSlice
from weft.drivers.testing import MemoryConnection, connect
from weft.protocols.errors import ArgumentError
from weft.protocols.http import HTTPServerProtocol

KIB = 1024
MIB = 1024 * KIB


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "hello.txt").write_bytes(b"hello, files\n")
    (site / "page.html").write_bytes(b"<p>hi</p>\n")
    (site / "empty.bin").write_bytes(b"")
    (site / "docs" / "index.html").write_bytes(b"<h1>docs</h1>\n")
    (site / "plain").mkdir()
    (site / "plain" / '<b>&"odd name.txt').write_bytes(b"x")
    (site / "plain" / "sub").mkdir()
    (tmp_path / "secret.txt").write_bytes(b"outside the root\n")
    return site


def serve(root: Path, **options: object) -> MemoryConnection:
    return connect(HTTPServerProtocol(FileServer(root)), **options)  # type: ignore[arg-type]


def get(conn: MemoryConnection, target: str, *, method: str = "GET", headers: str = "") -> Reply:
    conn.deliver(f"{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode("latin-1"))
    replies = read_replies(conn.take_written(), methods=[method])
    assert len(replies) == 1, replies
    return replies[0]


def test_a_file_with_its_type_length_and_date(root: Path) -> None:
    """GET answers 200 with the bytes, a content type from the name, the
    length and Last-Modified in HTTP's date format."""
    reply = get(serve(root), "/hello.txt")
    assert reply.status == 200
    assert reply.body == b"hello, files\n"
    assert reply.headers["content-type"] == "text/plain"
    assert reply.headers["content-length"] == "13"
    mtime = int((root / "hello.txt").stat().st_mtime)
    assert reply.headers["last-modified"] == formatdate(mtime, usegmt=True)
    assert get(serve(root), "/page.html").headers["content-type"] == "text/html"
    assert get(serve(root), "/empty.bin").headers["content-type"] == "application/octet-stream"


def test_head_has_the_headers_and_no_body(root: Path) -> None:
    """HEAD gives GET's status and headers and sends no body."""
    conn = serve(root)
    reply = get(conn, "/hello.txt", method="HEAD")
    assert reply.status == 200
    assert reply.headers["content-length"] == "13"
    assert reply.body == b""


def test_requests_on_one_connection(root: Path) -> None:
    """Keep-alive: several files over one connection, each answered in order."""
    conn = serve(root)
    conn.deliver(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /page.html HTTP/1.1\r\nHost: t\r\n\r\n")
    replies = read_replies(conn.take_written(), methods=["GET", "GET"])
    assert [reply.body for reply in replies] == [b"hello, files\n", b"<p>hi</p>\n"]
    assert not conn.closed


@pytest.mark.parametrize(
    ("offset", "status"),
    [(0, 304), (3600, 304), (-3600, 200)],
)
def test_if_modified_since(root: Path, offset: int, status: int) -> None:
    """If-Modified-Since at or after the file's time gives 304 with no body;
    before it, the file."""
    mtime = int((root / "hello.txt").stat().st_mtime)
    since = formatdate(mtime + offset, usegmt=True)
    reply = get(serve(root), "/hello.txt", headers=f"If-Modified-Since: {since}\r\n")
    assert reply.status == status
    assert reply.body == (b"" if status == 304 else b"hello, files\n")


def test_a_malformed_if_modified_since_is_ignored(root: Path) -> None:
    """A date that does not parse is ignored (RFC 9110): the file is sent."""
    reply = get(serve(root), "/hello.txt", headers="If-Modified-Since: yesterday-ish\r\n")
    assert reply.status == 200


def test_a_directory_without_its_slash_is_redirected(root: Path) -> None:
    """/docs redirects to /docs/ (query kept), as http.server does."""
    reply = get(serve(root), "/docs?x=1")
    assert reply.status == 301
    assert reply.headers["location"] == "/docs/?x=1"


def test_a_directory_with_an_index_serves_it(root: Path) -> None:
    """/docs/ serves docs/index.html."""
    reply = get(serve(root), "/docs/")
    assert (reply.status, reply.body) == (200, b"<h1>docs</h1>\n")


def test_a_directory_listing_escapes_and_links_its_names(root: Path) -> None:
    """A directory without an index gets a plain HTML listing: names escaped,
    links percent-encoded, subdirectories with a slash, a link up."""
    reply = get(serve(root), "/plain/")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    page = reply.body.decode()
    assert '<a href="%3Cb%3E%26%22odd%20name.txt">&lt;b&gt;&amp;&quot;odd name.txt</a>' in page
    assert '<a href="sub/">sub/</a>' in page
    assert '<a href="../">../</a>' in page
    assert "<title>Index of /plain/</title>" in page


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/../secret.txt", 403),
        ("/docs/../../secret.txt", 403),
        ("/%2e%2e/secret.txt", 403),
        ("/%2E%2E/secret.txt", 403),
        ("/docs/%2e%2e/%2e%2e/secret.txt", 403),
        ("/..%2fsecret.txt", 403),
        ("/docs%2f..%2f..%2fsecret.txt", 403),
        ("/..%5csecret.txt", 403),
        ("/..\\secret.txt", 403),
        ("/hello.txt%00.html", 403),
        ("/./hello.txt", 403),
        ("/%ff%fe", 400),
        ("/missing.txt", 404),
        ("/docs/missing/", 404),
    ],
)
def test_path_traversal_is_refused_in_every_spelling(root: Path, target: str, status: int) -> None:
    """Every way of spelling a step out of the root (plain, percent-encoded in
    either case, encoded slashes and backslashes, NUL) is refused; nothing
    outside the root is ever sent."""
    reply = get(serve(root), target)
    assert reply.status == status
    assert b"outside the root" not in reply.body


def test_a_symbolic_link_out_of_the_root_is_refused(root: Path) -> None:
    """A link inside the root that points outside it is a 403; one that stays inside is followed."""
    (root / "escape.txt").symlink_to(root.parent / "secret.txt")
    (root / "alias.txt").symlink_to(root / "hello.txt")
    (root / "escape-dir").symlink_to(root.parent)
    conn = serve(root)
    assert get(conn, "/escape.txt").status == 403
    assert get(conn, "/escape-dir/secret.txt").status == 403
    assert get(conn, "/alias.txt").body == b"hello, files\n"


def test_other_methods_get_405_with_allow(root: Path) -> None:
    """POST (or any method but GET and HEAD) is a 405 that says what is allowed."""
    reply = get(serve(root), "/hello.txt", method="DELETE")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"


def test_a_fifo_is_not_read(root: Path) -> None:
    """A named pipe under the root is refused: reading it could block the server."""
    os.mkfifo(root / "pipe")
    assert get(serve(root), "/pipe").status == 403


def test_a_large_file_is_sent_from_the_file_as_the_client_reads(root: Path) -> None:
    """An 8 MiB file to a client that reads slowly: the response holds a file
    region, not its bytes (nothing of the file is in memory until the client
    reads, and allocations stay far below the file's size while it is sent),
    and every byte arrives."""
    data = os.urandom(8 * MIB)
    (root / "big.bin").write_bytes(data)
    conn = serve(root, peer_reads=False)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        conn.deliver(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        held, _ = tracemalloc.get_traced_memory()  # answered, and nothing read yet
        head, _, body = conn.read(100 * KIB).partition(b"\r\n\r\n")
        conn.take_written()  # the test's record of what was read would hold it all
        digest.update(body)
        received = len(body)
        for _ in range(10_000):
            chunk = conn.read(100 * KIB)
            conn.take_written()
            if not chunk:
                break
            digest.update(chunk)
            received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: %d" % len(data) in head.lower()
    assert received == len(data)
    assert digest.digest() == hashlib.sha256(data).digest()
    assert held < 64 * KIB
    assert peak < 1 * MIB


def test_a_file_replaced_while_sent_is_sent_whole_and_one_cut_short_ends_the_connection(root: Path) -> None:
    """The file is opened once: a file replaced mid-response is still sent whole
    (the body the headers announced), while a file truncated in place cannot be,
    so the connection ends (with the OSError) rather than send a body
    shorter than its Content-Length."""
    (root / "big.bin").write_bytes(b"a" * (4 * MIB))
    conn = serve(root, peer_reads=False)
    conn.deliver(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.read(64 * KIB)
    (root / "big.bin.new").write_bytes(b"b" * (4 * MIB))
    os.replace(root / "big.bin.new", root / "big.bin")
    conn.peer_reads = True
    (reply,) = read_replies(conn.written)
    assert reply.body == b"a" * (4 * MIB)
    assert not conn.closed

    conn = serve(root, peer_reads=False)
    conn.deliver(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.read(64 * KIB)
    os.truncate(root / "big.bin", 1 * MIB)
    for _ in range(1000):
        if not conn.read(256 * KIB) or conn.closed:
            break
    assert conn.closed
    assert len(conn.written) < 4 * MIB


def test_the_root_must_be_a_directory(tmp_path: Path) -> None:
    """FileServer of a missing directory or a file is an ArgumentError at once."""
    with pytest.raises(ArgumentError, match="not a directory"):
        FileServer(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ArgumentError):
        FileServer(tmp_path / "file")


def test_a_loop_of_links_is_a_404(root: Path) -> None:
    """Links that point at each other are not found, not a server error."""
    (root / "one").symlink_to(root / "two")
    (root / "two").symlink_to(root / "one")
    assert get(serve(root), "/one").status == 404


# --------------------------------------------- validators, ranges, refusals


def test_a_file_has_a_strong_etag_and_accepts_ranges(root: Path) -> None:
    """A file's ETag is strong, quoted, from its mtime in nanoseconds and its
    size; it changes when the file does; Accept-Ranges says bytes; the
    response is dated by the fake wall clock."""
    reply = get(serve(root), "/hello.txt")
    info = (root / "hello.txt").stat()
    assert reply.headers["etag"] == f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
    assert reply.headers["accept-ranges"] == "bytes"
    assert reply.headers["date"] == "Sun, 09 Sep 2001 01:46:40 GMT"
    os.utime(root / "hello.txt", ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    assert get(serve(root), "/hello.txt").headers["etag"] != reply.headers["etag"]


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        ("{etag}", 304),
        ("W/{etag}", 304),  # the weak comparison If-None-Match uses
        ('"other", {etag}', 304),
        ("*", 304),
        ('"other"', 200),
        ("", 200),
    ],
)
def test_if_none_match(root: Path, if_none_match: str, status: int) -> None:
    """If-None-Match naming the current ETag (weakly, in a list, or *) is a
    304 with the validators and no body; any other tag gets the file."""
    etag = get(serve(root), "/hello.txt").headers["etag"]
    value = if_none_match.format(etag=etag)
    reply = get(serve(root), "/hello.txt", headers=f"If-None-Match: {value}\r\n")
    assert reply.status == status
    if status == 304:
        assert reply.body == b""
        assert reply.headers["etag"] == etag
        assert "last-modified" in reply.headers
        assert "date" in reply.headers


def test_if_none_match_overrides_if_modified_since(root: Path) -> None:
    """RFC 9110 section 13.2.2: with If-None-Match present, a current
    If-Modified-Since does not make a 304 for a tag that does not match."""
    mtime = int((root / "hello.txt").stat().st_mtime)
    since = formatdate(mtime + 60, usegmt=True)
    reply = get(serve(root), "/hello.txt", headers=f'If-None-Match: "old"\r\nIf-Modified-Since: {since}\r\n')
    assert reply.status == 200


@pytest.mark.parametrize(
    ("spec", "content_range", "body"),
    [
        ("bytes=0-4", "bytes 0-4/13", b"hello"),
        ("bytes=7-", "bytes 7-12/13", b"files\n"),
        ("bytes=-6", "bytes 7-12/13", b"files\n"),
        ("bytes=7-999", "bytes 7-12/13", b"files\n"),  # clipped to the file
        ("bytes=-999", "bytes 0-12/13", b"hello, files\n"),
        ("BYTES = 12-12", "bytes 12-12/13", b"\n"),
        ("bytes=0-0,", "bytes 0-0/13", b"h"),  # an empty list element is no range
    ],
)
def test_one_range_is_a_206(root: Path, spec: str, content_range: str, body: bytes) -> None:
    """A single satisfiable range gets 206, Content-Range and exactly its bytes."""
    reply = get(serve(root), "/hello.txt", headers=f"Range: {spec}\r\n")
    assert (reply.status, reply.headers["content-range"], reply.body) == (206, content_range, body)
    assert reply.headers["content-length"] == str(len(body))


@pytest.mark.parametrize("spec", ["bytes=13-", "bytes=99-100", "bytes=-0"])
def test_an_unsatisfiable_range_is_a_416(root: Path, spec: str) -> None:
    """A range past the end (or a suffix of nothing) is 416 with Content-Range: bytes */size."""
    reply = get(serve(root), "/hello.txt", headers=f"Range: {spec}\r\n")
    assert reply.status == 416
    assert reply.headers["content-range"] == "bytes */13"


@pytest.mark.parametrize(
    "spec",
    [
        "bytes=0-1,3-4",
        "bytes=5-2",
        "bytes=abc",
        "bytes=1",
        "lines=0-1",
        "bytes=+1-2",
        "bytes=0x1-2",
        "bytes=\xb2-3",  # a digit to str.isdigit, not to HTTP
    ],
)
def test_several_ranges_or_a_malformed_one_get_the_whole_file(root: Path, spec: str) -> None:
    """Several ranges are answered with the whole file (200), as many servers
    do; a malformed Range or another unit is ignored (RFC 9110 section 14.2)."""
    reply = get(serve(root), "/hello.txt", headers=f"Range: {spec}\r\n")
    assert (reply.status, reply.body) == (200, b"hello, files\n")
    assert "content-range" not in reply.headers


def test_an_empty_file_ignores_a_range(root: Path) -> None:
    """An empty file has no byte to take a range of: it is sent whole (empty, 200)."""
    reply = get(serve(root), "/empty.bin", headers="Range: bytes=0-\r\n")
    assert (reply.status, reply.body) == (200, b"")


def test_if_range_applies_the_range_only_to_the_same_file(root: Path) -> None:
    """If-Range with the current ETag or Last-Modified gets the range; a
    stale one (or a weak tag, never a strong match) gets the whole file."""
    first = get(serve(root), "/hello.txt")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    for validator, status in [(etag, 206), (modified, 206), ('"stale"', 200), (f"W/{etag}", 200)]:
        reply = get(serve(root), "/hello.txt", headers=f"Range: bytes=0-4\r\nIf-Range: {validator}\r\n")
        assert reply.status == status, validator
        assert reply.body == (b"hello" if status == 206 else b"hello, files\n")


def test_head_gets_what_get_would_without_the_body(root: Path) -> None:
    """HEAD answers a range as GET does (206, or 416), with the same headers and no body."""
    for method in ("GET", "HEAD"):
        reply = get(serve(root), "/hello.txt", method=method, headers="Range: bytes=7-\r\n")
        assert (reply.status, reply.headers["content-range"], reply.headers["content-length"]) == (
            206,
            "bytes 7-12/13",
            "6",
        )
        assert reply.body == (b"files\n" if method == "GET" else b"")
    reply = get(serve(root), "/hello.txt", method="HEAD", headers="Range: bytes=50-\r\n")
    assert (reply.status, reply.headers["content-range"]) == (416, "bytes */13")


def test_a_range_of_a_large_file_is_sent_from_the_file(root: Path) -> None:
    """A range of a file over SMALL_FILE_SIZE goes out as a region of it: the
    right bytes, from the right offset."""
    data = os.urandom(1 * MIB)
    (root / "big.bin").write_bytes(data)
    reply = get(serve(root), "/big.bin", headers="Range: bytes=100000-899999\r\n")
    assert (reply.status, reply.headers["content-range"]) == (206, f"bytes 100000-899999/{MIB}")
    assert reply.body == data[100000:900000]


def test_a_file_that_cannot_be_read_is_a_403(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file refused when opened, or opened and then refused when read (an
    I/O error), answers 403 and the connection goes on: never a 500."""
    conn = serve(root)

    def refuse_open(path: str, **_: object) -> FileSlice:
        raise PermissionError(13, "Permission denied", path)

    with monkeypatch.context() as patch:
        patch.setattr(FileSlice, "open", staticmethod(refuse_open))
        assert get(conn, "/hello.txt").status == 403

    def refuse_read(self: FileSlice, size: int) -> bytes:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(FileSlice, "read", refuse_read)
        assert get(conn, "/hello.txt").status == 403
        assert get(conn, "/docs/").status == 403  # an index.html alike
    assert get(conn, "/hello.txt").status == 200
    assert not conn.closed


def test_an_unreadable_directory_is_a_403(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that cannot be listed is 403, however the listing fails."""

    def refuse(path: str) -> None:
        raise OSError(5, "Input/output error", path)

    monkeypatch.setattr(os, "scandir", refuse)
    assert get(serve(root), "/plain/").status == 403


# ------------------------------------------------------------ the cache of small files


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (the tests' files were just written)."""
    monkeypatch.setattr("weft._cli.file_server.SETTLE_SECONDS", -1.0)


CONDITIONAL_REQUESTS = [
    ("GET", ""),
    ("HEAD", ""),
    ("GET", "Range: bytes=2-5\r\n"),
    ("GET", "Range: bytes=-3\r\n"),
    ("GET", "Range: bytes=99-\r\n"),
    ("GET", "Range: bytes=1-2,4-5\r\n"),
    ("GET", "If-None-Match: *\r\n"),
    ("GET", "If-None-Match: \"other\"\r\n"),
    ("GET", "If-Modified-Since: Sun, 06 Nov 2094 08:49:37 GMT\r\n"),
    ("GET", "If-Range: \"other\"\r\nRange: bytes=0-1\r\n"),
]


@pytest.mark.parametrize(("method", "headers"), CONDITIONAL_REQUESTS)
def test_a_cached_answer_is_the_answer_from_the_file(
    root: Path, settled: None, method: str, headers: str
) -> None:
    """Once a small file's answer is cached, every request (conditional, ranged,
    HEAD) gets what it got from the file itself."""
    from_file = get(serve(root), "/hello.txt", method=method, headers=headers)
    files = FileServer(root)
    conn = connect(HTTPServerProtocol(files))
    get(conn, "/hello.txt")  # reads the file and caches its answer
    assert "/hello.txt" in files._cache
    from_cache = get(conn, "/hello.txt", method=method, headers=headers)
    assert (from_cache.status, from_cache.body) == (from_file.status, from_file.body)
    assert {k: v for k, v in from_cache.headers.items() if k != "date"} == {
        k: v for k, v in from_file.headers.items() if k != "date"
    }


def test_a_changed_file_is_read_again(root: Path, settled: None) -> None:
    """A rewrite (same size), a file renamed over the name, a removal: each is
    seen at the next request, by the stat that revalidates the cache."""
    files = FileServer(root)
    conn = connect(HTTPServerProtocol(files))
    assert get(conn, "/hello.txt").body == b"hello, files\n"
    target = root / "hello.txt"
    target.write_bytes(b"HELLO, FILES\n")
    os.utime(target, ns=(0, target.stat().st_mtime_ns + 10**9))  # a timestamp tick away, surely
    assert get(conn, "/hello.txt").body == b"HELLO, FILES\n"
    (root / "new.txt").write_bytes(b"renamed over\n")
    os.replace(root / "new.txt", target)
    assert get(conn, "/hello.txt").body == b"renamed over\n"
    target.unlink()
    assert get(conn, "/hello.txt").status == 404
    assert "/hello.txt" not in files._cache


def test_a_name_swapped_for_a_link_out_of_the_root_is_refused(root: Path, settled: None) -> None:
    """A cached path whose file becomes a symbolic link out of the root is
    checked again in full (the link leads to another inode): 403."""
    files = FileServer(root)
    conn = connect(HTTPServerProtocol(files))
    assert get(conn, "/hello.txt").status == 200
    (root / "hello.txt").unlink()
    (root / "hello.txt").symlink_to(root.parent / "secret.txt")
    assert get(conn, "/hello.txt").status == 403


def test_a_file_changed_just_now_is_not_cached(root: Path) -> None:
    """A file changed under SETTLE_SECONDS ago could change again within its
    timestamps' granularity unseen: it is read from the disk each time."""
    files = FileServer(root)
    conn = connect(HTTPServerProtocol(files))
    assert get(conn, "/hello.txt").status == 200
    assert files._cache == {}
