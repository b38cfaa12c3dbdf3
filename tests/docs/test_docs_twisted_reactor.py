"""docs/twisted.md: its examples run as written, each in a child process
(installing a Twisted reactor is global, so this process never does it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TIMEOUT

pytest.importorskip("twisted.internet.posixbase", reason="needs the twisted extra")

DOC = Path(__file__).resolve().parents[2] / "docs" / "twisted.md"

#: What each example prints, in the order they appear.
PRINTS = [
    "weft's echo answered Twisted: hello weft\n",
    "a Twisted timer, fired by weft's loop\n",
]


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_its_examples() -> None:
    """Installing on a weft reactor beside a weft protocol; Twisted hosted by weft's loop."""
    assert len(examples()) == len(PRINTS)


@pytest.mark.parametrize("index", range(len(PRINTS)))
def test_each_example_runs(index: int, tmp_path: Path) -> None:
    """The example exits 0 and prints what the page says it does."""
    done = subprocess.run(
        [sys.executable, "-c", examples()[index]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == PRINTS[index]
