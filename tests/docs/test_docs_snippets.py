"""Every Python block of the docs runs as written.

Each Python block of docs/*.md and README.md (see tests/support/docs.py)
runs in a process of its own, in an empty directory, and must exit 0 with
nothing on stderr but what its ``# stderr: ...`` comments say it logs: its
imports are in it, it talks to 127.0.0.1 only, and a server in it stops
itself.  A block marked as an excerpt of an example instead has its lines in
that file, and the file runs under a test of its own
(tests/docs/test_examples.py and tests/docs/test_example_servers.py run
every example).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.test_examples import EXPECTED, SERVERS, WITH_ARGUMENTS
from tests.support import TIMEOUT
from tests.support.docs import Block, python_blocks
from tests.support.processes import ROOT

RUNNABLE = [block for block in python_blocks() if block.excerpt_of is None]
EXCERPTS = [block for block in python_blocks() if block.excerpt_of is not None]

#: The files an excerpt may come from: the examples, each run by a test of its own.
RUN_ELSEWHERE = {f"examples/{name}" for name in (*EXPECTED, *SERVERS, *(name for name, *_ in WITH_ARGUMENTS))}


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.name)
def test_each_python_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    """The block, saved as a script, exits 0 in a fresh process, and writes on
    stderr only the lines its ``# stderr:`` comments show."""
    script = tmp_path / "snippet.py"
    script.write_text(block.text)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    expected = "".join(f"{line}\n" for line in re.findall(r"^\s*# stderr: (.*)$", block.text, re.M))
    assert (done.returncode, done.stderr) == (0, expected), f"{block.name}\n{done.stderr}"


def code_lines(text: str) -> list[str]:
    """The lines of ``text`` as an excerpt is compared: stripped, without an
    inline comment (two spaces, then ``#``), blank lines dropped."""
    stripped = (line.split("  # ")[0].strip() for line in text.splitlines())
    return [line for line in stripped if line]


def missing_line(excerpt: str, source: str) -> str | None:
    """The first line of ``excerpt`` that ``source`` lacks after the lines
    before it matched (``...`` lines match anything); None if every one is there."""
    lines = code_lines(source)
    position = 0
    for line in code_lines(excerpt):
        if line == "...":
            continue
        if line not in lines[position:]:
            return line
        position = lines.index(line, position) + 1
    return None


@pytest.mark.parametrize("block", EXCERPTS, ids=lambda block: block.name)
def test_each_excerpt_is_in_the_file_it_names(block: Block) -> None:
    """The named file is an example run by a test of its own, and the
    excerpt's lines are its lines, in the same order (``...`` skips some)."""
    assert block.excerpt_of in RUN_ELSEWHERE, f"{block.name}: {block.excerpt_of} is not an example that runs"
    missing = missing_line(block.text, (ROOT / block.excerpt_of).read_text())
    assert missing is None, f"{block.name}: not in {block.excerpt_of}, or not in its order: {missing!r}"


def test_the_excerpt_check_finds_a_missing_or_misplaced_line() -> None:
    """Comments and indentation aside, an excerpt matches only lines of its file, in order."""
    source = "def f():\n    a = 1\n    b = 2  # two\n\n    c = 3\n"
    assert missing_line("a = 1\n...\nc = 3  # three\n", source) is None
    assert missing_line("a = 1\nd = 4\n", source) == "d = 4"
    assert missing_line("c = 3\nb = 2\n", source) == "b = 2"


def test_the_python_blocks_pass_mypy_strict(tmp_path: Path) -> None:
    """Every block that runs is also type-checked, as the repository's code is:
    ``mypy --strict`` with pyproject.toml's settings (one run over them all;
    Twisted's untyped functions may be called from a block that imports
    Twisted, as from the repository's Twisted programs)."""
    config = [
        "[mypy]",
        "strict = True",
        "warn_unreachable = True",
        f"mypy_path = {ROOT / '.mypy-path'}:{ROOT}",
        f"cache_dir = {tmp_path / 'cache'}",
        "[mypy-trustme.*,trustme,zope.*,zope]",
        "ignore_missing_imports = True",
        # weft itself is checked by the repository's own run, with its own overrides.
        "[mypy-weft.*]",
        "follow_imports = silent",
    ]
    modules = []
    for block in RUNNABLE:
        module = re.sub(r"\W", "_", block.name)
        (tmp_path / f"{module}.py").write_text(block.text)
        modules.append(str(tmp_path / f"{module}.py"))
        if re.search(r"^\s*from twisted|^\s*import twisted", block.text, re.M):
            config += [f"[mypy-{module}]", "disallow_untyped_calls = False"]
    (tmp_path / "mypy.ini").write_text("\n".join(config) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini"), *modules],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


#: The calls that reach a host, and a string literal among their arguments.
_HOST_CALL = re.compile(
    r"\b(?:connect_tcp|open_tcp|open_tcp_stream|open_connection|listen_tcp|serve_tcp|start_server"
    r"|create_server|TCP4ClientEndpoint|open_udp)\((?P<arguments>[^()]*(?:\([^()]*\)[^()]*)*)\)"
)


def hosts_named(code: str) -> set[str]:
    """The hosts (string literals) that ``code`` listens on or connects to."""
    return {
        host
        for call in _HOST_CALL.finditer(code)
        for host in re.findall(r"\"([^\"]*)\"", call.group("arguments"))
    }


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.name)
def test_each_python_block_stays_on_this_machine(block: Block) -> None:
    """A block listens on and connects to loopback addresses only (127.0.0.1; the
    memory network's DNS server at 127.0.0.53)."""
    assert [host for host in hosts_named(block.text) if not is_loopback(host)] == []


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address of this machine's loopback (a name is not)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def test_a_host_elsewhere_is_noticed() -> None:
    """The check reads the host out of the calls the docs make."""
    code = 'runtime.connect_tcp(lambda: client, "example.org", 80)\nopen_udp(runtime, ("127.0.0.1", 53))\n'
    assert hosts_named(code) == {"example.org", "127.0.0.1"}
    assert [is_loopback(host) for host in ("127.0.0.1", "example.org", "10.0.0.5")] == [True, False, False]
