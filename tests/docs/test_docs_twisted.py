"""docs/drivers-twisted.md as written: each of its examples runs to its end, in a
process of its own (one runs a Twisted program, whose reactor is installed
for good)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.processes import ROOT

DOC = ROOT / "docs" / "drivers-twisted.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_page_has_its_four_examples() -> None:
    """A runtime on a new reactor, every reactor kind, a Twisted program's reactor, the fake clock."""
    assert len(examples()) == 4


@pytest.mark.parametrize("index", range(4))
def test_each_example_runs(index: int, tmp_path: Path) -> None:
    """Each example exits 0 with every assert in it holding, and nothing on stderr."""
    script = tmp_path / f"example_{index + 1}.py"
    script.write_text(examples()[index])
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
