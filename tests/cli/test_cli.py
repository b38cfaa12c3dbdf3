"""The ``weft`` command line, run for real: ``python -m weft`` (and the
console script) as child processes, talked to over loopback sockets and pipes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.drivers import CONNECTS, SERVES
from tests.support.processes import ROOT, WEFT, Children, connect, receive_exactly, receive_to_eof, stop
from tests.support.threads import tgkill, wait_until_asleep_in_poll
from weft._cli import commands as cli
from weft.drivers import DRIVERS, DriverInfo
from weft.drivers._core import accelerator


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A plain loopback TCP server socket, for connect to talk to."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(TIMEOUT)
        yield sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def accept(listener: socket.socket) -> socket.socket:
    conn, _address = listener.accept()
    conn.settimeout(TIMEOUT)
    return conn


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m weft ARGS`` to completion."""
    return subprocess.run([*WEFT, *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=False)


def one_line(stderr: bytes | str) -> str:
    """The one line ``stderr`` holds (failing if it holds more, or a traceback)."""
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------------------- serve


@pytest.mark.drivers(requires=SERVES)
def test_serve_echo_on_a_free_port(children: Children, driver: str) -> None:
    """With --port 0 the first stderr line names the real port; bytes come back
    exactly; the client's EOF closes the connection; SIGTERM ends it with 0."""
    server = children.weft("serve", "echo", "--port", "0", "--driver", driver)
    port = server.port()
    assert server.stderr.splitlines()[0] == f"listening on 127.0.0.1:{port}"
    with connect(port) as client:
        client.sendall(b"hello\r\nweft")
        assert receive_exactly(client, b"hello\r\nweft") == b"hello\r\nweft"
        client.shutdown(socket.SHUT_WR)
        assert receive_to_eof(client) == b""
    assert stop(server) == 0


def test_sigterm_landing_on_a_connection_thread_stops_the_blocking_server(children: Children) -> None:
    """The kernel may hand a SIGTERM sent to the server to any of its threads.
    The blocking driver has one per connection; sent to such a thread, the
    signal still wakes the main thread, asleep in its scheduler's poll, and
    the server stops gracefully, as it does when the main thread gets it."""
    server = children.weft("serve", "echo", "--port", "0", "--driver", "blocking")
    pid = server.process.pid
    with connect(server.port()) as client:
        client.sendall(b"hello")
        assert receive_exactly(client, b"hello") == b"hello"
        others = sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)
        assert others, "the blocking server has no thread but its main one"
        # Once its main thread sleeps (the bytes echoed, nothing due for minutes).
        assert wait_until_asleep_in_poll(pid, pid)
        tgkill(pid, others[-1], signal.SIGTERM)
        server.wait_for_stderr(r"^weft: stopping")
        client.shutdown(socket.SHUT_WR)
        assert receive_to_eof(client) == b""
    assert server.wait() == 0


def test_serve_pubsub_session(children: Children) -> None:
    """Every connection shares one hub: the exact bytes of a subscribe, publish
    and error, across two clients.  SIGINT stops it with 0 (after a short grace:
    alice, a subscriber, stays half-open at the server after her EOF)."""
    server = children.weft("serve", "pubsub", "--port", "0", "--grace", "0.5")
    port = server.port()
    with connect(port) as alice, connect(port) as bob:
        alice.sendall(b"SUB news\n")
        assert receive_exactly(alice, b"OK\r\n") == b"OK\r\n"
        bob.sendall(b"PUB news hello\r\n")
        assert receive_exactly(bob, b"OK 1\r\n") == b"OK 1\r\n"
        assert receive_exactly(alice, b"MSG news hello\r\n") == b"MSG news hello\r\n"
        bob.sendall(b"PUB sports\nHELLO\n")
        expected = b"OK 0\r\nERR unknown command\r\n"
        assert receive_exactly(bob, expected) == expected
    assert stop(server, signal.SIGINT) == 0
    assert server.stdout == b""


def test_serve_on_a_unix_socket(children: Children, tmp_path: Path) -> None:
    """--unix PATH listens there, says so, and removes the socket file when it stops."""
    path = tmp_path / "echo.sock"
    server = children.weft("serve", "echo", "--unix", str(path))
    assert server.listening() == str(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(TIMEOUT)
        client.connect(str(path))
        client.sendall(b"over a unix socket\n")
        assert receive_exactly(client, b"over a unix socket\n") == b"over a unix socket\n"
    assert stop(server) == 0
    assert not path.exists()


def test_serve_stdio_echo() -> None:
    """--stdio serves one connection over stdin/stdout and exits 0 when it ends."""
    data = bytes(range(256)) * 1000
    result = run("serve", "echo", "--stdio", stdin=data)
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == data


def test_serve_stdio_pubsub() -> None:
    """The pub/sub wire format over stdio: replies in order, then the end at stdin's EOF."""
    result = run("serve", "pubsub", "--stdio", stdin=b"PUB news hi\nSUB\nUNSUB news\n")
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == b"OK 0\r\nERR missing topic\r\nOK\r\n"


def test_serve_stdio_exits_when_the_connection_ends_with_stdin_still_open(children: Children) -> None:
    """The protocol closing the connection (pub/sub refusing an over-long line)
    ends the process, though stdin is still open."""
    server = children.weft("serve", "pubsub", "--stdio")
    server.write(b"x" * 70_000 + b"\n")
    assert server.wait() == 0
    assert server.stdout == b"ERR line too long\r\n"


def test_serve_stdio_leaves_stdin_blocking(children: Children) -> None:
    """stdin's blocking mode belongs to the open file, shared with whoever else
    holds the pipe: the server sets it non-blocking while it runs and puts it
    back when it exits."""
    read_end, write_end = os.pipe()
    try:
        server = children.weft("serve", "echo", "--stdio", stdin=read_end)
        os.write(write_end, b"ping\n")
        server.wait_for_stdout(b"ping\n")
        assert not os.get_blocking(read_end)  # shared: the child's mode shows here
        os.close(write_end)
        write_end = -1
        assert server.wait() == 0
        assert os.get_blocking(read_end)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


# ------------------------------------------------------------ graceful stop


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_graceful_stop_lets_a_connection_finish(children: Children, signum: int) -> None:
    """On SIGTERM, or SIGHUP (the terminal went away), the server stops
    accepting at once, lets the open connection go on to its end, and then
    exits 0."""
    server = children.weft("serve", "echo", "--port", "0", "--grace", "60")
    port = server.port()
    with connect(port) as client:
        client.sendall(b"before\n")
        assert receive_exactly(client, b"before\n") == b"before\n"
        server.signal(signum)
        server.wait_for_stderr(r"^weft: stopping: waiting up to 60 s for 1 open connection")
        with pytest.raises(ConnectionRefusedError):
            connect(port).close()
        client.sendall(b"after\n")
        assert receive_exactly(client, b"after\n") == b"after\n"
        client.shutdown(socket.SHUT_WR)
        assert receive_to_eof(client) == b""
    assert server.wait() == 0
    assert "cut off" not in server.stderr


def test_graceful_stop_cuts_off_a_connection_after_the_grace_period(children: Children) -> None:
    """A client that never finishes is cut off once the grace period is over; the exit status is 0."""
    server = children.weft("serve", "echo", "--port", "0", "--grace", "0.5")
    with connect(server.port()) as client:
        client.sendall(b"x")
        assert receive_exactly(client, b"x") == b"x"
        assert stop(server) == 0
        with pytest.raises(ConnectionResetError):
            receive_to_eof(client)
    assert "weft: cut off 1 connection still open after the grace period" in server.stderr.splitlines()


def test_a_second_signal_cuts_the_grace_period_short(children: Children) -> None:
    """SIGINT during the grace period ends it at once (here, well inside a
    grace of ten minutes)."""
    server = children.weft("serve", "echo", "--port", "0", "--grace", "600")
    with connect(server.port()) as client:
        server.signal(signal.SIGINT)
        server.wait_for_stderr(r"^weft: stopping: waiting up to 600 s")
        assert stop(server, signal.SIGINT) == 0
        with pytest.raises(ConnectionResetError):
            receive_to_eof(client)


# ----------------------------------------------------------------- connect


def test_connect_session_from_the_readme(children: Children) -> None:
    """The two-line session the README shows, byte for byte."""
    server = children.weft("serve", "pubsub", "--port", "0")
    session = children.weft("connect", "127.0.0.1", str(server.port()))
    session.write(b"SUB news\nPUB news hello\n")
    session.wait_for_stdout(b"OK\r\nMSG news hello\r\nOK 1\r\n")
    assert session.stdout == b"OK\r\nMSG news hello\r\nOK 1\r\n"
    assert stop(session, signal.SIGINT) == 128 + signal.SIGINT
    assert session.stderr == ""
    assert stop(server) == 0


def test_connect_to_a_weft_server_ends_cleanly(children: Children) -> None:
    """Piped commands, the server's answers on stdout, exit 0 once the server closes."""
    server = children.weft("serve", "pubsub", "--port", "0")
    result = run("connect", "127.0.0.1", str(server.port()), stdin=b"PUB news hi\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"OK 0\r\n", b"")
    assert stop(server) == 0


def test_connect_keeps_receiving_after_stdin_ends(children: Children) -> None:
    """stdin's EOF half-closes: a subscriber's messages keep coming until it is interrupted."""
    server = children.weft("serve", "pubsub", "--port", "0", "--grace", "0.5")
    port = server.port()
    subscriber = children.weft("connect", "127.0.0.1", str(port))
    subscriber.write(b"SUB news\n")
    subscriber.wait_for_stdout(b"OK\r\n")
    subscriber.close_stdin()
    with connect(port) as publisher:
        publisher.sendall(b"PUB news after EOF\n")
        assert receive_exactly(publisher, b"OK 1\r\n") == b"OK 1\r\n"
    subscriber.wait_for_stdout(b"MSG news after EOF\r\n")
    assert stop(subscriber) == 128 + signal.SIGTERM
    assert subscriber.stderr == ""
    assert stop(server) == 0


def test_an_interrupted_subscriber_is_not_counted_and_a_half_closed_one_does_not_hold_the_stop(
    children: Children,
) -> None:
    """The documented case: ``printf 'SUB news\\n' | weft connect`` then
    Ctrl-C.  The interrupted subscriber reset its connection, so the next
    PUB does not count it; another that half-closed and still listens counts
    and gets the message.  On SIGTERM the server closes the half-closed one
    at once instead of waiting out its grace period of ten minutes."""
    server = children.weft("serve", "pubsub", "--port", "0", "--grace", "600")
    port = server.port()
    subscribers = []
    for _ in range(2):
        subscriber = children.weft("connect", "127.0.0.1", str(port))
        subscriber.write(b"SUB news\n")
        subscriber.wait_for_stdout(b"OK\r\n")
        subscriber.close_stdin()
        subscribers.append(subscriber)
    interrupted, listening = subscribers
    assert stop(interrupted, signal.SIGINT) == 128 + signal.SIGINT
    with connect(port) as publisher:
        publisher.sendall(b"PUB news hi\n")
        assert receive_exactly(publisher, b"OK 1\r\n") == b"OK 1\r\n"
    listening.wait_for_stdout(b"MSG news hi\r\n")
    assert stop(server) == 0
    assert "cut off" not in server.stderr
    assert listening.wait() == 0


def test_connect_half_closes_on_stdin_eof(children: Children, listener: socket.socket) -> None:
    """Against a plain socket server: stdin's bytes arrive, then EOF (a half-close);
    the reply sent after it still reaches stdout, and the server's close ends weft with 0."""
    client = children.weft("connect", "127.0.0.1", str(port_of(listener)))
    with accept(listener) as conn:
        data = b"0123456789" * 50_000
        client.write(data)
        client.close_stdin()
        assert receive_to_eof(conn) == data
        conn.sendall(b"got 500000 bytes\n")
    assert client.wait() == 0
    assert (client.stdout, client.stderr) == (b"got 500000 bytes\n", "")


def test_connect_ends_when_the_server_closes(children: Children, listener: socket.socket) -> None:
    """The server's EOF ends the session (its bytes flushed to stdout), though stdin is still open."""
    client = children.weft("connect", "127.0.0.1", str(port_of(listener)))
    with accept(listener) as conn:
        conn.sendall(b"bye\n")
    assert client.wait() == 0
    assert (client.stdout, client.stderr) == (b"bye\n", "")


def test_connect_reports_a_reset(children: Children, listener: socket.socket) -> None:
    """A connection reset by the server: one line saying so, exit 1."""
    client = children.weft("connect", "127.0.0.1", str(port_of(listener)))
    with accept(listener) as conn:
        client.write(b"hi\n")
        assert receive_exactly(conn, b"hi\n") == b"hi\n"  # connected, and bridging
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert client.wait() == 1
    port = port_of(listener)
    assert one_line(client.stderr) == f"weft: connection to 127.0.0.1:{port}: Connection reset by peer"


def test_connect_refused() -> None:
    """Nobody listening: one line, exit 1; -v adds the traceback."""
    with socket.socket() as bound_only:  # bound, not listening: connecting is refused
        bound_only.bind(("127.0.0.1", 0))
        port = port_of(bound_only)
        result = run("connect", "127.0.0.1", str(port))
        verbose = run("connect", "-v", "127.0.0.1", str(port))
    message = f"weft: cannot connect to 127.0.0.1:{port}: Connection refused"
    assert (result.returncode, one_line(result.stderr)) == (1, message)
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr.decode()
    assert verbose.stderr.decode().splitlines()[-1] == message


def test_connect_to_a_missing_unix_socket(tmp_path: Path) -> None:
    """A path with nothing there: one line naming it, exit 1."""
    path = tmp_path / "nobody.sock"
    result = run("connect", "--unix", str(path))
    assert result.returncode == 1
    assert one_line(result.stderr) == f"weft: cannot connect to {path}: No such file or directory"


def test_connect_over_a_unix_socket(children: Children, tmp_path: Path) -> None:
    """connect --unix talks to a server on a UNIX-domain socket."""
    path = tmp_path / "pubsub.sock"
    server = children.weft("serve", "pubsub", "--unix", str(path))
    server.listening()
    result = run("connect", "--unix", str(path), stdin=b"PUB a b\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"OK 0\r\n", b"")
    assert stop(server) == 0


def test_connect_idle_timeout(children: Children, listener: socket.socket) -> None:
    """--timeout ends a session in which nothing moves either way: one line, exit 1."""
    client = children.weft("connect", "--timeout", "0.5", "127.0.0.1", str(port_of(listener)))
    with accept(listener):
        assert client.wait() == 1
    port = port_of(listener)
    assert one_line(client.stderr) == (
        f"weft: connection to 127.0.0.1:{port}: nothing sent either way for 0.5 s"
    )


def test_connect_leaves_stdin_blocking(children: Children, listener: socket.socket) -> None:
    """The shared open file of stdin is non-blocking during the session and
    blocking again after it."""
    read_end, write_end = os.pipe()
    try:
        client = children.weft("connect", "127.0.0.1", str(port_of(listener)), stdin=read_end)
        with accept(listener) as conn:
            os.write(write_end, b"hi\n")
            assert receive_exactly(conn, b"hi\n") == b"hi\n"
            assert not os.get_blocking(read_end)
        assert client.wait() == 0
        assert os.get_blocking(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.drivers(requires=CONNECTS)
def test_connect_on_each_driver(children: Children, driver: str) -> None:
    """connect works on every driver that can run here."""
    server = children.weft("serve", "echo", "--port", "0")
    result = run("connect", "--driver", driver, "127.0.0.1", str(server.port()), stdin=b"round trip\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"round trip\n", b"")
    assert stop(server) == 0


# -------------------------------------------------- connection limit, idle


@pytest.mark.drivers(requires=SERVES)
@pytest.mark.parametrize(
    ("protocol", "busy"), [("echo", b"ERR server busy\r\n"), ("pubsub", b"ERR server busy\r\n")]
)
def test_max_connections_answers_busy(children: Children, driver: str, protocol: str, busy: bytes) -> None:
    """--max-connections 1: a second client gets the protocol's busy line and
    an EOF at once; stderr says the limit was reached, once."""
    server = children.weft("serve", protocol, "--port", "0", "--driver", driver, "--max-connections", "1")
    port = server.port()
    with connect(port) as first:
        probe = b"x\n" if protocol == "echo" else b"SUB news\n"
        first.sendall(probe)
        assert receive_exactly(first, b"x\n" if protocol == "echo" else b"OK\r\n")
        for _ in range(2):
            with connect(port) as refused:
                assert receive_to_eof(refused) == busy
        server.wait_for_stderr("at its limit of 1 connection")
    assert stop(server) == 0
    assert server.stderr.count("at its limit") == 1


def test_idle_timeout_on_the_blocking_driver(children: Children) -> None:
    """--idle-timeout closes a client that sends nothing (it reads an EOF); 0 (never) is accepted."""
    server = children.weft("serve", "echo", "--port", "0", "--driver", "blocking", "--idle-timeout", "0.2")
    with connect(server.port()) as idle:
        assert receive_to_eof(idle) == b""
    assert stop(server) == 0
    never = children.weft("serve", "echo", "--port", "0", "--driver", "blocking", "--idle-timeout", "0")
    with connect(never.port()) as client:
        client.sendall(b"fine")
        assert receive_exactly(client, b"fine") == b"fine"
    assert stop(never) == 0


# -------------------------------------------------------- errors and usage


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["serve"],
        ["serve", "ftp"],
        ["serve", "echo", "--port", "eighty"],
        ["serve", "echo", "--port", "65536"],
        ["serve", "echo", "--port", "8000", "--unix", "/tmp/x.sock"],
        ["serve", "echo", "--stdio", "--host", "127.0.0.1"],
        ["serve", "echo", "--driver", "no-such-driver"],
        ["serve", "echo", "--no-access-log"],
        ["serve", "echo", "--grace", "nan"],
        ["serve", "echo", "--grace", "-1"],
        ["serve", "echo", "--max-connections", "0"],
        ["serve", "echo", "--max-connections", "-2"],
        ["serve", "echo", "--max-connections", "many"],
        ["serve", "echo", "--max-connections", "2.5"],
        ["serve", "echo", "--idle-timeout", "5"],
        ["serve", "echo", "--driver", "asyncio", "--idle-timeout", "5"],
        ["serve", "echo", "--driver", "blocking", "--idle-timeout", "-1"],
        ["serve", "echo", "--driver", "blocking", "--idle-timeout", "nan"],
        ["serve", "echo", "--driver", "blocking", "--idle-timeout", "soon"],
        ["serve", "echo", "--stdio", "--max-connections", "3"],
        ["connect"],
        ["connect", "127.0.0.1"],
        ["connect", "127.0.0.1", "8000", "--unix", "/tmp/x.sock"],
        ["connect", "127.0.0.1", "8000", "--timeout", "0"],
    ],
    ids=lambda args: " ".join(args) or "(nothing)",
)
def test_bad_arguments(args: list[str]) -> None:
    """Bad arguments: one line on stderr, nothing on stdout, exit 2."""
    result = run(*args)
    assert (result.returncode, result.stdout) == (2, b"")
    assert one_line(result.stderr).startswith("weft")


def test_port_in_use() -> None:
    """A port in use: one clear line, no traceback, exit 1; -v shows the traceback too."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = port_of(taken)
        result = run("serve", "echo", "--port", str(port))
        verbose = run("serve", "echo", "--port", str(port), "-v")
    message = f"weft: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert (result.returncode, one_line(result.stderr)) == (1, message)
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr.decode()
    assert verbose.stderr.decode().splitlines()[-1] == message


def test_serve_on_a_unix_socket_in_a_missing_directory(tmp_path: Path) -> None:
    """A missing directory: one line naming the path, exit 1."""
    path = tmp_path / "missing" / "s.sock"
    result = run("serve", "echo", "--unix", str(path))
    assert result.returncode == 1
    assert one_line(result.stderr) == f"weft: cannot listen on {path}: No such file or directory"


def test_verbose_goes_before_or_after_the_command() -> None:
    """`weft -v serve ...` and `weft serve ... -v` both show the traceback."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(port_of(taken))
        for args in (["-v", "serve", "echo", "--port", port], ["serve", "-v", "echo", "--port", port]):
            assert b"Traceback" in run(*args).stderr


def test_version() -> None:
    """--version names weft and its version."""
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("weft ")


# ----------------------------------------------------------------- drivers


def test_drivers_lists_every_driver() -> None:
    """`weft drivers`: a header, then each driver with whether it can run here,
    and last the `auto` choice."""
    result = run("drivers")
    assert (result.returncode, result.stderr) == (0, b"")
    header, *rows, auto = result.stdout.decode().splitlines()
    assert header.split()[:3] == ["DRIVER", "AVAILABLE", "DESCRIPTION"]
    assert [row.split()[:2] for row in rows] == [
        [name, "yes" if info.available() else "no"] for name, info in DRIVERS.items()
    ]
    assert rows[0].startswith("reactor ")
    # The reactor's row says which system calls it makes (docs/performance.md, "The C accelerator").
    assert rows[0].endswith(f"; {accelerator.describe()}")
    assert auto.split()[:2] == ["auto", "yes"]


def test_drivers_says_which_extra_installs_a_missing_dependency(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A driver whose dependency is missing is listed as unavailable, with the pip extra."""

    def never_opened() -> object:
        raise AssertionError("listing must not open a driver")

    missing = DriverInfo("fancy", "a driver on fancyloop", ("weft_no_such_module",), "fancy", never_opened)  # type: ignore[arg-type]
    monkeypatch.setitem(DRIVERS, "fancy", missing)
    assert cli.main(["drivers"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fancy ")]
    assert row.split()[:2] == ["fancy", "no"]
    assert row.endswith("a driver on fancyloop; needs weft_no_such_module: pip install 'weft[fancy]'")


# ----------------------------------------------------------- console script


def test_console_script_is_declared() -> None:
    """pyproject declares `weft` as the command line's main()."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"weft": "weft._cli:main"}


def test_console_script_runs() -> None:
    """The installed `weft` script (next to this Python) runs the same command line."""
    script = shutil.which("weft", path=str(Path(sys.executable).parent))
    assert script is not None, "no `weft` script next to python: reinstall with pip install -e '.[dev]'"
    result = subprocess.run([script, "drivers"], capture_output=True, timeout=TIMEOUT, check=False)
    assert (result.returncode, result.stdout) == (0, run("drivers").stdout)


def test_the_docs_busy_reply_example_runs() -> None:
    """docs/cli.md's serve(..., max_connections=, busy_reply=) example imports
    and defines what it says (it serves only when run as a script)."""
    import re

    page = (ROOT / "docs" / "cli.md").read_text()
    (block,) = [code for code in re.findall(r"```python\n(.*?)```", page, re.S) if "busy_reply=" in code]
    scope: dict[str, object] = {"__name__": "docs"}
    exec(compile(block, "docs/cli.md", "exec"), scope)
    assert scope["busy_response"]().startswith(b"HTTP/1.1 503 Service Unavailable\r\n")  # type: ignore[operator]
