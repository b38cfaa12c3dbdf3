"""Code that names a page of docs/ names one that exists, and the installed
packages name it by its address, since a pip install has no docs/ folder."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.support.processes import ROOT

#: Where the docs live: pyproject.toml's [project.urls] Documentation.
DOCUMENTATION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Documentation"]

#: The packages pip installs (weft, weft.protocols, weft.drivers).
INSTALLED = ("weft", "protocols", "drivers")

#: A mention of a page of docs/, with the address (or path) that comes before it.
_MENTION = re.compile(r"(?P<before>[\w:/.-]*?)docs/(?P<page>[\w.-]+\.md)")

#: What comes before the page's name in the installed packages.
ADDRESS = DOCUMENTATION.removesuffix("docs")


def mentions(folders: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Each mention of a docs page in the Python files under ``folders``:
    (file:line, the page, the text just before ``docs/``)."""
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                for match in _MENTION.finditer(line):
                    where = f"{path.relative_to(ROOT)}:{number}"
                    found.append((where, match.group("page"), match.group("before")))
    return found


def test_every_page_named_in_code_exists() -> None:
    """In the packages, the examples, the tests and the benchmarks, each page named is there."""
    missing = [
        (where, page)
        for where, page, _ in mentions((*INSTALLED, "examples", "tests", "benchmarks"))
        if not (ROOT / "docs" / page).is_file()
    ]
    assert missing == []


def test_the_installed_packages_link_to_the_documentation_address() -> None:
    """Each mention in weft, weft.protocols and weft.drivers is the Documentation
    URL followed by the page, never a path into a checkout."""
    pages = mentions(INSTALLED)
    assert pages, "no docstring names a page: the check would prove nothing"
    assert [(where, page) for where, page, before in pages if before != ADDRESS] == []


@pytest.mark.parametrize(
    ("line", "before"),
    [
        ("See docs/http.md.", ""),
        (f"(see {DOCUMENTATION}/http.md)", ADDRESS),
        ("``tests/docs/http.md``", "tests/"),
    ],
)
def test_a_mention_is_read_with_what_precedes_it(line: str, before: str) -> None:
    """The reader tells a bare path from the address (the check above relies on it)."""
    match = _MENTION.search(line)
    assert match is not None
    assert (match.group("page"), match.group("before")) == ("http.md", before)
