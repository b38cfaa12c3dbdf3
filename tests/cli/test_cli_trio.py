"""``weft serve ... --driver trio``: each of the command line's servers on the trio driver, for real.

The driver matrix runs the command line's generic tests on trio too (every
driver that serves); these are the three servers the trio driver must run
named one by one (echo, pub/sub, HTTP), over stdio as well, each stopped by
its PID, and ``weft drivers`` saying that trio can run here.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.processes import WEFT, Children, connect, receive_exactly, receive_to_eof, stop
from weft.drivers import DRIVERS

pytestmark = pytest.mark.skipif(
    not DRIVERS["trio"].available(), reason=str(DRIVERS["trio"].unavailable_reason())
)


def test_weft_drivers_lists_trio_as_available() -> None:
    """`weft drivers` has a trio row, available here (the test extra installs Trio)."""
    result = subprocess.run([*WEFT, "drivers"], capture_output=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.decode().splitlines()[1:]}
    assert rows["trio"] == "yes"


def test_serve_echo_on_trio(children: Children) -> None:
    """Bytes in several writes come back exactly, the client's EOF ends the
    connection, and SIGTERM stops the server with status 0."""
    server = children.weft("serve", "echo", "--port", "0", "--driver", "trio")
    port = server.port()
    assert server.stderr.splitlines()[0] == f"listening on 127.0.0.1:{port}"
    with connect(port) as client:
        for piece in (b"hello ", b"from ", b"a trio server\r\n"):
            client.sendall(piece)
        expected = b"hello from a trio server\r\n"
        assert receive_exactly(client, expected) == expected
        client.shutdown(socket.SHUT_WR)
        assert receive_to_eof(client) == b""
    assert stop(server) == 0


def test_serve_pubsub_on_trio(children: Children) -> None:
    """Two clients on one hub: a subscription, a publication delivered to the
    subscriber, an error for a bad command; SIGINT stops the server with 0."""
    server = children.weft("serve", "pubsub", "--port", "0", "--driver", "trio", "--grace", "0.5")
    port = server.port()
    with connect(port) as alice, connect(port) as bob:
        alice.sendall(b"SUB news\n")
        assert receive_exactly(alice, b"OK\r\n") == b"OK\r\n"
        bob.sendall(b"PUB news hello\r\n")
        assert receive_exactly(bob, b"OK 1\r\n") == b"OK 1\r\n"
        assert receive_exactly(alice, b"MSG news hello\r\n") == b"MSG news hello\r\n"
        bob.sendall(b"HELLO\n")
        assert receive_exactly(bob, b"ERR unknown command\r\n") == b"ERR unknown command\r\n"
    assert stop(server, signal.SIGINT) == 0


def test_serve_http_on_trio(children: Children, tmp_path: Path) -> None:
    """Two GETs on one kept-alive connection: a small file, then 3 MiB sent with
    write_file (os.sendfile into the trio stream's socket), byte for byte."""
    (tmp_path / "hello.txt").write_bytes(b"hello, trio\n")
    big = bytes(range(256)) * (3 * 1024 * 4)
    (tmp_path / "big.bin").write_bytes(big)
    server = children.weft("serve", "http", "--root", str(tmp_path), "--port", "0", "--driver", "trio")
    port = server.port()
    with connect(port) as client:
        for name, body in (("hello.txt", b"hello, trio\n"), ("big.bin", big)):
            client.sendall(f"GET /{name} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            head = receive_until(client, b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert f"content-length: {len(body)}".encode() in head.lower()
            assert receive_exactly(client, body) == body
    assert stop(server) == 0


def test_serve_echo_over_stdio_on_trio() -> None:
    """--stdio on trio: stdin and stdout as one connection (a pipe pair), the
    echo complete, and the process ending with 0 at stdin's EOF."""
    data = bytes(range(256)) * 1000
    result = subprocess.run(
        [*WEFT, "serve", "echo", "--stdio", "--driver", "trio"],
        input=data,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == data


def receive_until(sock: socket.socket, end: bytes) -> bytes:
    """Bytes up to and including ``end`` (one byte at a time: no more is taken)."""
    received = bytearray()
    while not received.endswith(end):
        byte = sock.recv(1)
        assert byte, f"the connection ended after {bytes(received)!r}"
        received += byte
    return bytes(received)
