"""The example servers, run as their docstrings say, talked to over loopback,
and stopped with SIGTERM; and their size, counted."""

from __future__ import annotations

import ast
import http.client
import io
import re
import signal
import socket
import sys
import tokenize

import pytest

from tests.docs.test_examples import EXAMPLES, SERVERS
from tests.support import TIMEOUT
from tests.support.drivers import SERVES
from tests.support.processes import Children, connect, receive_exactly, receive_to_eof, stop
from tests.support.tls import HOSTNAME, certificates
from tests.support.tls import client_context as tls_client_context

#: The most lines holding code each server may have.
LIMITS = {
    "echo_server.py": 9,
    "echo_streams.py": 12,
    "http_hello.py": 10,
    "pubsub_server.py": 20,  # the contract (Transport) and framing have one home each
    "pubsub_streams.py": 19,
    "tls_echo_server.py": 9,
}

#: The same servers written as callback protocols and as coroutines.
ECHO_SERVERS = ["echo_server.py", "echo_streams.py"]
PUBSUB_SERVERS = ["pubsub_server.py", "pubsub_streams.py"]


def code_lines(source: str) -> int:
    """Lines that hold code: not blank, not only a comment, not the module docstring."""
    docstring: set[int] = set()
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        end = body[0].end_lineno or body[0].lineno
        docstring = set(range(body[0].lineno, end + 1))
    ignored = {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENCODING,
        tokenize.ENDMARKER,
    }
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in ignored:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstring)


def test_code_lines_counts_what_it_should() -> None:
    """The counter skips the docstring, blank lines and comments, and counts
    every line of a statement split over several."""
    source = '"""A docstring\nover two lines."""\n\n# a comment\nimport sys  # why\n\nx = (\n    1,\n)\n'
    assert code_lines(source) == 4


def test_the_servers_are_the_examples_listed() -> None:
    """Every server example has a limit here, and tests/docs/test_examples.py knows it is a server."""
    assert set(LIMITS) == SERVERS


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_size(name: str) -> None:
    """Each server fits in its number of code lines."""
    assert code_lines((EXAMPLES / name).read_text()) <= LIMITS[name]


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_docstring_shows_how_to_run_it(name: str) -> None:
    """The docstring's Run: line is the command these tests use, driver and port optional
    (after the arguments a server needs, such as a certificate)."""
    docstring = ast.get_docstring(ast.parse((EXAMPLES / name).read_text())) or ""
    command = rf"^Run: python examples/{re.escape(name)} ([A-Z]+ )*\[DRIVER \[PORT\]\]$"
    assert re.search(command, docstring, re.M)


@pytest.mark.drivers(requires=SERVES)
def test_tls_echo_server(children: Children, driver: str) -> None:
    """A client that verifies the certificate gets every byte back over TLS."""
    certs = certificates()
    server = children.start(
        sys.executable, "examples/tls_echo_server.py", certs.cert_file, certs.key_file, driver, "0"
    )
    raw = socket.create_connection(("127.0.0.1", server.port()), timeout=TIMEOUT)
    with tls_client_context().wrap_socket(raw, server_hostname=HOSTNAME) as client:
        data = bytes(range(256)) * 256
        client.sendall(data)
        assert receive_exactly(client, data) == data
    assert stop(server) == 0


@pytest.mark.drivers(requires=SERVES)
@pytest.mark.parametrize("example", ECHO_SERVERS)
def test_echo_server(children: Children, example: str, driver: str) -> None:
    """Every byte comes back; SIGTERM stops it with status 0."""
    server = children.start(sys.executable, f"examples/{example}", driver, "0")
    with connect(server.port()) as client:
        data = bytes(range(256)) * 4096
        client.sendall(data)
        assert receive_exactly(client, data) == data
    assert stop(server) == 0


@pytest.mark.drivers(requires=SERVES)
def test_http_hello_server(children: Children, driver: str) -> None:
    """Two requests on one kept-alive connection get their greetings; SIGTERM stops it with status 0."""
    server = children.start(sys.executable, "examples/http_hello.py", driver, "0")
    client = http.client.HTTPConnection("127.0.0.1", server.port(), timeout=TIMEOUT)
    try:
        answers = []
        for path in ("/weft", "/"):
            client.request("GET", path)
            reply = client.getresponse()
            answers.append((reply.status, reply.getheader("content-type"), reply.read()))
        assert answers == [
            (200, "text/plain; charset=utf-8", b"hello, weft\n"),
            (200, "text/plain; charset=utf-8", b"hello, world\n"),
        ]
    finally:
        client.close()
    assert stop(server) == 0


@pytest.mark.drivers(requires=SERVES)
@pytest.mark.parametrize("example", PUBSUB_SERVERS)
def test_pubsub_server_broadcasts_every_line(children: Children, example: str, driver: str) -> None:
    """A line from any client goes to every connected client, the sender too;
    one leaving does not disturb the rest; SIGTERM stops it with status 0."""
    server = children.start(sys.executable, f"examples/{example}", driver, "0")
    port = server.port()
    with connect(port) as alice, connect(port) as bob:
        with connect(port) as carol:
            carol.sendall(b"hello from carol\n")  # once all three are connected: its echo says so
            for client in (alice, bob, carol):
                assert receive_exactly(client, b"hello from carol\n") == b"hello from carol\n"
        alice.sendall(b"carol left\r\n")
        for client in (alice, bob):
            assert receive_exactly(client, b"carol left\r\n") == b"carol left\r\n"
    assert stop(server) == 0


@pytest.mark.drivers(requires=SERVES)
@pytest.mark.parametrize("example", PUBSUB_SERVERS)
def test_pubsub_server_drops_a_client_that_does_not_read(
    children: Children, example: str, driver: str
) -> None:
    """A client that never reads is cut off once about a megabyte waits for
    it, and everyone else carries on."""
    server = children.start(sys.executable, f"examples/{example}", driver, "0")
    port = server.port()
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(TIMEOUT)
    with slow, connect(port) as fast:
        slow.connect(("127.0.0.1", port))
        fast.sendall(b"ready?\n")  # the slow one is in once this comes back
        assert receive_exactly(fast, b"ready?\n") == b"ready?\n"
        batch = b"x" * 1023 + b"\n"
        batch *= 256
        # 16 MiB: far more than the megabyte and the kernel's buffers together.
        for _ in range(64):
            fast.sendall(batch)  # then wait for it: the fast one keeps up
            assert receive_exactly(fast, batch) == batch
        with pytest.raises(ConnectionResetError):
            receive_to_eof(slow)  # what was queued for it, then the reset
    assert stop(server, signal.SIGINT) == 0
