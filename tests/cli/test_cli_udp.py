"""``weft serve echo --udp``, run for real on every driver with datagrams, talked to over loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.processes import WEFT, Children, stop
from weft.drivers import DatagramRuntime, SignalsRuntime

#: What ``weft serve echo --udp`` needs of a driver: datagrams, and signals to stop on.
SERVES_DATAGRAMS = {DatagramRuntime, SignalsRuntime}

UDP_LISTENING = r"^listening on udp 127\.0\.0\.1:(?P<port>\d+)$"


@pytest.mark.drivers(requires=SERVES_DATAGRAMS)
def test_serve_echo_over_udp(children: Children, driver: str) -> None:
    """With --udp --port 0 the first stderr line names the real UDP port; each
    datagram (an empty one too) comes back whole to its sender; SIGTERM ends
    it with 0, saying ``weft: stopping`` as a stream server does."""
    server = children.weft("serve", "echo", "--udp", "--port", "0", "--driver", driver)
    port = int(server.wait_for_stderr(UDP_LISTENING).group("port"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(TIMEOUT)
        for datagram in (b"hello", b"x" * 60_000, b""):
            client.sendto(datagram, ("127.0.0.1", port))
            answer, source = client.recvfrom(65_536)
            assert answer == datagram
            assert source == ("127.0.0.1", port)
    assert stop(server) == 0
    assert "weft: stopping" in server.stderr.splitlines()


def test_serve_echo_over_a_unix_datagram_socket(children: Children, tmp_path: Path) -> None:
    """--udp --unix PATH serves the echo on a UNIX datagram socket, whose file
    is removed when SIGINT stops the server."""
    path = str(tmp_path / "echo")
    server = children.weft("serve", "echo", "--udp", "--unix", path)
    server.wait_for_stderr(f"^listening on unix datagram {path}$")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.bind(str(tmp_path / "client"))
        client.settimeout(TIMEOUT)
        client.sendto(b"local echo", path)
        assert client.recvfrom(100) == (b"local echo", path)
    assert stop(server, signal.SIGINT) == 0
    assert not Path(path).exists()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["pubsub"], "--udp serves echo only"),
        (["echo", "--stdio"], "--stdio cannot go with --udp"),
        (["echo", "--max-connections", "3"], "--max-connections cannot go with --udp"),
        (["echo", "--unix", "/tmp/x", "--host", "::1"], "--host goes with --port"),
    ],
)
def test_options_that_make_no_sense_for_datagrams_are_refused(extra: list[str], says: str) -> None:
    """A usage error, exit status 2, one line that says why."""
    protocol, *options = extra
    result = subprocess.run(
        [*WEFT, "serve", protocol, "--udp", *options], capture_output=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 2
    assert says in result.stderr.decode()
    assert len(result.stderr.decode().splitlines()) == 1


def test_a_port_in_use_is_one_line_and_status_1(children: Children) -> None:
    """A UDP port another socket holds: exit status 1, one line naming the address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        result = subprocess.run(
            [*WEFT, "serve", "echo", "--udp", "--port", str(port)],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"weft: cannot listen on udp 127.0.0.1:{port}: Address already in use"
    ]
