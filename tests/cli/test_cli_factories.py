"""``weft serve MODULE:FACTORY``: a person's own protocol, served as ``uvicorn mod:app`` serves an app.

Run for real (``python -m weft`` as a child process, from the repository's
top, where ``examples`` is importable), on every driver, for both kinds:
a protocol class (examples/shout.py's ``ShoutProtocol``) and an ``async
def`` stream handler (its ``shout``); and each mistake, one line and exit 2.
"""

from __future__ import annotations

import socket
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.drivers import SERVES
from tests.support.processes import WEFT, Children, connect, receive_exactly, receive_to_eof, stop
from tests.support.tls import HOSTNAME, certificates
from tests.support.tls import client_context as tls_client_context
from weft._cli import factories

KINDS = ["examples.shout:ShoutProtocol", "examples.shout:shout"]


def run(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m weft ARGS`` to completion (from the repository's top unless ``cwd``)."""
    return subprocess.run(
        [*WEFT, *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
        cwd=cwd or Path(__file__).resolve().parents[2],
    )


def one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.drivers(requires=SERVES)
@pytest.mark.parametrize("spec", KINDS)
def test_serve_your_own_protocol_on_each_driver(children: Children, driver: str, spec: str) -> None:
    """Both kinds serve on every driver: lines come back in capitals, the
    client's EOF ends the connection, SIGTERM stops the server with 0."""
    server = children.weft("serve", spec, "--port", "0", "--driver", driver)
    with connect(server.port()) as client:
        client.sendall(b"hello\nweft\n")
        assert receive_exactly(client, b"HELLO\nWEFT\n") == b"HELLO\nWEFT\n"
        client.shutdown(socket.SHUT_WR)
        assert receive_to_eof(client) == b""
    assert stop(server) == 0


@pytest.mark.parametrize("spec", KINDS)
def test_the_factory_option_is_the_same_as_the_positional(spec: str) -> None:
    """--factory MODULE:FACTORY serves what the positional form serves (here over stdio)."""
    result = run("serve", "--factory", spec, "--stdio", stdin=b"one\ntwo\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"ONE\nTWO\n", b"")


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("examples.shout:ShoutProtocol", "a protocol factory: called once per connection"),
        (
            "examples.shout:shout",
            "an async def stream handler: awaited with a stream, one task per connection",
        ),
    ],
)
def test_verbose_says_which_kind_it_serves(spec: str, kind: str) -> None:
    """-v names the kind the spec was taken for, so a person can tell them apart."""
    result = run("serve", spec, "--stdio", "-v", stdin=b"x\n")
    assert result.returncode == 0
    assert f"weft: serving {spec}, {kind}" in result.stderr.decode().splitlines()


@pytest.mark.parametrize("spec", KINDS)
def test_your_own_protocol_over_tls(children: Children, spec: str) -> None:
    """--tls puts either kind behind TLS: a verifying client gets its lines back in capitals."""
    certs = certificates()
    server = children.weft(
        "serve", spec, "--port", "0", "--tls", "--cert", certs.cert_file, "--key", certs.key_file
    )
    raw = socket.create_connection(("127.0.0.1", server.port()), timeout=TIMEOUT)
    with tls_client_context().wrap_socket(raw, server_hostname=HOSTNAME) as client:
        client.sendall(b"secret\n")
        assert receive_exactly(client, b"SECRET\n") == b"SECRET\n"
    assert stop(server) == 0


# ------------------------------------------------------------------ errors


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory of small modules, each with one mistake (or none)."""
    write_module(tmp_path, "imports_a_missing_module", "import weft_no_such_module_at_all\n")
    write_module(tmp_path, "does_not_parse", "def broken(:\n")
    write_module(tmp_path, "fails_on_import", "raise RuntimeError('no config file')\n")
    write_module(
        tmp_path,
        "mixed",
        """
        from weft.protocols import EchoProtocol

        NOT_CALLABLE = 42


        class NeedsAHub:
            def __init__(self, hub):
                self.hub = hub


        def sync_handler(stream):
            return None


        async def handler_without_stream():
            return None


        async def async_generator(stream):
            yield stream


        def returns_none():
            return None


        def echo():
            return EchoProtocol()
        """,
    )
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a:b:c"], "weft: 'a:b:c' is not MODULE:FACTORY (as in examples.shout:ShoutProtocol)"),
        (["mixed:"], "weft: 'mixed:' is not MODULE:FACTORY (as in examples.shout:ShoutProtocol)"),
        (["--factory", "mixed"], "weft: 'mixed' is not MODULE:FACTORY (as in examples.shout:ShoutProtocol)"),
        (
            ["weft_nowhere:app"],
            "weft: no module named 'weft_nowhere' (looked in {dir} and the installed packages; "
            "--app-dir DIR looks elsewhere)",
        ),
        (
            ["weft_nowhere.sub:app"],
            "weft: no module named 'weft_nowhere.sub' (looked in {dir} and the installed "
            "packages; --app-dir DIR looks elsewhere)",
        ),
        (
            ["imports_a_missing_module:app"],
            "weft: importing 'imports_a_missing_module' failed: No module named 'weft_no_such_module_at_all'",
        ),
        (
            ["does_not_parse:app"],
            "weft: importing 'does_not_parse' failed: SyntaxError: invalid syntax "
            "({dir}/does_not_parse.py, line 1)",
        ),
        (["fails_on_import:app"], "weft: importing 'fails_on_import' failed: RuntimeError: no config file"),
        (["mixed:nothing"], "weft: mixed:nothing: module 'mixed' has no attribute 'nothing'"),
        (
            ["mixed:NOT_CALLABLE"],
            "weft: mixed:NOT_CALLABLE is a int, not callable: give a protocol class or "
            "factory, or an async def stream handler",
        ),
        (
            ["mixed:NeedsAHub"],
            "weft: mixed:NeedsAHub needs arguments (hub): a protocol factory is called with "
            "none (wrap it in a function that supplies them), and a stream handler must be async def",
        ),
        (
            ["mixed:sync_handler"],
            "weft: mixed:sync_handler needs arguments (stream): a protocol factory is called with none "
            "(wrap it in a function that supplies them), and a stream handler must be async def",
        ),
        (
            ["mixed:handler_without_stream"],
            "weft: mixed:handler_without_stream is async def, so a stream "
            "handler: it must take one argument, the stream",
        ),
        (
            ["mixed:async_generator"],
            "weft: mixed:async_generator is an async generator: a stream handler is a plain async def",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_a_mistake_is_one_line_and_exit_2(app_dir: Path, args: list[str], message: str) -> None:
    """Each mistake in the spec or the module it names: one line saying what
    and what to do, nothing on stdout, exit 2, no traceback.  A module that
    imports something missing is told apart from a module that is missing."""
    result = run("serve", *args, "--stdio", cwd=app_dir)
    assert (result.returncode, result.stdout) == (2, b"")
    assert one_line(result.stderr) == message.format(dir=app_dir)


def test_app_dir_says_where_modules_are_found(app_dir: Path) -> None:
    """--app-dir DIR imports from DIR, wherever weft runs; a missing DIR is one line, exit 2."""
    result = run("serve", "mixed:echo", "--app-dir", str(app_dir), "--stdio", stdin=b"ping\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"ping\n", b"")
    missing = run("serve", "mixed:echo", "--app-dir", str(app_dir / "nowhere"), "--stdio")
    assert missing.returncode == 2
    assert one_line(missing.stderr) == f"weft: --app-dir {app_dir / 'nowhere'}: not a directory"


def test_verbose_shows_the_import_traceback(app_dir: Path) -> None:
    """-v adds the traceback of what went wrong inside the module; the last line is the same."""
    result = run("serve", "fails_on_import:app", "--stdio", "-v", cwd=app_dir)
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "Traceback (most recent call last)" in stderr
    assert "RuntimeError: no config file" in stderr
    assert stderr.splitlines()[-1] == "weft: importing 'fails_on_import' failed: RuntimeError: no config file"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["echo", "--factory", "mixed:echo"], "give 'echo' or --factory mixed:echo, not both"),
        (["ftp"], "unknown protocol 'ftp': choose echo, pubsub or http, or give your own as MODULE:FACTORY"),
        ([], "say what to serve: echo, pubsub, http, or MODULE:FACTORY"),
        (["echo", "--app-dir", "."], "--app-dir goes with MODULE:FACTORY"),
        (["mixed:echo", "--root", "."], "--root goes with serve http"),
        (["mixed:echo", "--udp"], "--udp serves echo only (mixed:echo needs a stream)"),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_usage_mistakes(app_dir: Path, args: list[str], message: str) -> None:
    """What goes with what: one usage line, exit 2."""
    result = run("serve", *args, cwd=app_dir)
    assert result.returncode == 2
    assert one_line(result.stderr) == f"weft serve: {message} (see 'weft serve --help')"


def test_a_factory_returning_nothing_fails_its_connection_only(app_dir: Path) -> None:
    """A factory that returns None (a missing return) ends that connection
    with a line naming the spec, not with an AttributeError deep in a driver."""
    result = run("serve", "mixed:returns_none", "--stdio", cwd=app_dir)
    assert "mixed:returns_none returned None, not a protocol (a missing return?)" in result.stderr.decode()


def test_the_kinds_are_told_apart_before_serving(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load() says which kind each callable is: a class or function is a
    protocol factory, an async def a stream handler."""
    monkeypatch.syspath_prepend(str(app_dir))
    assert factories.load("mixed:echo", str(app_dir)).kind == factories.PROTOCOL_FACTORY
    assert factories.load("examples.shout:ShoutProtocol").kind == factories.PROTOCOL_FACTORY
    assert factories.load("examples.shout:shout").is_stream_handler
