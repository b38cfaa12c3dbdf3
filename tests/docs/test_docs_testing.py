"""The MemoryRuntime examples of docs/testing.md run, as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def memory_runtime_examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return [textwrap.dedent(block) for block in blocks if "MemoryRuntime()" in block]


def test_the_page_shows_memory_runtime_twice() -> None:
    """A server and a client, then failures on demand: two examples."""
    assert len(memory_runtime_examples()) == 2


@pytest.mark.parametrize("index", range(2))
def test_each_memory_runtime_example_runs(index: int) -> None:
    """Each example runs to its end, every assert in it holding."""
    code = memory_runtime_examples()[index]
    scope: dict[str, Any] = {}
    exec(compile(code, f"docs/testing.md MemoryRuntime example {index + 1}", "exec"), scope)
    assert "runtime" in scope
