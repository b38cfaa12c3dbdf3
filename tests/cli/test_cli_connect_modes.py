"""``weft connect`` as ``nc``/``ncat`` users expect it: a broken stdout ends
quietly with SIGPIPE's status, ``--listen`` accepts one connection, and
``--crlf`` sends CRLF line ends; and ``weft serve`` stops gracefully on SIGHUP
as on SIGTERM (but not under ``nohup``).  Child processes, loopback sockets,
every wait bounded."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.processes import WEFT, Children, connect, receive_exactly, receive_to_eof, stop
from weft._cli.bridge import _CRLFSide


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*WEFT, *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=False)


def one_line(stderr: bytes | str) -> str:
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------------ broken stdout


def test_a_broken_stdout_ends_quietly_with_sigpipes_status() -> None:
    """`weft connect ... | head -c 5` against a server that sends without end:
    weft ends once head has gone, with no message and the status a shell shows
    for a program killed by SIGPIPE (141), as `cat` would."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        sent = threading.Event()

        def flood() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                try:
                    for _ in range(2000):  # at most 128 MiB: weft is gone long before
                        conn.sendall(b"x" * 65536)
                except OSError:
                    sent.set()  # weft aborted the connection: the flood is over

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        weft = shlex.join([*WEFT, "connect", "127.0.0.1", str(port)])
        script = f'{weft} </dev/null 2>"$ERRORS" | head -c 5; echo " status=${{PIPESTATUS[0]}}"'
        result = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
            env={"ERRORS": "/dev/stderr", "PATH": "/usr/bin:/bin"},
        )
        sender.join(TIMEOUT)
    assert result.stdout == b"xxxxx status=141\n"
    assert result.stderr == b""
    assert sent.is_set()


# ------------------------------------------------------------------ listen


def test_listen_accepts_one_connection_and_bridges_it(children: Children) -> None:
    """--listen PORT (port 0: a free one, named on stderr): the first client's
    bytes reach stdout and stdin's reach it; a second client is refused (the
    listener closed once the first was in); the client's close ends weft with 0."""
    weft = children.weft("connect", "--listen", "0")
    port = weft.port()
    with connect(port) as client:
        client.sendall(b"from the client\n")
        weft.wait_for_stdout(b"from the client\n")
        weft.write(b"from stdin\n")
        assert receive_exactly(client, b"from stdin\n") == b"from stdin\n"
        with pytest.raises(ConnectionRefusedError):
            connect(port).close()
        client.shutdown(socket.SHUT_WR)
        weft.close_stdin()
        assert receive_to_eof(client) == b""
    assert weft.wait() == 0
    assert weft.stderr.splitlines() == [f"listening on 127.0.0.1:{port}"]


def test_listen_on_a_unix_socket(children: Children, tmp_path: Path) -> None:
    """--listen --unix PATH accepts one connection there."""
    path = tmp_path / "listen.sock"
    weft = children.weft("connect", "--listen", "--unix", str(path))
    assert weft.listening() == str(path)
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(TIMEOUT)
        client.connect(str(path))
        client.sendall(b"over unix\n")
        weft.wait_for_stdout(b"over unix\n")
    assert weft.wait() == 0


def test_listen_with_a_timeout_gives_up_waiting(children: Children) -> None:
    """--timeout bounds the wait for a client: one line saying so, exit 1."""
    weft = children.weft("connect", "--listen", "0", "--timeout", "0.3")
    port = weft.port()
    assert weft.wait() == 1
    assert weft.stderr.splitlines()[-1] == f"weft: nobody connected to 127.0.0.1:{port} within 0.3 s"


def test_listen_can_be_interrupted_while_waiting(children: Children) -> None:
    """SIGINT while no client has come: 130, no message."""
    weft = children.weft("connect", "--listen", "0")
    weft.port()
    assert stop(weft, signal.SIGINT) == 128 + signal.SIGINT
    assert weft.stderr.splitlines() == [weft.stderr.splitlines()[0]]


#: ``weft connect --listen 0`` in a process that ignores SIGINT (as a shell's
#: background job does) and signals itself the moment it announces its
#: address: the earliest a reader of that line could.
SIGNALLED_AT_ANNOUNCEMENT = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)

class SignalsOnAnnouncement:
    def __init__(self, inner):
        self.inner = inner

    def write(self, text):
        written = self.inner.write(text)
        if text.startswith("listening on"):
            os.kill(os.getpid(), signal.SIGINT)
        return written

    def __getattr__(self, name):
        return getattr(self.inner, name)

sys.stderr = SignalsOnAnnouncement(sys.stderr)
from weft._cli import main
sys.exit(main(["connect", "--listen", "0"]))
"""


def test_listen_handles_a_signal_sent_as_soon_as_it_announces_its_address() -> None:
    """The signal handlers are set before "listening on" is printed: a SIGINT
    sent by whoever reads that line is handled (130) even in a process that
    ignores SIGINT, where before it was lost and the command waited for a
    client for ever (the flake of test_listen_can_be_interrupted_while_waiting
    in background runs of the suite)."""
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED_AT_ANNOUNCEMENT],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 128 + signal.SIGINT, done.stderr
    assert done.stderr.startswith("listening on 127.0.0.1:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen"], "--listen needs a PORT (or HOST PORT, or --unix PATH)"),
        (["--listen", "http"], "--listen: not a port number: 'http'"),
        (["--listen", "--via", "cat"], "--listen goes with [HOST] PORT or --unix PATH, not --via"),
        (["--listen", "0", "--tls", "--insecure"], "--listen does not speak TLS (weft serve --tls does)"),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_listen_usage_mistakes(args: list[str], message: str) -> None:
    """One usage line, exit 2."""
    result = run("connect", *args)
    assert result.returncode == 2
    assert one_line(result.stderr) == f"weft connect: {message} (see 'weft connect --help')"


def test_listen_on_a_port_in_use() -> None:
    """A port in use: one line, exit 1, as serve says it."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("connect", "--listen", str(port))
    assert result.returncode == 1
    assert one_line(result.stderr) == f"weft: cannot listen on 127.0.0.1:{port}: Address already in use"


# -------------------------------------------------------------------- crlf


def test_crlf_sends_crlf_line_ends() -> None:
    """--crlf: each LF from stdin goes out as CRLF; a CRLF already there stays one."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        received: list[bytes] = []

        def serve_one() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                received.append(receive_to_eof(conn))

        server = threading.Thread(target=serve_one, daemon=True)
        server.start()
        result = run("connect", "--crlf", "127.0.0.1", str(port), stdin=b"HELO a\nMAIL b\r\n\nend")
        server.join(TIMEOUT)
    assert (result.returncode, result.stderr) == (0, b"")
    assert received == [b"HELO a\r\nMAIL b\r\n\r\nend"]


class Recorder:
    """The other side of the bridge: a transport that records what is written."""

    def __init__(self) -> None:
        self.transport = self
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class Bridge:
    def active(self) -> None:
        pass


@pytest.mark.parametrize(
    ("chunks", "sent"),
    [
        ([b"a\r", b"\nb\n"], b"a\r\nb\r\n"),  # a CRLF split between two reads stays one CRLF
        ([b"a\n", b"\n"], b"a\r\n\r\n"),
        ([b"\r", b"\r\n"], b"\r\r\n"),
        ([b"\n"], b"\r\n"),
    ],
)
def test_crlf_across_reads(chunks: list[bytes], sent: bytes) -> None:
    """The translation does not depend on how stdin's bytes were split into reads."""
    side: Any = _CRLFSide(Bridge(), "stdio")  # type: ignore[arg-type]
    side.other = Recorder()
    for chunk in chunks:
        side.data_received(chunk)
    assert b"".join(side.other.written) == sent


# ------------------------------------------------------------------ SIGHUP


# SIGHUP stopping as SIGTERM does: test_cli.py's test_graceful_stop_lets_a_connection_finish.

def test_sighup_is_left_ignored_under_nohup(children: Children) -> None:
    """Started with SIGHUP ignored (as nohup does), the server keeps it
    ignored: after a SIGHUP, new clients are still served; SIGTERM then stops it."""

    def as_nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    server = children.weft("serve", "echo", "--port", "0", preexec_fn=as_nohup)
    port = server.port()
    server.signal(signal.SIGHUP)
    for attempt in (b"one\n", b"two\n"):  # each a new connection, each a loop turn after the signal
        with connect(port) as client:
            client.sendall(attempt)
            assert receive_exactly(client, attempt) == attempt
    assert "stopping" not in server.stderr
    assert stop(server) == 0
