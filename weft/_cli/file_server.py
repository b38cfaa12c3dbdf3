"""Static files over HTTP: the handler behind ``weft serve http [--root DIR]``.

:class:`FileServer` is a handler for :class:`~weft.protocols.http.HTTPServerProtocol`
that serves the files under one directory, as ``python -m http.server``
does: a content type guessed from the name, ``HEAD`` (the headers GET would
get, without the body), ``index.html`` or a plain HTML listing for a
directory.  Beyond ``http.server``, as nginx does (the rules are in
:mod:`weft._cli.file_conditions`):

* validators: a strong ``ETag`` made from the file's modification time (in
  nanoseconds) and size, and ``Last-Modified``; ``If-None-Match`` (weak
  comparison, ``*``) and, without it, ``If-Modified-Since`` answer 304;
* one byte range per request: ``Range: bytes=a-b``, ``a-`` or ``-n``
  answers 206 with ``Content-Range``; a range past the end 416 with
  ``Content-Range: bytes */SIZE``; several ranges, a malformed header or an
  empty file the whole file (200); ``If-Range`` (an ETag compared strongly,
  or the Last-Modified date exactly) lets the range apply only to the file
  the client has part of.  Files say ``Accept-Ranges: bytes``;
* a file the server may not read answers 403, like a directory it may not
  list, however the refusal comes (opening or reading).

The ``Date`` header is the protocol's (from the driver's wall clock).

A file over :data:`SMALL_FILE_SIZE` is handed to the response
as a file region (:class:`~weft.drivers._core.file_region.FileSlice`): on a plain
socket it goes out with ``sendfile`` as the client takes it, never through
Python's memory; over TLS it is read a small piece at a time, as flow
control allows.  A client that never reads costs a descriptor, not memory.

Small files are answered from a cache: the first GET of a path resolves it
(the traversal checks, the link check), opens, reads and dates the file,
and keeps its bytes and its headers; each later GET or HEAD of the same path
costs one ``stat`` of the resolved name, and the cached answer is used only
if the file's device, inode, size, modification and change times (in
nanoseconds) are all unchanged, so a file rewritten, replaced or renamed
over is read again.  A file changed less than :data:`SETTLE_SECONDS` before
it was read is not cached (a rewrite within the file system's timestamp
granularity could leave all five unchanged, the "racily clean" case git
guards against the same way).  A name swapped for a symbolic link leads to
another inode, so the full checks run again.  The cache is bounded
(:data:`CACHE_ENTRIES` paths, :data:`CACHE_BYTES` bytes of content).

It reads the disk, so it lives beside the drivers, not in ``protocols/``.
The reads are ordinary blocking reads on the driver's thread: fast for
local disks, which is what it is for.

Path traversal is refused in every spelling: a ``..`` or ``.`` segment,
plain or percent-encoded (403); an encoded slash or backslash (``%2f``,
``%5c``), a backslash, a NUL (403); bytes that are not UTF-8 once decoded
(400); and a symbolic link that leads out of the root (403).  A name
that is not there is a 404.
"""

from __future__ import annotations

import functools
import html
import mimetypes
import os
import stat
import time
from email.utils import formatdate
from urllib.parse import quote, unquote

from weft._cli.file_conditions import byte_range, entity_tag, not_modified, range_still_valid
from weft.drivers._core.file_region import FileSlice
from weft.protocols.errors import ArgumentError, WeftError
from weft.protocols.http import Request, ResponseWriter

__all__ = ["SMALL_FILE_SIZE", "FileServer"]

#: Files up to this size are read whole and sent with their head in one
#: write; larger ones go out from the file (``write_file``: sendfile on a
#: plain socket).  The transport's default high-water mark: a small file
#: never costs more memory than flow control lets a connection buffer.
SMALL_FILE_SIZE = 64 * 1024

_TEXT = "text/plain; charset=utf-8"

#: The most paths whose answers the cache keeps, and the most bytes of content.
CACHE_ENTRIES = 1024
CACHE_BYTES = 16 * 1024 * 1024
#: A file changed less than this many seconds before it was read is not cached.
SETTLE_SECONDS = 2.0


def _identity(info: os.stat_result) -> tuple[int, int, int, int, int]:
    """What revalidates a cached file: any change to its content changes one of these."""
    return (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class _Cached:
    """A small file's answer, kept for its request path."""

    __slots__ = ("body", "etag", "fields", "identity", "modified", "mtime", "path")

    def __init__(
        self,
        path: str,
        info: os.stat_result,
        etag: str,
        modified: str,
        fields: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        self.path = path
        self.identity = _identity(info)
        self.mtime = int(info.st_mtime)
        self.etag = etag
        self.modified = modified
        #: The 200's headers, Content-Length included, as bytes pairs.
        self.fields = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields]
        self.body = body


class _Refused(WeftError):
    """A request answered with an error status instead of a file."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FileServer:
    """Serves the files under ``root`` (a directory) to GET and HEAD requests."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise ArgumentError(f"not a directory: {os.fspath(root)}")
        #: The directory served, with every symbolic link resolved.
        self.root = real
        # Request path -> the small file's answer (see the module docstring).
        self._cache: dict[str, _Cached] = {}
        self._cached_bytes = 0

    def __call__(self, request: Request, response: ResponseWriter) -> None:
        """Answer one request."""
        method = request.method
        if method == "GET" or method == "HEAD":
            cached = self._cache.get(request.path)
            if cached is not None:
                try:
                    fresh = _identity(os.stat(cached.path)) == cached.identity
                except OSError:
                    fresh = False
                if fresh:
                    self._send_cached(request, response, cached)
                    return
                self._forget(request.path)
        if request.method not in ("GET", "HEAD"):
            _send_text(response, 405, "method not allowed", [("allow", "GET, HEAD")])
            return
        try:
            path = self.resolve(request.path)
            info = os.stat(path)
        except _Refused as refused:
            _send_text(response, refused.status, str(refused))
            return
        except FileNotFoundError:
            _send_text(response, 404, "not found")
            return
        except PermissionError:
            _send_text(response, 403, "forbidden")
            return
        except OSError:  # a loop of links, a name too long...
            _send_text(response, 404, "not found")
            return
        if stat.S_ISDIR(info.st_mode):
            self._directory(request, response, path)
        elif stat.S_ISREG(info.st_mode):
            self._file(request, response, path)
        else:  # a FIFO or a device: reading it could block the server
            _send_text(response, 403, "forbidden")

    def resolve(self, raw_path: str) -> str:
        """The file a request path names, or :class:`_Refused` (403 or 400) if it
        would leave the root or is malformed; OSError (FileNotFoundError...) if
        a step of it is not there."""
        if not raw_path.startswith("/"):
            raise _Refused(400, "bad request")
        lowered = raw_path.lower()
        if "\\" in raw_path or any(code in lowered for code in ("%2f", "%5c", "%00")):
            raise _Refused(403, "forbidden")
        try:
            decoded = unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            raise _Refused(400, "bad request") from None
        if "\x00" in decoded or "\\" in decoded:
            raise _Refused(403, "forbidden")
        segments = [segment for segment in decoded.split("/") if segment]
        if any(segment in (".", "..") for segment in segments):
            raise _Refused(403, "forbidden")
        path = os.path.join(self.root, *segments)
        if self._has_link(segments):
            real = os.path.realpath(path)
            if real != self.root and not real.startswith(self.root + os.sep):
                raise _Refused(403, "forbidden")  # a symbolic link out of the root
            return real
        return path

    def _has_link(self, segments: list[str]) -> bool:
        """Whether any step below the root is a symbolic link (one lstat per step,
        cheaper than realpath's walk from /; a missing step raises FileNotFoundError)."""
        path = self.root
        for segment in segments:
            path = os.path.join(path, segment)
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return True
        return False

    # ------------------------------------------------------------ the cache

    def _remember(
        self,
        key: str,
        path: str,
        info: os.stat_result,
        etag: str,
        modified: str,
        fields: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        """Keep a small file's answer for ``key``, unless it changed too recently to trust."""
        if time.time() - info.st_ctime < SETTLE_SECONDS or len(body) > CACHE_BYTES:
            return
        self._forget(key)
        cache = self._cache
        while cache and (len(cache) >= CACHE_ENTRIES or self._cached_bytes + len(body) > CACHE_BYTES):
            self._forget(next(iter(cache)))  # the oldest
        cache[key] = _Cached(path, info, etag, modified, fields, body)
        self._cached_bytes += len(body)

    def _forget(self, key: str) -> None:
        cached = self._cache.pop(key, None)
        if cached is not None:
            self._cached_bytes -= len(cached.body)

    def _send_cached(self, request: Request, response: ResponseWriter, cached: _Cached) -> None:
        """Answer from the cache, by the same rules as :meth:`_file`."""
        headers = request.headers
        if (
            headers._lookup("if-none-match") is None
            and headers._lookup("if-modified-since") is None
            and headers._lookup("range") is None
        ):
            response.send(200, cached.fields, cached.body)  # the usual request: no condition
            return
        etag, modified, body = cached.etag, cached.modified, cached.body
        if not_modified(headers.get("if-none-match"), headers.get("if-modified-since"), etag, cached.mtime):
            response.start(304, [("etag", etag), ("last-modified", modified)])
            response.end()
            return
        size = len(body)
        wanted = byte_range(headers.get("range"), size)
        if wanted is None or not range_still_valid(headers.get("if-range"), etag, modified):
            response.send(200, cached.fields, body)
            return
        if isinstance(wanted, str):  # UNSATISFIABLE
            _send_text(response, 416, "range not satisfiable", [("content-range", f"bytes */{size}")])
            return
        start, count = wanted
        fields = [pair for pair in cached.fields if pair[0] != b"content-length"]
        fields += [
            (b"content-range", f"bytes {start}-{start + count - 1}/{size}".encode("ascii")),
            (b"content-length", b"%d" % count),
        ]
        response.send(206, fields, body[start : start + count])

    # ------------------------------------------------------------ answers

    def _directory(self, request: Request, response: ResponseWriter, path: str) -> None:
        if not request.path.endswith("/"):
            location = request.path + "/" + (f"?{request.query}" if request.query else "")
            _send_text(response, 301, "moved permanently", [("location", location)])
            return
        index = os.path.join(path, "index.html")
        try:
            info = os.stat(index)
        except OSError:
            info = None
        if info is not None and stat.S_ISREG(info.st_mode):
            self._file(request, response, index)
            return
        try:
            page = _listing(request.path, path)
        except FileNotFoundError:  # gone since it was looked up
            _send_text(response, 404, "not found")
            return
        except OSError:  # not ours to list
            _send_text(response, 403, "forbidden")
            return
        response.send(200, [("content-type", "text/html; charset=utf-8")], page)

    def _file(self, request: Request, response: ResponseWriter, path: str) -> None:
        try:
            # Opened once: the headers describe the file that is sent, even if
            # the name is given to another file meanwhile.
            region = FileSlice.open(path)
        except PermissionError:
            _send_text(response, 403, "forbidden")
            return
        except OSError:  # gone since it was looked up
            _send_text(response, 404, "not found")
            return
        info = region.stat
        if not stat.S_ISREG(info.st_mode):  # swapped for a FIFO or a device since
            region.close()
            _send_text(response, 403, "forbidden")
            return
        size = info.st_size
        mtime = int(info.st_mtime)
        etag = entity_tag(info)
        modified = _http_date(mtime)
        headers = request.headers
        if not_modified(headers.get("if-none-match"), headers.get("if-modified-since"), etag, mtime):
            region.close()
            response.start(304, [("etag", etag), ("last-modified", modified)])
            response.end()
            return
        status = 200
        fields = [
            ("content-type", _content_type(os.path.splitext(path)[1])),
            ("accept-ranges", "bytes"),
            ("etag", etag),
            ("last-modified", modified),
        ]
        wanted = byte_range(headers.get("range"), size)
        if wanted is not None and range_still_valid(headers.get("if-range"), etag, modified):
            if isinstance(wanted, str):  # UNSATISFIABLE
                region.close()
                _send_text(response, 416, "range not satisfiable", [("content-range", f"bytes */{size}")])
                return
            start, count = wanted
            region.narrow(start, count)
            fields.append(("content-range", f"bytes {start}-{start + count - 1}/{size}"))
            status, size = 206, count
        fields.append(("content-length", str(size)))
        if request.method == "GET" and 0 < size <= SMALL_FILE_SIZE:
            # One read, and the whole response in one write: cheaper than a
            # sendfile after the head, and no more than flow control allows.
            try:
                body = region.read(size)
            except OSError:  # opened, yet not readable (EIO, EISDIR, a lock...)
                _send_text(response, 403, "forbidden")
                return
            finally:
                region.close()
            if status == 200 and len(body) == size:
                self._remember(request.path, path, info, etag, modified, fields, body)
            response.send(status, fields, body)
            return
        # Sent from the file as the client takes it (sendfile on a plain
        # socket), never read whole; HEAD and empty files close it at once.
        response.send_file(status, fields, region)


@functools.lru_cache(maxsize=256)
def _content_type(extension: str) -> str:
    return mimetypes.guess_type("x" + extension)[0] or "application/octet-stream"


@functools.lru_cache(maxsize=256)
def _http_date(timestamp: int) -> str:
    return formatdate(timestamp, usegmt=True)


def _send_text(
    response: ResponseWriter, status: int, message: str, headers: list[tuple[str, str]] | None = None
) -> None:
    response.send(status, [("content-type", _TEXT), *(headers or [])], f"{status} {message}\n".encode())


def _listing(url_path: str, directory: str) -> bytes:
    """A plain HTML page listing ``directory``, links relative to ``url_path``."""
    entries = []
    with os.scandir(directory) as scan:
        for entry in scan:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            entries.append((entry.name, "/" if is_dir else ""))
    entries.sort(key=lambda entry: entry[0].lower())
    title = html.escape(unquote(url_path))
    items = [] if url_path == "/" else ['<li><a href="../">../</a></li>']
    # fsencode: a name that is not UTF-8 is linked by its real bytes.
    items += [
        f'<li><a href="{quote(os.fsencode(name))}{slash}">{html.escape(name)}{slash}</a></li>'
        for name, slash in entries
    ]
    page = (
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">"
        f"<title>Index of {title}</title></head>\n<body>\n<h1>Index of {title}</h1>\n<ul>\n"
        + "\n".join(items)
        + "\n</ul>\n</body>\n</html>\n"
    )
    return page.encode("utf-8", "surrogateescape")
