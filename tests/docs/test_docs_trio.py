"""docs/trio.md as written: each of its examples runs to its end in a process of
its own and prints what the page says it does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.processes import ROOT

DOC = ROOT / "docs" / "trio.md"

#: What each example prints, in the order they appear.
PRINTS = [
    "weft's echo answered Trio: hello from Trio\n",
    "Trio's server answered weft: HELLO, TRIO\nthe Trio program ended with: Cancelled\n",
]


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_its_examples() -> None:
    """run_trio beside a weft protocol; start_trio_guest in a weft program, ended by close."""
    assert len(examples()) == len(PRINTS)


@pytest.mark.parametrize("index", range(len(PRINTS)))
def test_each_example_runs(index: int, tmp_path: Path) -> None:
    """The example exits 0, prints what the page says, and nothing on stderr."""
    script = tmp_path / f"example_{index + 1}.py"
    script.write_text(examples()[index])
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == PRINTS[index]
