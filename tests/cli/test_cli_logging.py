"""The command line's logging, as a person steers it: ``-q``, ``-v``/``-vv``,
``--log-level``, ``--log-file``, ``--log-format text|json``; and the access
log's channel (``weft.access``) through the same handler."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.processes import WEFT, Children, connect, receive_exactly, receive_to_eof, stop
from weft._cli import logs
from weft._cli.commands import build_parser


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*WEFT, *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=False)


def echo_once(port: int) -> None:
    with connect(port) as client:
        client.sendall(b"ping\n")
        assert receive_exactly(client, b"ping\n") == b"ping\n"
        client.shutdown(socket.SHUT_WR)
        assert receive_to_eof(client) == b""


# ------------------------------------------------------------ levels


def test_default_is_info(children: Children) -> None:
    """Without options: info lines (the stop), no debug lines (connections)."""
    server = children.weft("serve", "echo", "--port", "0")
    echo_once(server.port())
    assert stop(server) == 0
    # The connection may still be closing at the signal: either stopping line will do.
    (stopping,) = server.stderr.splitlines()[1:]
    assert stopping.startswith("weft: stopping")
    assert "connection open" not in server.stderr


@pytest.mark.parametrize("quiet", [["-q"], ["--log-level", "warning"], ["--log-level", "WARNING"]])
def test_quiet_hides_info(children: Children, quiet: list[str]) -> None:
    """-q (or --log-level warning): only warnings and errors; the listening
    line, which is the command's output rather than a log line, stays."""
    server = children.weft("serve", "echo", "--port", "0", *quiet)
    echo_once(server.port())
    assert stop(server) == 0
    assert server.stderr.splitlines() == [f"listening on 127.0.0.1:{server.port()}"]


def test_verbose_logs_connections_at_debug(children: Children) -> None:
    """-v: each connection's open and close, on the driver's logger."""
    server = children.weft("serve", "echo", "--port", "0", "-v")
    port = server.port()
    echo_once(port)
    server.wait_for_stderr(rf"^weft: connection closed with 127\.0\.0\.1:\d+ \(local 127\.0\.0\.1:{port}\)$")
    assert stop(server) == 0
    assert re.search(
        rf"^weft: connection open with 127\.0\.0\.1:\d+ \(local 127\.0\.0\.1:{port}\)$", server.stderr, re.M
    )


def test_very_verbose_adds_other_libraries(children: Children) -> None:
    """-vv: other libraries' debug logs too, under their own names (asyncio's, on the asyncio driver)."""
    server = children.weft("serve", "echo", "--port", "0", "--driver", "asyncio", "-vv")
    server.port()
    assert stop(server) == 0
    assert re.search(r"^asyncio: Using selector: \w+$", server.stderr, re.M), server.stderr
    once = children.weft("serve", "echo", "--port", "0", "--driver", "asyncio", "-v")
    once.port()
    assert stop(once) == 0
    assert "asyncio:" not in once.stderr


def test_log_level_wins_over_quiet(children: Children) -> None:
    """--log-level debug with -q: debug, as --log-level says."""
    server = children.weft("serve", "echo", "--port", "0", "-q", "--log-level", "debug")
    echo_once(server.port())
    server.wait_for_stderr(r"^weft: connection closed with ")
    assert stop(server) == 0


@pytest.mark.parametrize(
    ("argv", "level", "everything"),
    [
        (["serve", "echo"], logging.INFO, False),
        (["-v", "serve", "echo"], logging.DEBUG, False),
        (["-v", "serve", "echo", "-v"], logging.DEBUG, True),
        (["serve", "echo", "-vv"], logging.DEBUG, True),
        (["-q", "serve", "echo", "-q"], logging.ERROR, False),
        (["-qqq", "drivers"], logging.ERROR, False),
        (["-v", "serve", "echo", "-q"], logging.INFO, False),
        (["--log-level", "error", "serve", "echo", "-vv"], logging.ERROR, True),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else str(value),
)
def test_options_count_before_and_after_the_command(argv: list[str], level: int, everything: bool) -> None:
    """-v and -q count wherever they are given; --log-level overrides the count's level."""
    settings = logs.settings_from(build_parser().parse_args(argv))
    assert (settings.level, settings.everything) == (level, everything)


def test_a_bad_log_level_is_a_usage_error() -> None:
    result = run("serve", "echo", "--log-level", "loud")
    assert result.returncode == 2
    assert "argument --log-level: invalid choice: 'loud'" in result.stderr.decode()


# -------------------------------------------------------------- a file


def test_log_file(children: Children, tmp_path: Path) -> None:
    """--log-file FILE: the log goes there (appended, dated, with level and
    logger); stderr keeps only the listening line."""
    path = tmp_path / "weft.log"
    path.write_text("an earlier line\n")
    server = children.weft("serve", "echo", "--port", "0", "--log-file", str(path))
    server.port()
    assert stop(server) == 0
    assert server.stderr.splitlines() == [f"listening on 127.0.0.1:{server.port()}"]
    first, second = path.read_text().splitlines()
    assert first == "an earlier line"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO weft\.drivers: stopping", second)


def test_a_log_file_that_cannot_be_opened(tmp_path: Path) -> None:
    """A log file in a missing directory: one line, exit 2, before serving."""
    path = tmp_path / "missing" / "weft.log"
    result = run("serve", "echo", "--port", "0", "--log-file", str(path))
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [f"weft: --log-file {path}: No such file or directory"]


def test_a_fatal_error_goes_to_the_log_file_and_stderr(tmp_path: Path) -> None:
    """A failure with --log-file: the one line on stderr (the person at the
    terminal sees why), and an ERROR record in the file."""
    path = tmp_path / "weft.log"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("serve", "echo", "--port", str(port), "--log-file", str(path))
    message = f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [f"weft: {message}"]
    assert path.read_text().splitlines()[-1].endswith(f" ERROR weft: {message}")


# ---------------------------------------------------------------- JSON


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line that is not the listening line, each parsed (failing if one is not JSON)."""
    return [json.loads(line) for line in text.splitlines() if not line.startswith("listening on ")]


def test_json_lines(children: Children) -> None:
    """--log-format json: one object per line, with time, level, logger,
    message, and the record's extras (a connection's event, peer and local address)."""
    server = children.weft("serve", "echo", "--port", "0", "--log-format", "json", "-v")
    port = server.port()
    echo_once(port)
    server.wait_for_stderr(r'"event": "close"')
    assert stop(server) == 0
    records = json_lines(server.stderr)
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(record["time"]))
    opened = next(record for record in records if record.get("event") == "open")
    assert opened["level"] == "DEBUG"
    assert opened["logger"] == "weft.drivers.reactor"
    assert opened["local"] == f"127.0.0.1:{port}"
    assert str(opened["peer"]).startswith("127.0.0.1:")
    assert records[-1] == {**records[-1], "level": "INFO", "logger": "weft.drivers", "message": "stopping"}


def test_json_fatal_error() -> None:
    """A failure in JSON mode is a JSON record on stderr (level ERROR, the
    exception's traceback in ``exception``), not a plain line."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run("serve", "echo", "--port", str(port), "--log-format", "json", "-qq")
    assert result.returncode == 1
    (record,) = json_lines(result.stderr.decode())
    assert record["level"] == "ERROR"
    assert record["message"] == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "Traceback" in str(record["exception"])


# ----------------------------------------------------- the access log


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """The weft and root loggers as they were, after a test that configures them in-process."""
    weft, root = logging.getLogger("weft"), logging.getLogger()
    saved = (weft.handlers[:], weft.level, weft.propagate, root.handlers[:], root.level)
    try:
        yield
    finally:
        weft.handlers[:], weft.level, weft.propagate, root.handlers[:], root.level = saved


@pytest.mark.usefixtures("restored_logging")
def test_the_access_log_goes_through_the_same_handler() -> None:
    """A line on ``weft.access`` is written as it is in text (Common Log Format
    carries its own date), and as a record like any other in JSON."""
    line = '127.0.0.1 - - [06/Dec/2025:21:00:00 +0000] "GET / HTTP/1.1" 200 5'
    for format_, expected in (("text", line), ("json", None)):
        stream = io.StringIO()
        logs.configure(logs.LogSettings(format=format_), stream)
        logging.getLogger(logs.ACCESS_LOGGER).info(line)
        logging.getLogger("weft.drivers").info("stopping")
        written = stream.getvalue().splitlines()
        if expected is not None:
            assert written == [line, "weft: stopping"]
        else:
            access = json.loads(written[0])
            assert (access["logger"], access["message"], access["level"]) == ("weft.access", line, "INFO")
    assert logs.ACCESS_LOGGER == "weft.access"


@pytest.mark.usefixtures("restored_logging")
def test_text_sums_up_an_exception_on_one_line_unless_verbose() -> None:
    """An exception logged with a record: one line without -v, its traceback with it."""
    for settings, has_traceback in (
        (logs.LogSettings(), False),
        (logs.LogSettings(level=logging.DEBUG), True),
    ):
        stream = io.StringIO()
        logs.configure(settings, stream)
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            logging.getLogger("weft.drivers").exception("a protocol failed")
        text = stream.getvalue()
        assert text.startswith(
            "weft: a protocol failed (ConnectionResetError: Connection reset by peer)"
        ) != (has_traceback)
        assert ("Traceback (most recent call last)" in text) == has_traceback
