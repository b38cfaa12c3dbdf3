"""The fenced blocks of the docs (docs/*.md and README.md), as the docs tests read them.

A block is the text between a line of three backquotes (with a language:
```` ```python ````, or none, for shell sessions and text) and the next such
line at the same indentation.  A Python block is a program that runs as
written, unless the line just before it marks it as an excerpt of a file in
the repository that runs on its own::

    <!-- excerpt: examples/echo_server.py -->
    ```python
    ...
    ```

Then each of the excerpt's lines occurs in that file, in the same order
(``...`` lines stand for what the excerpt leaves out).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ROOT

#: The pages whose blocks are checked: every page of docs/, and the README.
PAGES = (*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<language>[\w+-]*)[ \t]*$")
_EXCERPT = re.compile(r"^\s*<!--\s*excerpt:\s*(?P<path>\S+)\s*-->\s*$")

#: A command that starts weft: the ``weft`` command, ``python -m weft``, an
#: example script, or a Twisted tool on weft's reactor -- at the start of a
#: command line or after a pipe, ``&&`` or ``;``.
STARTS_WEFT = re.compile(
    r"(?:^|[|&;]\s*)(?:weft(?=\s|$)|python3? -m weft(?=\s|$)|python3? examples/)|--reactor=weft\b"
)


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    #: The page, relative to the repository: ``docs/http.md``.
    page: str
    #: The line of its opening fence, from 1.
    line: int
    #: ``python``, or ``""`` for a block without a language.
    language: str
    #: Its text, dedented by the fence's indentation, ending in a newline.
    text: str
    #: The file it is an excerpt of (relative to the repository), if it is marked as one.
    excerpt_of: str | None

    @property
    def name(self) -> str:
        """Where it is: ``docs/http.md:16``."""
        return f"{self.page}:{self.line}"

    def commands(self) -> list[str]:
        """The command lines of a shell block: the lines after a ``$ `` prompt
        if it has any (the others are output), else every line; comments dropped."""
        lines = self.text.splitlines()
        if any(line.startswith("$ ") for line in lines):
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        commands = [re.sub(r"\s+#.*$", "", line).strip() for line in lines]
        return [command for command in commands if command and not command.startswith("#")]


def blocks_of(page: Path) -> Iterator[Block]:
    """The fenced blocks of one page, in order."""
    lines = page.read_text().splitlines()
    name = page.relative_to(ROOT).as_posix()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent = opening.group("indent")
        end = index + 1
        while end < len(lines) and lines[end] != f"{indent}```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{name}:{index + 1}: a block that is never closed")
        body = [line.removeprefix(indent) for line in lines[index + 1 : end]]
        marker = _EXCERPT.match(lines[index - 1]) if index > 0 else None
        yield Block(
            page=name,
            line=index + 1,
            language=opening.group("language"),
            text="\n".join(body) + "\n",
            excerpt_of=marker.group("path") if marker else None,
        )
        index = end + 1


def all_blocks() -> list[Block]:
    """Every fenced block of every page."""
    return [block for page in PAGES for block in blocks_of(page)]


def python_blocks() -> list[Block]:
    """Every Python block of every page."""
    return [block for block in all_blocks() if block.language == "python"]


def weft_commands() -> list[tuple[Block, str]]:
    """Every command in a shell block that starts weft, with its block."""
    return [
        (block, command)
        for block in all_blocks()
        if block.language == ""
        for command in block.commands()
        if STARTS_WEFT.search(command)
    ]
