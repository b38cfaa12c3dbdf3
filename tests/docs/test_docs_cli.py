"""docs/cli.md's synopsis names every option of the command line."""

from __future__ import annotations

import argparse
import re

import pytest

from tests.support.docs import blocks_of
from tests.support.processes import ROOT
from weft._cli.commands import build_parser


def synopsis() -> str:
    """The page's first block: the synopsis of every command."""
    return next(blocks_of(ROOT / "docs" / "cli.md")).text


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Each subcommand of ``weft`` and its parser."""
    (action,) = [
        action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
    ]
    return dict(action.choices)


def shows(text: str, option: str) -> bool:
    """Whether ``text`` has ``option`` as a word of its own (``--port``, not ``--port-range``)."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def options_missing_from(text: str, parser: argparse.ArgumentParser) -> list[str]:
    """The options of ``parser`` (bar --help) none of whose spellings ``text`` shows."""
    return [
        action.option_strings[-1]
        for action in parser._actions
        if action.option_strings
        and "--help" not in action.option_strings
        and not any(shows(text, name) for name in action.option_strings)
    ]


@pytest.mark.parametrize("command", ["serve", "connect", "drivers"])
def test_the_synopsis_names_every_option(command: str) -> None:
    """Every option of ``weft COMMAND`` is in the synopsis, by one of its spellings."""
    assert f"weft {command}" in synopsis()
    assert options_missing_from(synopsis(), subcommands()[command]) == []


def test_a_missing_option_is_noticed() -> None:
    """The check finds an option the text lacks, and does not take --port for --port-range."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--root")
    parser.add_argument("-v", "--verbose")
    parser.add_argument("--port")
    assert options_missing_from("weft serve [--port-range R] [-v]", parser) == ["--root", "--port"]
