"""docs/drivers.md as written: its client examples, each with its own pub/sub
server, get their message, and its capability table and example say what the registry declares."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

import weft.drivers
from weft.drivers import DRIVERS
from weft.drivers.testing import MemoryRuntime, MemoryTransport

DOC = Path(__file__).resolve().parents[2] / "docs" / "drivers.md"


def client_examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return [block for block in blocks if "PubSubClientProtocol(" in block]


def test_the_page_shows_the_client_three_ways() -> None:
    """Callbacks, blocking and coroutines: three client examples."""
    assert len(client_examples()) == 3


@pytest.mark.parametrize("index", range(3))
def test_each_client_example_gets_its_own_message(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Each example, with the server it starts, receives the message it published."""
    code = client_examples()[index]
    scope: dict[str, Any] = {}
    exec(compile(code, f"docs/drivers.md example {index + 1}", "exec"), scope)
    received = scope.get("got")
    assert received == [b"hello"] or capsys.readouterr().out == "b'hello'\n"


def capability_table() -> dict[str, dict[str, bool]]:
    """The table under "What each driver offers": for each driver (column),
    each capability (row) and whether it says yes."""
    text = DOC.read_text()
    start = text.index("| capability | its methods |")
    lines = text[start:].split("\n\n", 1)[0].splitlines()
    drivers = [cell.strip() for cell in lines[0].strip("|").split("|")][2:]
    table: dict[str, dict[str, bool]] = {driver: {} for driver in drivers}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        capability = cells[0].strip("`")
        for driver, cell in zip(drivers, cells[2:], strict=True):
            assert cell in ("yes", "no"), line
            table[driver][capability] = cell == "yes"
    return table


def test_the_capability_table_says_what_each_driver_declares() -> None:
    """Every registered driver has a column, and its yes cells are the
    capabilities its DRIVERS entry declares; the memory column is what a
    MemoryRuntime is (and its transports offer write_file)."""
    table = capability_table()
    assert list(table) == [*DRIVERS, "memory"]
    for name, info in DRIVERS.items():
        declared = {capability.__name__ for capability in info.capabilities}
        assert {row for row, yes in table[name].items() if yes} == declared, name
    memory = MemoryRuntime()
    offered = {
        capability.__name__ for capability in weft.drivers.CAPABILITIES if isinstance(memory, capability)
    }
    if callable(getattr(MemoryTransport, "write_file", None)):
        offered.add("FileWriteTransport")
    assert {row for row, yes in table["memory"].items() if yes} == offered


def test_the_capability_example_prints_what_it_says() -> None:
    """The registry example prints the list its comment shows."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (code,) = [block for block in blocks if "info.offers(" in block]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/drivers.md capability example", "exec"), {})
    expected = re.search(r"^# (.+)$", code, re.M)
    assert expected is not None
    assert printed.getvalue().strip() == expected.group(1)
