"""``weft serve MODULE:FACTORY``: finding a person's own protocol, as ``uvicorn mod:app`` does.

``MODULE`` is imported (from ``--app-dir``, the current directory by
default, then the installed packages) and ``FACTORY`` looked up in it
(dots reach inside: ``module:Class.method``).  What it names is one of two
kinds, told apart before anything listens:

* an ``async def`` function (a coroutine function) is a **stream
  handler**: it is awaited with a :class:`~weft.drivers.coroutines.Stream`
  per connection, one task each (what :func:`weft.drivers.serve` does with
  one);
* any other callable (a protocol class, a function returning a protocol)
  is a **protocol factory**: it is called with no arguments per connection,
  and what it returns gets the callbacks (``connection_made``,
  ``data_received``...).

Every mistake is an :class:`~weft.protocols.errors.ArgumentError` with one
line naming the spec and saying what to do: a spec that is not
``MODULE:FACTORY``; a module that does not exist (told apart from an
``ImportError`` raised *inside* the module, which names what the module
itself could not import); any other exception while importing; a missing
attribute; something that is not callable; a factory that needs arguments;
a handler that does not take one.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from weft.protocols.errors import ArgumentError

__all__ = ["PROTOCOL_FACTORY", "STREAM_HANDLER", "LoadedFactory", "is_spec", "load"]

PROTOCOL_FACTORY = "protocol factory"
STREAM_HANDLER = "stream handler"

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENTIFIER}(\.{_IDENTIFIER})*"
_SPEC = re.compile(rf"^(?P<module>{_DOTTED}):(?P<attribute>{_DOTTED})$")

_EXAMPLE = "as in examples.shout:ShoutProtocol"


@dataclass(frozen=True)
class LoadedFactory:
    """What a ``MODULE:FACTORY`` spec named, and which kind it is."""

    #: The spec as given.
    spec: str
    #: The object it names.
    target: Callable[..., Any]
    #: :data:`PROTOCOL_FACTORY` or :data:`STREAM_HANDLER`.
    kind: str

    @property
    def is_stream_handler(self) -> bool:
        """Whether it is an ``async def`` handler awaited with a stream."""
        return self.kind == STREAM_HANDLER

    def protocol_factory(self) -> Callable[[], Any]:
        """The factory, checking what each call returns (a protocol factory's kind only).

        A function that returns a coroutine (an ``async def`` hidden behind a
        ``lambda`` that does not say so) or ``None`` (a missing ``return``)
        fails that connection with a line saying so, where it would
        otherwise fail later with an ``AttributeError``.  The check is one
        test per connection, none per read.
        """
        if self.is_stream_handler:
            raise ArgumentError(f"{self.spec} is a stream handler, not a protocol factory")
        factory, spec = self.target, self.spec

        def checked() -> Any:
            protocol = factory()
            if protocol is None or inspect.iscoroutine(protocol):
                if protocol is not None:
                    protocol.close()  # never awaited: say nothing more of it
                    raise TypeError(
                        f"{spec} returned a coroutine: declare the handler itself with async def "
                        "(weft awaits it with a stream), or return a protocol"
                    )
                raise TypeError(f"{spec} returned None, not a protocol (a missing return?)")
            return protocol

        return checked


def is_spec(text: str) -> bool:
    """Whether ``text`` is meant as ``MODULE:FACTORY`` (it has a colon)."""
    return ":" in text


def load(spec: str, app_dir: str | None = None) -> LoadedFactory:
    """Import what ``spec`` names and say which kind it is; ArgumentError for any mistake.

    ``app_dir`` (default: the current directory) is put first on
    ``sys.path``, as ``uvicorn --app-dir`` does, so a module beside the
    shell's working directory is found whether weft runs as ``weft`` or
    ``python -m weft``.
    """
    match = _SPEC.match(spec)
    if match is None:
        raise ArgumentError(f"{spec!r} is not MODULE:FACTORY ({_EXAMPLE})")
    module_name, attribute = match.group("module"), match.group("attribute")
    directory = os.path.abspath(app_dir if app_dir is not None else os.curdir)
    if app_dir is not None and not os.path.isdir(directory):
        raise ArgumentError(f"--app-dir {app_dir}: not a directory")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module = _import(module_name, directory)
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ArgumentError(f"{spec}: module {module_name!r} has no attribute {attribute!r}") from None
    return LoadedFactory(spec, target, _kind(spec, target))


def _import(name: str, directory: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # The module asked for (or a package on its path) is not there, as
        # opposed to a module it imports itself: that one names the culprit.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ArgumentError(
                f"no module named {name!r} (looked in {directory} and the installed packages; "
                "--app-dir DIR looks elsewhere)"
            ) from exc
        raise ArgumentError(f"importing {name!r} failed: {exc}") from exc
    except Exception as exc:  # the module's own code: a SyntaxError, an ImportError, anything
        raise ArgumentError(f"importing {name!r} failed: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        where = f" ({exc.filename}, line {exc.lineno})" if exc.filename else ""
        return f"SyntaxError: {exc.msg}{where}"
    return f"{type(exc).__name__}: {exc}"


def _kind(spec: str, target: Any) -> str:
    """Which kind ``target`` is, after checking it can be called as that kind."""
    if not callable(target):
        raise ArgumentError(
            f"{spec} is a {type(target).__name__}, not callable: give a protocol class or factory, "
            "or an async def stream handler"
        )
    if inspect.isasyncgenfunction(target):
        raise ArgumentError(f"{spec} is an async generator: a stream handler is a plain async def")
    if inspect.iscoroutinefunction(target):
        if not _accepts(target, 1):
            raise ArgumentError(
                f"{spec} is async def, so a stream handler: it must take one argument, the stream"
            )
        return STREAM_HANDLER
    if not _accepts(target, 0):
        raise ArgumentError(
            f"{spec} needs arguments{_parameters(target)}: a protocol factory is called with none "
            "(wrap it in a function that supplies them), and a stream handler must be async def"
        )
    return PROTOCOL_FACTORY


def _accepts(target: Any, count: int) -> bool:
    """Whether ``target`` can be called with ``count`` positional arguments (True when unknowable)."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: find out when it is called
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def _parameters(target: Any) -> str:
    try:
        names = [
            name
            for name, parameter in inspect.signature(target).parameters.items()
            if parameter.default is parameter.empty
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return ""
    return f" ({', '.join(names)})" if names else ""
