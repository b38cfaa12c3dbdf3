"""TLS on the ``weft`` command line, run for real: ``serve --tls`` and ``connect --tls``
against each other, Python's ssl module and the openssl tool."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.drivers import SERVES
from tests.support.processes import WEFT, Children, stop
from tests.support.tls import HOSTNAME, certificates, client_context

OPENSSL = shutil.which("openssl") or "openssl"


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m weft ARGS`` to completion."""
    return subprocess.run([*WEFT, *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=False)


def tls_options() -> list[str]:
    certs = certificates()
    return ["--tls", "--cert", certs.cert_file, "--key", certs.key_file]


def trust_options() -> list[str]:
    return ["--tls", "--cafile", certificates().ca_file, "--server-name", HOSTNAME]


def ssl_round_trip(sock: socket.socket, message: bytes) -> bytes:
    """Send ``message`` over TLS on ``sock`` (verifying the server), return the reply."""
    sock.settimeout(TIMEOUT)
    with client_context().wrap_socket(sock, server_hostname=HOSTNAME) as tls:
        tls.sendall(message)
        received = b""
        while len(received) < len(message):
            chunk = tls.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


@pytest.mark.drivers(requires=SERVES)
def test_serve_echo_over_tls(children: Children, driver: str) -> None:
    """serve echo --tls on each driver: an ssl-module client verifies the
    certificate and gets its bytes back; SIGTERM still stops it with 0."""
    server = children.weft("serve", "echo", "--port", "0", *tls_options(), "--driver", driver)
    port = server.port()
    reply = ssl_round_trip(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT), b"over tls")
    assert reply == b"over tls"
    assert stop(server) == 0


def test_serve_over_tls_on_a_unix_socket(children: Children, tmp_path: Path) -> None:
    """--tls works with --unix as with --port."""
    path = tmp_path / "tls.sock"
    server = children.weft("serve", "echo", "--unix", str(path), *tls_options())
    server.wait_for_stderr("listening on")
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))
    assert ssl_round_trip(sock, b"unix and tls") == b"unix and tls"
    assert stop(server) == 0


def test_connect_tls_to_serve_tls(children: Children) -> None:
    """weft connect --tls talks to weft serve --tls: stdin's EOF is a close_notify,
    the echo comes back, and both end with 0."""
    server = children.weft("serve", "echo", "--port", "0", *tls_options())
    port = server.port()
    result = run("connect", "127.0.0.1", str(port), *trust_options(), stdin=b"hello\nweft\n")
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == b"hello\nweft\n"
    assert stop(server) == 0


def test_connect_tls_refuses_an_untrusted_server(children: Children) -> None:
    """Without the test CA the system's trust store refuses the certificate:
    exit 1 with one line that says why; the server logs the failed handshake."""
    server = children.weft("serve", "echo", "--port", "0", *tls_options())
    port = server.port()
    result = run("connect", "127.0.0.1", str(port), "--tls", "--server-name", HOSTNAME, stdin=b"x")
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert "certificate verify failed" in lines[0]
    server.wait_for_stderr("TLS handshake failed")
    assert stop(server) == 0


def test_connect_tls_refuses_a_wrong_name(children: Children) -> None:
    """A certificate that does not carry --server-name: exit 1, the mismatch named."""
    server = children.weft("serve", "echo", "--port", "0", *tls_options())
    port = server.port()
    certs = certificates()
    result = run(
        "connect", "127.0.0.1", str(port), "--tls", "--cafile", certs.ca_file, "--server-name", "other.test"
    )
    assert result.returncode == 1
    assert "other.test" in result.stderr.decode()
    assert stop(server) == 0


def test_connect_tls_via_a_command_to_serve_tls_on_stdio() -> None:
    """TLS end to end over a subprocess's pipes: connect --via runs
    `weft serve echo --stdio --tls`, whose stdin/stdout carry the session."""
    command = " ".join([*WEFT, "serve", "echo", "--stdio", *tls_options()])
    data = bytes(range(256)) * 64
    result = run("connect", "--via", command, *trust_options(), stdin=data)
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == data


def test_openssl_s_client_talks_to_serve_tls(children: Children) -> None:
    """openssl s_client verifies `weft serve echo --tls` and gets its echo."""
    server = children.weft("serve", "echo", "--port", "0", *tls_options())
    port = server.port()
    command = [
        OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", certificates().ca_file,
        "-servername", HOSTNAME, "-verify_return_error", "-quiet", "-no_ign_eof",
    ]  # fmt: skip
    pipe = subprocess.PIPE
    with subprocess.Popen(command, stdin=pipe, stdout=pipe, stderr=pipe) as proc:
        try:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(b"hello openssl\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            proc.stdin.close()
            assert proc.wait(TIMEOUT) == 0
        finally:
            proc.kill()
    assert line == b"hello openssl\n"
    assert stop(server) == 0


def test_a_plain_client_gets_a_handshake_failure_not_a_hang(children: Children) -> None:
    """Plaintext sent to a TLS server: the server ends the connection at once
    (an alert, then close) and logs why; it goes on serving."""
    server = children.weft("serve", "echo", "--port", "0", *tls_options())
    port = server.port()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := plain.recv(4096):
            received += chunk
    assert not received.startswith(b"GET")
    server.wait_for_stderr("TLS handshake failed")
    reply = ssl_round_trip(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT), b"still up")
    assert reply == b"still up"
    assert stop(server) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "echo", "--tls"], "--tls needs --cert"),
        (["serve", "echo", "--cert", "x.pem"], "--cert and --key go with --tls"),
        (["connect", "127.0.0.1", "1", "--cafile", "ca.pem"], "--cafile goes with --tls"),
        (["connect", "127.0.0.1", "1", "--via", "cat"], "give one of"),
        (["connect", "--via", "cat", "--tls"], "needs --server-name"),
    ],
)
def test_tls_argument_errors(args: list[str], message: str) -> None:
    """Options that do not fit together: one line naming the problem, exit 2."""
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]


def test_a_missing_certificate_file_is_one_line(tmp_path: Path) -> None:
    """A --cert that does not exist: a usage error (exit 2), one line naming it, no traceback."""
    missing = tmp_path / "missing.pem"
    result = run("serve", "echo", "--port", "0", "--tls", "--cert", str(missing))
    assert result.returncode == 2
    text = result.stderr.decode()
    assert "Traceback" not in text
    assert text.splitlines() == [f"weft: --cert {missing}: no such file"]


def test_connect_via_a_command_that_fails_says_so() -> None:
    """--via with a command that cannot run: the shell's complaint, then one line
    with its exit status, and status 1."""
    result = run("connect", "--via", "exec nonexistent-command-for-weft", stdin=b"hi\n")
    assert result.returncode == 1
    assert result.stderr.decode().splitlines()[-1] == (
        "weft: 'exec nonexistent-command-for-weft' exited with status 127"
    )
