"""The attackers' tools: raw loopback sockets, an HTTP response reader, and TLS
over memory BIOs (so a client can stop half-way through a handshake or a record).

Nothing here uses weft: the clients must not share the server's bugs.
Every call is bounded by a timeout.
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"


class ClientError(Exception):
    """A client could not do what the case needed (refused, timed out, garbled answer)."""


def connect(port: int, *, timeout: float = 5.0, rcvbuf: int | None = None) -> socket.socket:
    """A blocking TCP connection to the server, with ``timeout`` on every call.

    ``rcvbuf`` fixes the receive buffer (set before connecting, so the window
    is small from the start): a never-reading client then pins little kernel memory.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((HOST, port))
    except BaseException:
        sock.close()
        raise
    return sock


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset instead of a FIN (``SO_LINGER`` on, zero seconds)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def drain_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Read until EOF or a reset (True) or ``timeout`` seconds pass (False); what was read."""
    deadline = time.monotonic() + timeout
    received = bytearray()
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            return bytes(received), True
        if not chunk:
            return bytes(received), True
        received += chunk
    return bytes(received), False


# ------------------------------------------------------------------ lines


def line_exchange(port: int, line: bytes, *, timeout: float = 5.0) -> bytes:
    """Connect, send ``line``, and return the first line that comes back (b"" on EOF)."""
    with connect(port, timeout=timeout) as sock:
        sock.sendall(line)
        return read_line(sock, timeout)


def read_line(sock: socket.socket, timeout: float) -> bytes:
    """The next line from ``sock`` (its end stripped), b"" at EOF or a reset; ClientError on timeout."""
    deadline = time.monotonic() + timeout
    received = bytearray()
    while b"\n" not in received:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ClientError(f"no line within {timeout:g} s (got {bytes(received[:60])!r})")
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return b""
        if not chunk:
            return bytes(received).rstrip(b"\r\n")
        received += chunk
    return bytes(received).split(b"\n", 1)[0].rstrip(b"\r")


# ------------------------------------------------------------------- HTTP


@dataclass
class HTTPResponse:
    """One response: its status, headers (names lower-cased) and body."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class ResponseReader:
    """Parses the responses in a byte stream, as much as has arrived.

    Bodies framed by ``Content-Length``, by chunks, or (HTTP/1.0 style) by
    the end of the connection; ``100 Continue`` and other 1xx answers are
    kept too, as responses of their own.
    """

    buffer: bytearray = field(default_factory=bytearray)
    responses: list[HTTPResponse] = field(default_factory=list)
    #: A response whose body runs to the end of the connection, waiting for it.
    _to_close: HTTPResponse | None = None

    def feed(self, data: bytes) -> None:
        """Add ``data`` and parse every response it completes."""
        if self._to_close is not None:
            self._to_close.body += data
            return
        self.buffer += data
        while self._parse_one():
            pass

    def closed(self) -> None:
        """The connection ended: a body read to the end is complete."""
        if self._to_close is not None:
            self.responses.append(self._to_close)
            self._to_close = None

    def _parse_one(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ClientError(f"not an HTTP response: {head[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = end + 4
        if 100 <= status < 200 or status in (204, 304):
            self.responses.append(HTTPResponse(status, headers))
            del self.buffer[:rest]
            return True
        if "content-length" in headers:
            size = int(headers["content-length"])
            if len(self.buffer) < rest + size:
                return False
            self.responses.append(HTTPResponse(status, headers, bytes(self.buffer[rest : rest + size])))
            del self.buffer[: rest + size]
            return True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._parse_chunked(status, headers, rest)
        self._to_close = HTTPResponse(status, headers, bytes(self.buffer[rest:]))
        self.buffer.clear()
        return False

    def _parse_chunked(self, status: int, headers: dict[str, str], at: int) -> bool:
        body = bytearray()
        while True:
            line_end = self.buffer.find(b"\r\n", at)
            if line_end < 0:
                return False
            size = int(bytes(self.buffer[at:line_end]).split(b";")[0], 16)
            at = line_end + 2
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n", at)
                while trailer_end > at:  # trailer fields, if any
                    at = trailer_end + 2
                    trailer_end = self.buffer.find(b"\r\n", at)
                if trailer_end < 0:
                    return False
                del self.buffer[: trailer_end + 2]
                self.responses.append(HTTPResponse(status, headers, bytes(body)))
                return True
            if len(self.buffer) < at + size + 2:
                return False
            body += self.buffer[at : at + size]
            at += size + 2


def request(path: str, *, method: str = "GET", close: bool = False) -> bytes:
    """A well-formed request for ``path``."""
    connection = b"Connection: close\r\n" if close else b""
    return b"%s %s HTTP/1.1\r\nHost: attack.test\r\n%s\r\n" % (method.encode(), path.encode(), connection)


def get(port: int, path: str, *, timeout: float = 5.0) -> tuple[HTTPResponse, float]:
    """GET ``path`` on a new connection; the response and how long it took, connecting included."""
    started = time.monotonic()
    with connect(port, timeout=timeout) as sock:
        sock.sendall(request(path, close=True))
        reader = ResponseReader()
        deadline = started + timeout
        while not reader.responses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientError(f"no answer to GET {path} within {timeout:g} s")
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                reader.closed()
                if not reader.responses:
                    raise ClientError(f"the connection closed before an answer to GET {path}")
                break
            reader.feed(chunk)
        return reader.responses[0], time.monotonic() - started


# -------------------------------------------------------------------- TLS


def client_context(ca_file: str) -> ssl.SSLContext:
    """A client context trusting only the suite's CA."""
    return ssl.create_default_context(cafile=ca_file)


class MemoryTLS:
    """A client TLS session over memory BIOs: the caller moves the bytes, so it
    can stop anywhere (after the ClientHello, in the middle of a record)."""

    def __init__(self, context: ssl.SSLContext, server_name: str) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_name)

    def client_hello(self) -> bytes:
        """Start the handshake; the ClientHello to send."""
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.do_handshake()
        return self.outgoing.read()

    def handshake(self, sock: socket.socket, timeout: float) -> None:
        """Complete the handshake over the blocking ``sock``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                pending = self.outgoing.read()
                if pending:
                    sock.sendall(pending)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ClientError("the TLS handshake did not finish in time") from None
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    raise ClientError("the server closed during the TLS handshake") from None
                self.incoming.write(data)
                continue
            if pending := self.outgoing.read():
                sock.sendall(pending)
            return

    def seal(self, data: bytes) -> bytes:
        """``data`` as TLS records, to send."""
        self.tls.write(data)
        return self.outgoing.read()

    def open(self, data: bytes) -> bytes:
        """The plaintext in ``data`` (records from the server), as far as it goes."""
        self.incoming.write(data)
        plain = bytearray()
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            plain += chunk
        return bytes(plain)


def tls_echo_round_trip(
    port: int, context: ssl.SSLContext, server_name: str, *, timeout: float = 5.0
) -> bool:
    """A new TLS connection whose line comes back: whether it did."""
    line = b"still serving?\n"
    with connect(port, timeout=timeout) as sock:
        session = MemoryTLS(context, server_name)
        session.handshake(sock, timeout)
        sock.sendall(session.seal(line))
        received = b""
        deadline = time.monotonic() + timeout
        while line not in received:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                return False
            received += session.open(data)
        return True


def raise_descriptor_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (thousands of
    clients need thousands of descriptors); the new soft limit.  Servers
    started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft


def closed_by_server(sockets: list[socket.socket], timeout: float) -> int:
    """Read every socket to its end, all at once, for up to ``timeout`` seconds;
    how many the server closed (EOF or a reset)."""
    closed = 0
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, sock)
        while selector.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _mask in selector.select(left):
                sock = key.data  # registered with the socket as its data
                try:
                    if sock.recv(262144):
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                selector.unregister(sock)
                closed += 1
    return closed
