r"""The examples' docstrings say what to type, and what they say can be copied.

A docstring is read in two places: in the file (a reader copies a command
from it) and as ``__doc__`` (``help()``, ``pydoc``).  Both must show the same
text, so a docstring with a backslash in it (``printf 'hello\n'``, a shell
line continuation) is a raw string.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.processes import ROOT
from weft.protocols.tls import server_context

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def docstring_as_written(path: Path) -> tuple[str, str]:
    """The module docstring of ``path`` as the file shows it, and as Python reads it."""
    source = path.read_text()
    tree = ast.parse(source)
    literal = ast.get_source_segment(source, tree.body[0])
    text = ast.get_docstring(tree, clean=False)
    if literal is None or text is None:
        raise AssertionError(f"{path.name} has no module docstring")
    return literal.lstrip("rR")[3:-3], text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_each_example_docstring_reads_as_it_is_written(path: Path) -> None:
    """No escape sequence changes the docstring: what help() shows is what the file shows."""
    written, read = docstring_as_written(path)
    assert read == written


def test_the_tls_example_certificate_command_works_when_copied(tmp_path: Path) -> None:
    """The openssl command in examples/tls_echo_server.py's docstring, pasted
    into a shell as the file shows it, makes a certificate and key that weft loads."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    written, _ = docstring_as_written(ROOT / "examples" / "tls_echo_server.py")
    command = re.search(r"^\s*(openssl req (?:.*\\\n)*.*)$", written, re.M)
    assert command is not None
    done = subprocess.run(
        ["bash", "-c", command.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cert.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    server_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))  # raises if they do not match
