"""Static files over HTTP: the handler behind ``weft serve http [--root DIR]``.

:class:`FileServer` is a handler for :class:`~weft.protocols.http.HTTPServerProtocol`
that serves the files under one directory, as ``python -m http.server``
does: a content type guessed from the name, ``HEAD``, ``Last-Modified`` and
``If-Modified-Since`` (a 304), ``index.html`` or a plain HTML listing for a
directory, and large files streamed a chunk at a time as the client takes
them, never read whole into memory.

It reads the disk, so it lives beside the drivers, not in ``protocols/``.
The reads are ordinary blocking reads of at most ``chunk_size`` bytes, made
on the driver's thread: fast for local disks, which is what it is for.

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
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote, unquote

from weft.protocols.errors import ArgumentError, WeftError
from weft.protocols.http import Request, ResponseWriter

__all__ = ["DEFAULT_CHUNK_SIZE", "FileServer"]

#: How much of a file is read and written at a time.
DEFAULT_CHUNK_SIZE = 256 * 1024

_TEXT = "text/plain; charset=utf-8"


class _Refused(WeftError):
    """A request answered with an error status instead of a file."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FileServer:
    """Serves the files under ``root`` (a directory) to GET and HEAD requests."""

    def __init__(self, root: str | os.PathLike[str], *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise ArgumentError(f"not a directory: {os.fspath(root)}")
        if chunk_size <= 0:
            raise ArgumentError(f"chunk_size must be > 0, not {chunk_size}")
        #: The directory served, with every symbolic link resolved.
        self.root = real
        self.chunk_size = chunk_size

    def __call__(self, request: Request, response: ResponseWriter) -> None:
        """Answer one request."""
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
            self._file(request, response, path, info)
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
            self._file(request, response, index, info)
            return
        try:
            page = _listing(request.path, path)
        except PermissionError:
            _send_text(response, 403, "forbidden")
            return
        response.send(200, [("content-type", "text/html; charset=utf-8")], page)

    def _file(self, request: Request, response: ResponseWriter, path: str, info: os.stat_result) -> None:
        modified = _http_date(int(info.st_mtime))
        if _not_modified_since(request.headers.get("if-modified-since"), int(info.st_mtime)):
            response.start(304, [("last-modified", modified)])
            response.end()
            return
        headers = [
            ("content-type", _content_type(os.path.splitext(path)[1])),
            ("content-length", str(info.st_size)),
            ("last-modified", modified),
        ]
        if request.method == "HEAD" or info.st_size == 0:
            response.send(200, headers)
            return
        sender = _FileSender(path, info, response, self.chunk_size)
        if info.st_size <= self.chunk_size:
            # A small file: one read, and the whole response in one write.
            response.send(200, headers, sender.read())
            return
        response.start(200, headers)
        sender.send()


@functools.lru_cache(maxsize=256)
def _content_type(extension: str) -> str:
    return mimetypes.guess_type("x" + extension)[0] or "application/octet-stream"


@functools.lru_cache(maxsize=256)
def _http_date(timestamp: int) -> str:
    return formatdate(timestamp, usegmt=True)


class _FileSender:
    """Streams one file into a response a chunk at a time, as fast as the client takes it.

    The file is opened for each chunk and closed at once, so a client that
    goes away mid-file leaves nothing open.  A file that changes while it is
    sent (replaced, or shorter than announced) ends the connection with an
    error, rather than send a mix of two files or a body shorter than its
    Content-Length.
    """

    def __init__(self, path: str, info: os.stat_result, response: ResponseWriter, chunk_size: int) -> None:
        self.path = path
        self.identity = (info.st_dev, info.st_ino)
        self.size = info.st_size
        self.position = 0
        self.response = response
        self.chunk_size = chunk_size

    def send(self) -> None:
        """Write chunks while the client keeps up, then wait for it; end when done."""
        response = self.response
        while self.position < self.size:
            if response.abandoned:
                return
            if not response.writable:
                response.on_writable(self.send)
                return
            response.write(self.read())
        response.end()

    def read(self) -> bytes:
        """The next chunk (the file opened for it and closed again)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) != self.identity:
                raise OSError(f"{self.path} was replaced while being sent")
            data = os.pread(fd, min(self.chunk_size, self.size - self.position), self.position)
        finally:
            os.close(fd)
        if not data:
            raise OSError(f"{self.path} became shorter while being sent")
        self.position += len(data)
        return data


def _send_text(
    response: ResponseWriter, status: int, message: str, headers: list[tuple[str, str]] | None = None
) -> None:
    response.send(status, [("content-type", _TEXT), *(headers or [])], f"{status} {message}\n".encode())


def _not_modified_since(header: str | None, mtime: int) -> bool:
    if header is None:
        return False
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False  # a malformed date is ignored, as RFC 9110 says
    if since.tzinfo is None:
        return False
    return mtime <= since.timestamp()


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
