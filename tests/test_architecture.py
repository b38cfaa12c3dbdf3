"""The rules of the codebase's shape, enforced."""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import weft.drivers
import weft.protocols
from weft.drivers.coroutines import Cancelled
from weft.protocols import errors

#: Exceptions that are not errors, and so sit outside WeftError (see docs/coroutines.md).
CANCELLATION_SIGNALS: frozenset[type[BaseException]] = frozenset({Cancelled})

ROOT = Path(__file__).resolve().parent.parent

#: What protocols may not import: I/O, threads, time, and any driver.
FORBIDDEN = {"socket", "select", "selectors", "threading", "asyncio", "subprocess", "os", "time"}

#: The one module under protocols/ that may look a forbidden module up in
#: sys.modules (never import it): the clock of a running asyncio loop, for a
#: transport that offers none (see its docstring for why it is sound).
ALLOWED_LOOKUPS = {"protocols/_loop_clock.py": {"asyncio"}}


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _typing_only_imports(tree: ast.AST) -> set[int]:
    """The import statements that run only for a type checker (in the body of
    an ``if TYPE_CHECKING:``, not its ``else``), by id."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                found.update(
                    id(inner)
                    for inner in ast.walk(statement)
                    if isinstance(inner, ast.Import | ast.ImportFrom)
                )
    return found


def _looked_up_module(node: ast.AST) -> str | None:
    """The module ``node`` fetches from ``sys.modules`` (``sys.modules["x"]``,
    ``sys.modules.get("x")``, and the same through ``from sys import modules``)."""

    def is_modules(value: ast.expr) -> bool:
        return (isinstance(value, ast.Attribute) and value.attr == "modules") or (
            isinstance(value, ast.Name) and value.id == "modules"
        )

    if isinstance(node, ast.Subscript) and is_modules(node.value) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("get", "pop", "setdefault", "__getitem__")
        and is_modules(node.func.value)
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return str(node.args[0].value)
    return None


def _forbidden(name: str) -> bool:
    return name.split(".")[0] in FORBIDDEN or name == "weft.drivers" or name.startswith("weft.drivers.")


def forbidden_imports(source: str, *, allowed_lookups: frozenset[str] = frozenset()) -> list[str]:
    """The forbidden modules that ``source`` imports, by any spelling, or
    fetches from ``sys.modules`` (but those in ``allowed_lookups``).

    An import a type checker alone runs (under ``if TYPE_CHECKING:``) is
    allowed: it costs nothing at run time and lets protocols name asyncio's
    types (``test_importing_protocols_imports_no_forbidden_module`` checks
    that nothing slips through at run time).
    """
    tree = ast.parse(source)
    typing_only = _typing_only_imports(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [] if id(node) in typing_only else [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level or id(node) in typing_only:  # relative: stays inside protocols/ by construction
                continue
            module = node.module or ""
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names = [str(node.args[0].value)]
        elif (looked_up := _looked_up_module(node)) is not None:
            if _forbidden(looked_up) and looked_up not in allowed_lookups:
                found.append(f"sys.modules[{looked_up!r}]")
            continue
        else:
            continue
        found.extend(name for name in names if _forbidden(name))
    return found


def protocol_sources() -> list[Path]:
    return sorted((ROOT / "protocols").rglob("*.py"))


def test_the_import_checker_catches_every_spelling() -> None:
    """The checker below is itself checked: each way of importing is caught."""
    for source in (
        "import socket",
        "import os.path",
        "from time import monotonic",
        "from select import epoll",
        "import asyncio as aio",
        "from weft.drivers import memory",
        "from weft.drivers.testing._memory import connect",
        "import weft.drivers.testing._memory",
        "from weft import drivers",
        "__import__('threading')",
        "importlib.import_module('subprocess')",
        # Only the body of `if TYPE_CHECKING:` is the type checker's alone.
        "if TYPE_CHECKING:\n    pass\nelse:\n    import asyncio",
        "if not TYPE_CHECKING:\n    import asyncio",
        "if TYPE_CHECKING:\n    __import__('asyncio')",
        "if TYPE_CHECKING:\n    pass\nimport asyncio",
        # A module fetched from sys.modules is as good as imported.
        "sys.modules.get('asyncio')",
        "sys.modules['socket']",
        "from sys import modules\nmodules.get('time')",
    ):
        assert forbidden_imports(source), source
    assert not forbidden_imports("import heapq\nfrom weft.protocols import errors\nimport ossaudiodev")
    assert not forbidden_imports("if TYPE_CHECKING:\n    import asyncio\n    from asyncio import Protocol")
    assert not forbidden_imports("import typing\nif typing.TYPE_CHECKING:\n    import asyncio")
    assert not forbidden_imports("sys.modules.get('heapq')")
    assert not forbidden_imports("sys.modules.get('asyncio')", allowed_lookups=frozenset({"asyncio"}))
    assert forbidden_imports("import asyncio", allowed_lookups=frozenset({"asyncio"}))


@pytest.mark.parametrize("path", protocol_sources(), ids=lambda path: str(path.relative_to(ROOT)))
def test_protocols_do_no_io(path: Path) -> None:
    """No module under protocols/ imports I/O, threads, time or a driver: bytes,
    time and entropy are handed to protocols by drivers."""
    allowed = frozenset(ALLOWED_LOOKUPS.get(str(path.relative_to(ROOT)), ()))
    assert forbidden_imports(path.read_text(), allowed_lookups=allowed) == []


def test_the_allowed_lookups_are_still_needed() -> None:
    """Each exception to the rule is in use (a stale one would hide a new lookup)."""
    for relative, names in ALLOWED_LOOKUPS.items():
        tree = ast.parse((ROOT / relative).read_text())
        assert {found for node in ast.walk(tree) if (found := _looked_up_module(node))} >= names, relative


def test_importing_protocols_imports_no_forbidden_module() -> None:
    """At run time, importing every module under protocols/ loads neither
    asyncio, subprocess nor a driver: a typing-only import stays typing-only.
    (socket, select, threading, os and time come in through ssl, logging and
    Python itself, so only the source check above can hold protocols to them.)"""
    script = (
        "import importlib, pkgutil, sys\n"
        "import weft.protocols\n"
        "for info in pkgutil.walk_packages(weft.protocols.__path__, prefix='weft.protocols.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('asyncio', 'subprocess')"
        " or name.startswith('weft.drivers')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == "[]\n"


def test_protocols_are_checked_at_all() -> None:
    """The parametrized check above sees the real tree (not an empty list)."""
    names = {path.name for path in protocol_sources()}
    assert {"contract.py", "errors.py", "_echo.py", "_lines.py", "_server.py"} <= names


def all_modules(package: ModuleType) -> list[ModuleType]:
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        modules.append(importlib.import_module(info.name))
    return modules


def test_every_package_directory_is_shipped() -> None:
    """Every directory with an __init__.py under protocols/ and drivers/ is listed
    in pyproject's packages, so the wheel holds all of weft, with py.typed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for top, package in (("weft", "weft"), ("protocols", "weft.protocols"), ("drivers", "weft.drivers")):
        assert config["package-dir"][package] == top
        assert (ROOT / top / "py.typed").exists()
        for init in (ROOT / top).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((package, *relative)))
    assert found == listed


def test_every_weft_error_descends_from_weft_error() -> None:
    """errors.py is one hierarchy under WeftError, and every exception class defined
    anywhere in weft joins it, but for the cancellation signal (Cancelled, a
    BaseException like asyncio.CancelledError, which it derives from)."""
    defined = []
    for package in (weft.protocols, weft.drivers):
        for module in all_modules(package):
            for _name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__.startswith("weft.")
                ):
                    defined.append(value)
    assert errors.WeftError in defined
    # The one documented exception: a cancellation is a request to stop, not an
    # error, and must get past `except Exception`, so it derives from
    # BaseException (through asyncio.CancelledError) and cannot be a WeftError.
    signals = [cls for cls in defined if cls in CANCELLATION_SIGNALS]
    assert all(issubclass(cls, asyncio.CancelledError) and not issubclass(cls, Exception) for cls in signals)
    errors_proper = [cls for cls in defined if cls not in CANCELLATION_SIGNALS]
    assert all(issubclass(cls, errors.WeftError) for cls in errors_proper), errors_proper
    assert set(errors.__all__) == {cls.__name__ for cls in defined if cls.__module__ == errors.__name__}


def test_errors_also_derive_from_the_builtins_python_code_catches() -> None:
    """Argument errors are ValueErrors and wrong-state errors RuntimeErrors, so
    both `except WeftError` and the usual clause catch them."""
    assert issubclass(errors.ArgumentError, ValueError)
    assert issubclass(errors.UnencodableFrameError, ValueError)
    assert issubclass(errors.WriteAfterEofError, RuntimeError)
    assert issubclass(errors.ClosedResourceError, RuntimeError)
    assert issubclass(errors.NoClockError, LookupError)
    assert issubclass(errors.LineTooLongError, errors.FrameTooLongError)
    assert issubclass(errors.FrameTooLongError, errors.ProtocolError)
    error = errors.LineTooLongError("too long", limit=10, length=11)
    assert (error.limit, error.length, str(error)) == (10, 11, "too long")


def same_tree(left: Path, right: Path) -> bool:
    """Whether two files, or two directories' ``.py`` files, hold the same bytes."""
    if left.is_file() or right.is_file():
        return left.is_file() and right.is_file() and left.read_bytes() == right.read_bytes()
    names = {path.relative_to(left) for path in left.rglob("*.py")}
    if names != {path.relative_to(right) for path in right.rglob("*.py")}:
        return False
    return all((left / name).read_bytes() == (right / name).read_bytes() for name in names)


#: What .mypy-path/weft/ mirrors, and where each part lives in the tree.
MYPY_OVERLAY = {
    "protocols": "protocols",
    "drivers": "drivers",
    "__init__.py": "weft/__init__.py",
    "__main__.py": "weft/__main__.py",
    "_cli": "weft/_cli",
    "py.typed": "weft/py.typed",
    # The C accelerator's types (weft/_speedups.c is compiled, not read by mypy).
    "_speedups.pyi": "weft/_speedups.pyi",
}


def test_mypy_sees_the_whole_package_through_the_overlay() -> None:
    """.mypy-path/weft/ mirrors every part of the weft package: links to them in a
    checkout (so new modules are seen at once), copies in an unpacked sdist
    (whose archive cannot keep links)."""
    overlay = ROOT / ".mypy-path" / "weft"
    assert sorted(path.name for path in overlay.iterdir()) == sorted(MYPY_OVERLAY)
    for name, source in MYPY_OVERLAY.items():
        entry = overlay / name
        if entry.is_symlink():
            assert entry.resolve() == (ROOT / source).resolve(), name
        else:
            assert same_tree(entry, ROOT / source), name
