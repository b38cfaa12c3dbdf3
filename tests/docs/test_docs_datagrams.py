"""docs/datagrams.md: its examples run as written, and its table of checks is the suite's."""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from weft.drivers.testing.conformance import DATAGRAM_CHECKS

DOC = Path(__file__).resolve().parents[2] / "docs" / "datagrams.md"


def examples() -> list[str]:
    return [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)]


def test_the_page_has_its_five_examples() -> None:
    """A protocol, a runtime's endpoints, coroutines, the memory network, the DNS resolver."""
    assert len(examples()) == 5


@pytest.mark.parametrize("index", range(5))
def test_each_example_runs(index: int) -> None:
    """Each example runs to its end, every assert in it holding (and prints nothing unexpected)."""
    scope: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(examples()[index], f"docs/datagrams.md example {index + 1}", "exec"), scope)


def test_the_memory_network_example_is_the_same_on_every_run() -> None:
    """The seeded example prints the same thing twice."""
    code = next(block for block in examples() if "seed=7" in block)
    printed = []
    for _ in range(2):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "docs/datagrams.md memory network", "exec"), {})
        printed.append(out.getvalue())
    assert printed[0] == printed[1]
    assert "lost=" in printed[0]


def test_the_table_lists_every_datagram_check_in_its_group() -> None:
    """The "datagram check" table has one row per check of DATAGRAM_CHECKS, in its group."""
    rows = dict(re.findall(r"^\| `(\w+)` \| (asyncio contract|weft promise) \|$", DOC.read_text(), re.M))
    assert rows == {check.name: check.group.value for check in DATAGRAM_CHECKS}
