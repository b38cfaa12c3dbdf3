"""docs/architecture.md's error tree is weft.protocols.errors' hierarchy."""

from __future__ import annotations

import inspect
import re

from tests.support.docs import blocks_of
from tests.support.processes import ROOT
from weft.protocols import errors
from weft.protocols.errors import WeftError

#: One line of the tree: its indentation (four columns a level), the class,
#: and the builtins it also derives from.
_LINE = re.compile(r"^(?P<indent>[│├└─ ]*)(?P<name>\w+)(?: \(also (?P<also>[\w, ]+)\))?")


def tree() -> dict[str, tuple[str | None, set[str]]]:
    """The tree under "Errors": each class, with its parent in the tree and its "also" builtins."""
    page = ROOT / "docs" / "architecture.md"
    (block,) = [block for block in blocks_of(page) if block.text.startswith("WeftError\n")]
    parents: list[str] = []
    found: dict[str, tuple[str | None, set[str]]] = {}
    for line in block.text.splitlines():
        match = _LINE.match(line)
        assert match is not None, line
        depth = len(match.group("indent")) // 4
        del parents[depth:]
        also = {name.strip() for name in (match.group("also") or "").split(",") if name.strip()}
        found[match.group("name")] = (parents[-1] if parents else None, also)
        parents.append(match.group("name"))
    return found


def hierarchy() -> dict[str, tuple[str | None, set[str]]]:
    """The classes of weft.protocols.errors, each with its weft base and its other bases."""
    members = inspect.getmembers(errors, inspect.isclass)
    classes = [value for _, value in members if issubclass(value, WeftError)]
    found: dict[str, tuple[str | None, set[str]]] = {}
    for cls in classes:
        weft_bases = [base.__name__ for base in cls.__bases__ if issubclass(base, WeftError)]
        also = {base.__name__ for base in cls.__bases__ if not issubclass(base, WeftError)}
        found[cls.__name__] = (weft_bases[0] if weft_bases else None, also - {"Exception"})
    return found


def test_the_error_tree_is_the_hierarchy() -> None:
    """Every WeftError subclass of weft.protocols.errors is in the tree, under its
    base, with the builtins it also derives from; the tree names nothing else."""
    assert tree() == hierarchy()


def test_the_tree_reader_sees_nesting() -> None:
    """The reader takes the parent of a line from its indentation (as the check relies on)."""
    assert tree()["LineTooLongError"] == ("FrameTooLongError", set())
    assert tree()["DatagramAddressError"] == ("ArgumentError", {"TypeError"})
