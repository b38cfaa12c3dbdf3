"""weft's TLS against other implementations over loopback: Python's ssl module and the openssl tool.

The reactor runs in the test's thread; the peer runs in a worker thread or a
subprocess.  Every wait is bounded.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.support import TIMEOUT
from tests.support.tls import HOSTNAME, certificates, client_context, server_context, tls_client, tls_server
from weft.drivers.reactor import Reactor
from weft.drivers.testing import RecordingProtocol
from weft.protocols import EchoProtocol

# Debian's ca-certificates depends on openssl, so any machine that can reach
# PyPI over HTTPS has it; if not, these tests fail rather than skip.
OPENSSL = shutil.which("openssl") or "openssl"


@pytest.fixture
def reactor() -> Iterator[Reactor]:
    with Reactor() as made:
        yield made


@pytest.fixture
def echo_server(reactor: Reactor) -> Iterator[int]:
    """A TLS echo server on the reactor; its port."""
    listener = reactor.listen_tcp(lambda: tls_server(EchoProtocol()), "127.0.0.1", 0)
    yield listener.addresses[0][1]
    listener.close()


def test_python_ssl_client_talks_to_a_weft_tls_server(reactor: Reactor, echo_server: int) -> None:
    """An ssl.SSLSocket client verifies weft's certificate, gets its echo, and
    closes with close_notify answered."""
    port = echo_server
    result: dict[str, object] = {}
    done = threading.Event()

    def client() -> None:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
                client_context().wrap_socket(raw, server_hostname=HOSTNAME) as tls,
            ):
                tls.sendall(b"hello from ssl")
                received = b""
                while len(received) < 14:
                    received += tls.recv(100)
                result["echo"] = received
                result["version"] = tls.version()
                tls.unwrap()  # close_notify both ways
                result["clean"] = True
        except Exception as exc:
            result["error"] = exc
        finally:
            reactor.call_soon_threadsafe(done.set)  # and wake the loop

    thread = threading.Thread(target=client)
    thread.start()
    assert reactor.run_until(done.is_set, TIMEOUT)
    thread.join(TIMEOUT)
    assert result.get("error") is None, result
    assert result["echo"] == b"hello from ssl"
    assert result["version"] in ("TLSv1.2", "TLSv1.3")
    assert result["clean"] is True


def test_a_weft_tls_client_talks_to_a_python_ssl_server(reactor: Reactor) -> None:
    """weft's client verifies an ssl-module server, exchanges data, and closes cleanly:
    the server reads an orderly close_notify."""
    listening = socket.create_server(("127.0.0.1", 0))
    listening.settimeout(TIMEOUT)
    port = listening.getsockname()[1]
    seen: dict[str, object] = {}

    def server() -> None:
        try:
            raw, _ = listening.accept()
            with server_context().wrap_socket(raw, server_side=True) as tls:
                tls.settimeout(TIMEOUT)
                seen["request"] = tls.recv(100)
                tls.sendall(b"reply from ssl")
                seen["after"] = tls.recv(100)  # b"" on close_notify
        except Exception as exc:
            seen["error"] = exc
        finally:
            listening.close()

    thread = threading.Thread(target=server)
    thread.start()
    app = RecordingProtocol()
    reactor.connect_tcp(lambda: tls_client(app), "127.0.0.1", port)
    assert reactor.run_until(lambda: getattr(app, "made", False), TIMEOUT)
    app.transport.write(b"request from weft")
    assert reactor.run_until(lambda: app.received == b"reply from ssl", TIMEOUT)
    app.transport.close()
    assert reactor.run_until(lambda: app.events[-1][0] == "connection_lost", TIMEOUT)
    thread.join(TIMEOUT)
    assert seen.get("error") is None, seen
    assert seen["request"] == b"request from weft"
    assert seen["after"] == b""
    assert app.events[-1] == ("connection_lost", None)


def test_a_weft_tls_client_refuses_a_python_ssl_server_with_the_wrong_name(reactor: Reactor) -> None:
    """Hostname verification against a real server: a certificate for another name
    ends the connection with a TLSHandshakeError that says why."""
    listening = socket.create_server(("127.0.0.1", 0))
    listening.settimeout(TIMEOUT)
    port = listening.getsockname()[1]

    def server() -> None:
        try:
            raw, _ = listening.accept()
            with server_context().wrap_socket(raw, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client gives up: expected
        finally:
            listening.close()

    thread = threading.Thread(target=server)
    thread.start()
    app = RecordingProtocol()
    reactor.connect_tcp(lambda: tls_client(app, server_hostname="other.test"), "127.0.0.1", port)
    assert reactor.run_until(lambda: bool(app.events) and app.events[-1][0] == "connection_lost", TIMEOUT)
    thread.join(TIMEOUT)
    exc = app.events[-1][1]
    assert type(exc).__name__ == "TLSHandshakeError"
    assert "other.test" in str(exc)


def test_openssl_s_client_talks_to_a_weft_tls_server(reactor: Reactor, echo_server: int) -> None:
    """openssl s_client, verifying against the test CA, gets weft's echo."""
    port = echo_server
    certs = certificates()
    output: dict[str, object] = {}
    done = threading.Event()

    def run_client() -> None:
        command = [
            str(OPENSSL), "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", certs.ca_file,
            "-servername", HOSTNAME, "-verify_return_error", "-quiet", "-no_ign_eof",
        ]  # fmt: skip
        with subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as proc:
            try:
                assert proc.stdin is not None
                assert proc.stdout is not None
                proc.stdin.write(b"hello openssl\n")
                proc.stdin.flush()
                output["line"] = proc.stdout.readline()
                proc.stdin.close()
                output["status"] = proc.wait(TIMEOUT)
            except Exception as exc:
                output["error"] = exc
                proc.kill()
            finally:
                reactor.call_soon_threadsafe(done.set)  # and wake the loop

    thread = threading.Thread(target=run_client)
    thread.start()
    assert reactor.run_until(done.is_set, TIMEOUT * 2)
    thread.join(TIMEOUT)
    assert output.get("error") is None, output
    assert output["line"] == b"hello openssl\n"
    assert output["status"] == 0


def test_a_weft_tls_client_talks_to_openssl_s_server(reactor: Reactor) -> None:
    """weft's client verifies openssl s_server's certificate; bytes go both ways."""
    certs = certificates()
    command = [
        str(OPENSSL), "s_server", "-accept", "127.0.0.1:0", "-naccept", "1",
        "-cert", certs.cert_file, "-key", certs.key_file,
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        try:
            assert proc.stdin is not None
            assert proc.stdout is not None
            port = 0
            for _ in range(20):
                line = proc.stdout.readline()
                if line.startswith(b"ACCEPT"):
                    port = int(line.rsplit(b":", 1)[1])
                    break
            assert port, "openssl s_server did not say where it listens"
            app = RecordingProtocol()
            reactor.connect_tcp(lambda: tls_client(app), "127.0.0.1", port)
            assert reactor.run_until(lambda: getattr(app, "made", False), TIMEOUT)
            app.transport.write(b"hello s_server\n")
            # s_server prints what it receives; it sends what it reads on stdin.
            proc.stdin.write(b"hello weft\n")
            proc.stdin.flush()
            assert reactor.run_until(lambda: app.received == b"hello weft\n", TIMEOUT)
            app.transport.close()
            assert reactor.run_until(lambda: app.events[-1][0] == "connection_lost", TIMEOUT)
            assert app.events[-1] == ("connection_lost", None)
            printed = b""
            while b"hello s_server" not in printed:
                line = proc.stdout.readline()
                if not line:
                    break
                printed += line
            assert b"hello s_server" in printed
        finally:
            proc.kill()
