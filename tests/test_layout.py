"""The tree is the architecture: public and private, one home per name, layers, no import cycles.

Trio's rule: every implementation module is private (a leading underscore
somewhere in its dotted name), each package's ``__init__`` is that piece's
one documented API, and the few public modules that are not packages are
deliberate (:data:`PUBLIC_MODULES`).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Where each top-level part of the ``weft`` package lives in the tree.
PACKAGE_DIRS = {"weft": ROOT / "weft", "weft.protocols": ROOT / "protocols", "weft.drivers": ROOT / "drivers"}

#: Every public module: the packages' ``__init__``s and a few deliberate
#: modules (the contract protocols are written against, the error
#: hierarchy, pub/sub's wire format, ``python -m weft``).
PUBLIC_MODULES = frozenset(
    {
        "weft",
        "weft.__main__",
        "weft.protocols",
        "weft.protocols.contract",
        "weft.protocols.dns",
        "weft.protocols.errors",
        "weft.protocols.framing",
        "weft.protocols.http",
        "weft.protocols.pubsub",
        "weft.protocols.pubsub.wire",
        "weft.protocols.tls",
        "weft.drivers",
        "weft.drivers.asyncio",
        "weft.drivers.blocking",
        "weft.drivers.completion",
        "weft.drivers.coroutine",
        "weft.drivers.coroutines",
        "weft.drivers.reactor",
        "weft.drivers.testing",
        "weft.drivers.testing.conformance",
        "weft.drivers.twisted",
        "weft.drivers.twisted_reactor",
        "weft.drivers.trio_guest",
        "weft.drivers.trio",
    }
)

#: The driver packages: what the shared layers below them must not import.
DRIVER_PACKAGES = (
    "weft.drivers.asyncio",
    "weft.drivers.blocking",
    "weft.drivers.completion",
    "weft.drivers.coroutine",
    "weft.drivers.reactor",
    "weft.drivers.testing",
    "weft.drivers.twisted",
    "weft.drivers.twisted_reactor",
    "weft.drivers.trio_guest",
    "weft.drivers.trio",
)


@dataclass(frozen=True)
class Module:
    """One module of the tree: its dotted name and its file."""

    name: str
    path: Path

    @property
    def private(self) -> bool:
        """Whether any part of its name starts with an underscore (``__init__``/``__main__`` aside)."""
        return any(part.startswith("_") and not part.startswith("__") for part in self.name.split("."))


def tree() -> list[Module]:
    """Every module of weft, found by walking the directories (not by importing)."""
    modules = []
    for package, directory in PACKAGE_DIRS.items():
        for path in sorted(directory.rglob("*.py")):
            parts = list(path.relative_to(directory).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules.append(Module(".".join([package, *parts]), path))
    return modules


MODULES = {module.name: module for module in tree()}


def imports_of(module: Module) -> Iterator[str]:
    """The weft modules ``module`` imports, wherever the import sits (``TYPE_CHECKING``
    blocks and function bodies included).  ``from package import name`` counts as
    importing ``package.name`` when that is a module, else ``package``."""
    for node in ast.walk(ast.parse(module.path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
            if not all(target in MODULES for target in targets):
                targets = [target for target in targets if target in MODULES] + [node.module]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != module.name:
                yield target


def import_graph() -> dict[str, set[str]]:
    return {name: set(imports_of(module)) for name, module in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for succ in edges:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


# ------------------------------------------------------------------ tests


def test_the_tree_is_walked_at_all() -> None:
    """The checks below see the real tree: the facades, a driver's internals, the CLI."""
    assert {"weft", "weft.drivers", "weft.drivers.reactor._loop", "weft._cli.commands"} <= set(MODULES)


def test_only_the_listed_modules_are_public() -> None:
    """Every module outside :data:`PUBLIC_MODULES` has an underscore in its name."""
    public = {name for name, module in MODULES.items() if not module.private}
    assert public == PUBLIC_MODULES


def public_exports() -> Iterator[tuple[str, str, object]]:
    """``(namespace, name, value)`` for every name in a public module's ``__all__``."""
    for namespace in sorted(PUBLIC_MODULES - {"weft.__main__"}):
        module = importlib.import_module(namespace)
        for name in module.__all__:
            yield namespace, name, getattr(module, name)


def test_every_public_namespace_declares_its_names() -> None:
    """Each public module says what it exports (``__all__``), and each name there resolves."""
    for namespace in sorted(PUBLIC_MODULES - {"weft.__main__"}):
        module = importlib.import_module(namespace)
        assert isinstance(getattr(module, "__all__", None), list), namespace
        for name in module.__all__:
            assert hasattr(module, name), f"{namespace}.{name}"


def test_each_public_class_and_function_has_one_home() -> None:
    """A class or function is exported by exactly one public namespace, so there is
    one way to import it and one place that documents it."""
    homes: dict[int, list[str]] = defaultdict(list)
    for namespace, name, value in public_exports():
        if inspect.isclass(value) or inspect.isfunction(value):
            homes[id(value)].append(f"{namespace}.{name}")
    assert [sorted(where) for where in homes.values() if len(where) > 1] == []


def undocumented(qualified: str, value: object) -> Iterator[str]:
    """``qualified`` and its public methods and properties that lack a docstring."""
    if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
        yield qualified
    if inspect.isclass(value):
        for attribute, member in vars(value).items():
            is_api = callable(member) or isinstance(member, property)
            if is_api and not attribute.startswith("_") and not inspect.getdoc(member):
                yield f"{qualified}.{attribute}"


def test_every_public_name_has_a_docstring() -> None:
    """Every public module, and every class and function it exports, with their
    public methods and properties, has a docstring (private ones need not)."""
    missing = [
        namespace
        for namespace in sorted(PUBLIC_MODULES)
        if not inspect.getdoc(importlib.import_module(namespace))
    ]
    missing += [
        where
        for namespace, name, value in public_exports()
        for where in undocumented(f"{namespace}.{name}", value)
    ]
    assert missing == []


def test_no_import_cycles() -> None:
    """No two weft modules import each other, directly or through others, counting
    every import statement (``TYPE_CHECKING`` blocks and function bodies too)."""
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """The check above can fail: a loop of three, and a pair, are both reported."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


def importers_of(prefixes: tuple[str, ...], *, among: str) -> list[str]:
    """``module -> target`` for the modules under ``among`` importing anything under ``prefixes``."""
    graph = import_graph()
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name == among or name.startswith(among + ".")
        for target in targets
        if any(target == prefix or target.startswith(prefix + ".") for prefix in prefixes)
    )


@pytest.mark.parametrize(
    "layer",
    ["weft.drivers._core", "weft.drivers._runtime", "weft.drivers.coroutines", "weft.protocols"],
)
def test_shared_layers_import_no_driver(layer: str) -> None:
    """The drivers' shared core, the runtime interface, the coroutine library and the
    protocols import no driver: every driver may build on them."""
    assert importers_of(DRIVER_PACKAGES, among=layer) == []


def test_nothing_below_the_command_line_imports_it() -> None:
    """The command line is the top layer: neither the protocols nor the drivers import it."""
    assert importers_of(("weft._cli",), among="weft.drivers") == []
    assert importers_of(("weft._cli",), among="weft.protocols") == []


def test_protocols_import_no_driver_at_all() -> None:
    """The protocols layer imports nothing of weft.drivers, core and facade included."""
    assert importers_of(("weft.drivers",), among="weft.protocols") == []


def test_weft_says_what_it_is() -> None:
    """``weft.__version__`` matches the distribution's, and ``help(weft)`` names the two layers."""
    import weft

    assert weft.__version__ == importlib.metadata.version("weft")
    assert "weft.protocols" in (weft.__doc__ or "")
    assert "weft.drivers" in (weft.__doc__ or "")
