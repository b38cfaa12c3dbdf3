"""``weft serve ... --driver twisted``, run for real: each protocol served on a
Twisted reactor, talked to over loopback, stopped by SIGTERM.

The matrix tests (tests/cli/test_cli.py and its neighbours) run their echo,
HTTP and TLS cases on every driver, this one included; here, all three
protocols on this driver in one place, and the command line naming it.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
from pathlib import Path

from tests.support import TIMEOUT
from tests.support.processes import WEFT, Children, connect, receive_exactly, receive_to_eof, stop


def test_the_command_line_offers_the_twisted_driver() -> None:
    """``weft serve --help`` lists twisted among the drivers, and ``weft drivers``
    says it can run here (the test extra installs Twisted)."""
    helped = subprocess.run([*WEFT, "serve", "--help"], capture_output=True, text=True, timeout=TIMEOUT)
    assert "twisted" in helped.stdout.split("--driver {", 1)[1].split("}", 1)[0].split(",")
    listed = subprocess.run([*WEFT, "drivers"], capture_output=True, text=True, timeout=TIMEOUT)
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith("twisted ")]
    assert line.split()[1] == "yes"


def test_serve_echo_on_twisted(children: Children) -> None:
    """Bytes come back exactly; the client's EOF closes the connection; SIGTERM ends it with 0."""
    server = children.weft("serve", "echo", "--port", "0", "--driver", "twisted")
    port = server.port()
    with connect(port) as client:
        client.sendall(b"hello\r\ntwisted")
        assert receive_exactly(client, b"hello\r\ntwisted") == b"hello\r\ntwisted"
        client.shutdown(socket.SHUT_WR)
        assert receive_to_eof(client) == b""
    assert stop(server) == 0


def test_serve_pubsub_on_twisted(children: Children) -> None:
    """A subscriber gets what another client publishes, through one hub."""
    server = children.weft("serve", "pubsub", "--port", "0", "--driver", "twisted", "--grace", "0.5")
    port = server.port()
    with connect(port) as alice, connect(port) as bob:
        alice.sendall(b"SUB news\n")
        assert receive_exactly(alice, b"OK\r\n") == b"OK\r\n"
        bob.sendall(b"PUB news hello\n")
        assert receive_exactly(bob, b"OK 1\r\n") == b"OK 1\r\n"
        assert receive_exactly(alice, b"MSG news hello\r\n") == b"MSG news hello\r\n"
    assert stop(server) == 0


def test_serve_http_on_twisted(children: Children, tmp_path: Path) -> None:
    """A directory's files over one kept-alive connection, a 1 MiB one included
    (sent with sendfile behind Twisted's producer), and a 404."""
    (tmp_path / "hello.txt").write_bytes(b"hello, twisted\n")
    big = bytes(range(256)) * 4096
    (tmp_path / "big.bin").write_bytes(big)
    server = children.weft("serve", "http", "--root", str(tmp_path), "--port", "0", "--driver", "twisted")
    client = http.client.HTTPConnection("127.0.0.1", server.port(), timeout=TIMEOUT)
    try:
        for path, status, body in (("/hello.txt", 200, b"hello, twisted\n"), ("/big.bin", 200, big)):
            client.request("GET", path)
            response = client.getresponse()
            assert (response.status, response.read()) == (status, body)
        client.request("GET", "/missing")
        response = client.getresponse()
        response.read()
        assert response.status == 404
    finally:
        client.close()
    assert stop(server) == 0


def test_serve_stdio_on_twisted() -> None:
    """--stdio on the twisted driver: one connection over stdin and stdout, then exit 0."""
    data = bytes(range(256)) * 1000
    result = subprocess.run(
        [*WEFT, "serve", "echo", "--stdio", "--driver", "twisted"],
        input=data,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == data
