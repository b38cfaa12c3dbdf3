"""The examples of docs/conformance.md run as written, and say what the page says they do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from weft.drivers.testing.conformance import (
    ALL_CHECKS,
    WEFT_PROMISES,
    ConformanceError,
    MemoryHarness,
    RuntimeHarness,
    check_transport,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def run(code: str, name: str) -> dict[str, Any]:
    scope: dict[str, Any] = {"__name__": "docs_conformance"}
    exec(compile(code, f"docs/conformance.md {name}", "exec"), scope)
    return scope


def test_the_page_has_its_two_examples() -> None:
    """A transport of one's own, and asyncio's own transports."""
    blocks = examples()
    assert len(blocks) == 2
    assert "class MeteredTransport" in blocks[0]
    assert "AsyncioLoopHarness" in blocks[1]


def example_test() -> str:
    """The test function the page shows inline, after the first example, as code."""
    inline = r"`(def test_metered_transports_conform\(\) -> None:)\s+(check_transport\(.*?\))`"
    found = re.search(inline, DOC.read_text(), re.S)
    assert found is not None
    return f"{found.group(1)}\n    {found.group(2)}\n"


def test_a_transport_of_ones_own_passes_and_prints_what_the_page_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The metered transport passes every check; the printed report is the one in the example's comment."""
    code = examples()[0]
    run(code, "example 1")
    printed = capsys.readouterr().out.strip()
    comment = re.search(r"print\(report\)  # (.*)", code)
    assert comment is not None
    assert printed == comment.group(1)


def test_the_test_function_runs_the_suite() -> None:
    """The example test, defined after the first example, passes when called."""
    scope = run(examples()[0].replace("print(report)", "pass") + example_test(), "example 1 and its test")
    scope["test_metered_transports_conform"]()


def test_the_same_transport_conforms_on_real_sockets() -> None:
    """As the page says, MeteredHarness over RuntimeHarness("reactor", "tcp") passes too."""
    scope = run(examples()[0].replace("print(report)", "pass"), "example 1")
    assert 'MeteredHarness(RuntimeHarness("reactor", "tcp"))' in DOC.read_text()
    report = check_transport(scope["MeteredHarness"](RuntimeHarness("reactor", "tcp")))
    assert report.harness == "metered over reactor-tcp"
    assert len(report.passed) == len(ALL_CHECKS)


def test_a_failure_names_the_check_and_says_what_went_wrong() -> None:
    """Had MeteredTransport left get_protocol to the inner transport, the
    suite raises ConformanceError with the message the page quotes."""
    scope = run(examples()[0].replace("print(report)", "pass"), "example 1")
    transport_class = scope["MeteredTransport"]
    del transport_class.get_protocol
    with pytest.raises(ConformanceError) as raised:
        check_transport(scope["MeteredHarness"](MemoryHarness()))
    assert "the client's get_protocol() is not its protocol" in str(raised.value)
    assert "the client's get_protocol() is not its protocol" in DOC.read_text()
    failed = {outcome.check.name for outcome in raised.value.report.failed}
    assert "connection_made_comes_first_with_an_open_transport" in failed


def test_asyncio_own_transports_keep_the_contract_and_fail_the_marked_promises() -> None:
    """The third example runs (the asyncio contract passes on both loops), and
    the promises it finds asyncio failing are the ✗ of the page's table (and
    perhaps those whose ✓ has a footnote: they depend on Python's version)."""
    pytest.importorskip("uvloop", reason="uvloop is not installed (pip install 'weft[uvloop]')")
    scope = run(examples()[1], "example 2")
    table = re.findall(r"^\| `(\w+)` \| weft promise \| ✓ \| (✗|✓¹?|n/a) \|", DOC.read_text(), re.M)
    marked = {name for name, cell in table if cell == "✗"}
    depends_on_the_version = {name for name, cell in table if cell == "✓¹"}
    assert len(table) == len(WEFT_PROMISES)
    assert marked <= set(scope["failed"]) <= marked | depends_on_the_version
