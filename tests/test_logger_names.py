"""The rule for weft's logger names, enforced: one tree under ``weft``, each
module logging on its package's logger (``weft.drivers.reactor``,
``weft.protocols.tls``), so ``logging.getLogger("weft.drivers")`` reaches
every driver and a person can turn one package up or down by a name they
can guess from the source tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Where each importable tree lives, and its package name.
TREES = {"protocols": "weft.protocols", "drivers": "weft.drivers", "weft": "weft"}

#: Names that are channels rather than a module's logger: the tree's root
#: (where a handler is attached to hear everything), the HTTP access log,
#: which has a switch of its own (``--no-access-log``), as ``uvicorn.access``
#: and ``gunicorn.access`` do.
CHANNELS = {"weft", "weft.access"}

#: The process's root logger ("": what ``getLogger()`` returns) is the
#: application's: only the command line, which is one, touches it (for ``-vv``).
ROOT_LOGGER_USERS = {"weft._cli"}


def library_modules() -> list[Path]:
    return sorted(path for top in TREES for path in (ROOT / top).rglob("*.py"))


def package_of(path: Path) -> str:
    """``drivers/reactor/_sockets.py`` -> ``weft.drivers.reactor``."""
    top, *folders = path.relative_to(ROOT).parent.parts
    return ".".join([TREES[top], *folders])


def logger_names(source: str) -> list[str | None]:
    """The argument of each ``getLogger(...)`` call: the name if it is a string
    literal, ``""`` for the root logger (no argument), else None."""
    names: list[str | None] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
        if called != "getLogger":
            continue
        if not node.args and not node.keywords:
            names.append("")
            continue
        argument = node.args[0] if len(node.args) == 1 and not node.keywords else None
        literal = isinstance(argument, ast.Constant) and isinstance(argument.value, str)
        names.append(argument.value if literal else None)  # type: ignore[union-attr]
    return names


def test_the_name_finder_reads_every_spelling() -> None:
    """Literal names are read whether getLogger is an attribute or a bare name;
    a computed name (``__name__``) is reported as None, the root logger as ""."""
    source = (
        "import logging\nfrom logging import getLogger\n"
        'a = logging.getLogger("weft.x")\nb = getLogger("weft.y")\nc = logging.getLogger(__name__)\n'
        "d = logging.getLogger()\n"
    )
    assert logger_names(source) == ["weft.x", "weft.y", None, ""]


def test_the_package_of_a_module() -> None:
    """A module's package path, for modules at each depth."""
    assert package_of(ROOT / "drivers" / "reactor" / "_sockets.py") == "weft.drivers.reactor"
    assert package_of(ROOT / "drivers" / "_serving.py") == "weft.drivers"
    assert package_of(ROOT / "protocols" / "tls" / "_layer.py") == "weft.protocols.tls"
    assert package_of(ROOT / "weft" / "_cli" / "commands.py") == "weft._cli"


@pytest.mark.parametrize("path", library_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_logger_is_named_after_its_package(path: Path) -> None:
    """Every getLogger in the library names ``weft.`` + the module's package
    path, written out (greppable), or one of the channels."""
    expected = package_of(path)
    for name in logger_names(path.read_text()):
        assert name is not None, f"{path}: getLogger needs the literal name {expected!r}"
        if name == "":
            assert expected in ROOT_LOGGER_USERS, f"{path}: a library module leaves the root logger alone"
            continue
        assert name == expected or name in CHANNELS, f"{path}: logger {name!r} should be {expected!r}"


def test_the_rule_is_checked_at_all() -> None:
    """The walk finds the drivers' loggers (a moved tree would make the test above vacuous)."""
    found = {name for path in library_modules() for name in logger_names(path.read_text())}
    assert {"weft.drivers.reactor", "weft.protocols.tls", "weft.drivers"} <= found
