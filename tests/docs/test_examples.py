"""Every example in examples/ runs, as a reader would run it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: A line each script must print: proof it did its job, not just that it ran.
EXPECTED = {
    "parse_lines.py": "refused: line longer than 20 bytes",
    "idle_timeout.py": "closed after 59 fake seconds",
    "pubsub_in_memory.py": "alice got b'news' b'weft 0.1 is out'",
    "echo_on_asyncio.py": "weft client got: and back",
    "echo_on_completion.py": "echoed: hello, io_uring\nechoed over TLS: hello over TLS",
    "echo_on_twisted.py": "echoed: hello, weft\nweft client got: and back",
    "echo_on_trio.py": "weft client got: and back\ntrio code over a weft stream: as trio",
    "process_lines.py": "answers [b'HELLO', b'WEFT'], exit status 0",
    "http_fetch.py": "answers: 200 hello, weft; 200 hello, again",
    "blocking_pubsub_client.py": "got b'news' b'weft on threads'",
    "blocking_http_client.py": "answers: 200 hello, threads; 200 hello, again",
    "coroutines_on_the_fake_clock.py": "greeted alice, bob; said bye at 42 fake seconds",
    "udp_echo.py": "echoed by udp 127.0.0.1: hello weft",
    "asyncio_on_weft_loop.py": (
        "asyncio server: HELLO ASYNCIO\nweft protocol on the same loop: hello weft\n"
        "subprocess: hello child, exit status 0"
    ),
    "dns_on_a_lossy_network.py": "resolved 3 of 3; the network lost 5",
    "twisted_on_weft.py": (
        "weft's HTTP client got from twisted.web: 200 hello from twisted.web\n"
        "a Twisted client got from weft's echo: hello weft\n"
        "one loop: WeftReactor on Reactor"
    ),
    "coroutines_with_asyncio.py": (
        "heard: HELLO FROM WEFT\nasyncio.wait_for cancelled the weft task: True\na weft callback got: later"
    ),
}


#: Scripts run once per set of arguments, each with what it must print (a
#: regular expression for the whole output).
#: three_frameworks.py: one process per host, since a Twisted reactor is
#: installed once per process; the three clients each hear all three.
THREE_HEARD = "".join(
    f"{name} client heard: hello from Trio, hello from Twisted, hello from weft\n"
    for name in ("weft", "Twisted", "Trio")
)
WITH_ARGUMENTS: dict[tuple[str, ...], str] = {
    ("three_frameworks.py", "--host", "weft"): (
        "WeftReactor on weft's Reactor hosts all three\n" + THREE_HEARD
    ),
    # Twisted's default reactor: epoll on Linux, poll or select elsewhere.
    ("three_frameworks.py", "--host", "twisted"): (r"Twisted's \w+Reactor hosts all three\n" + THREE_HEARD),
}

#: Servers run until stopped: tests/docs/test_example_servers.py talks to them.
SERVERS = {
    "echo_server.py",
    "echo_streams.py",
    "http_hello.py",
    "pubsub_server.py",
    "pubsub_streams.py",
    "tls_echo_server.py",
}


#: Modules served by the command line (``weft serve MODULE:FACTORY``), not
#: run as scripts: each factory with the input it is given over --stdio and
#: what it must answer (tests/cli/test_cli_factories.py serves them on every driver).
SERVED_BY_THE_CLI: dict[str, list[tuple[str, bytes, bytes]]] = {
    "shout.py": [
        ("ShoutProtocol", b"hello\nweft\n", b"HELLO\nWEFT\n"),
        ("shout", b"hello\nweft\n", b"HELLO\nWEFT\n"),
    ],
}


def test_every_example_is_checked() -> None:
    """Each script in examples/ is listed here or is a pytest file run below."""
    scripts = {path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("test_")}
    assert scripts == set(EXPECTED) | SERVERS | {name for name, *_ in WITH_ARGUMENTS} | set(SERVED_BY_THE_CLI)


@pytest.mark.parametrize(
    ("name", "factory", "given", "answer"),
    [(name, *case) for name, cases in sorted(SERVED_BY_THE_CLI.items()) for case in cases],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_example_served_by_the_cli(name: str, factory: str, given: bytes, answer: bytes) -> None:
    """``weft serve examples.MODULE:FACTORY`` from the repository's top, as
    the module's docstring says, answers as it should (over --stdio here)."""
    spec = f"examples.{name.removesuffix('.py')}:{factory}"
    docstring = (EXAMPLES / name).read_text()
    assert f"weft serve {spec}" in docstring
    result = subprocess.run(
        [sys.executable, "-m", "weft", "serve", spec, "--stdio"],
        input=given,
        capture_output=True,
        timeout=60,
        check=False,
        cwd=EXAMPLES.parent,
    )
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == answer


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str) -> None:
    """The script exits 0 and prints what it is meant to show."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert EXPECTED[name] in result.stdout


@pytest.mark.parametrize("command", sorted(WITH_ARGUMENTS), ids=" ".join)
def test_example_runs_with_arguments(command: tuple[str, ...]) -> None:
    """The script, run with these arguments, exits 0 and prints exactly what it is
    meant to show."""
    name, *arguments = command
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(WITH_ARGUMENTS[command], result.stdout), result.stdout


def test_example_test_file_passes() -> None:
    """examples/test_a_protocol.py, the testing how-to, passes under pytest."""
    tests = sorted(str(path) for path in EXAMPLES.glob("test_*.py"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
