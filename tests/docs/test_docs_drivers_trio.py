"""docs/drivers-trio.md as written: every Python example runs and prints what its comments say,
and its table of Trio's streams under weft's suite agrees with the test that produces it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.drivers.test_trio_streams import DIFFERENCES
from tests.support import TIMEOUT

DOC = Path(__file__).resolve().parents[2] / "docs" / "drivers-trio.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def promised_output(code: str) -> list[str]:
    """What the example says it prints: the comment after each ``print(...)``."""
    return re.findall(r"^\s*print\(.*\)  # (.*)$", code, re.M)


def test_the_page_has_its_four_examples() -> None:
    """A runtime of its own, one in a Trio program, a Trio stream under weft, a weft stream under Trio."""
    blocks = examples()
    assert len(blocks) == 4
    assert 'open_runtime("trio")' in blocks[0]
    assert "open_trio_runtime" in blocks[1]
    assert "connect_stream" in blocks[2]
    assert "TrioStream(" in blocks[3]


@pytest.mark.parametrize("index", range(4))
def test_each_example_prints_what_it_says(index: int) -> None:
    """The example, run as a script, exits 0 and prints its comments' values, in order."""
    code = examples()[index]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT * 2, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == promised_output(code)


def test_the_differences_listed_are_those_the_suite_finds() -> None:
    """Each check the page names as failing on Trio's memory streams is one the
    test (tests/drivers/test_trio_streams.py) expects to fail, and the other way round."""
    text = DOC.read_text()
    start = text.index("The checks the in-memory streams fail")
    end = text.index("### Where the two contracts")
    # A check's name has words joined by underscores; the page's other code names fewer.
    named = {name for name in re.findall(r"`([a-z_]+)`", text[start:end]) if name.count("_") > 2}
    assert named == set().union(*DIFFERENCES.values())
