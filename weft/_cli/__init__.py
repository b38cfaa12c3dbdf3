"""The ``weft`` command line: ``weft serve``, ``weft connect``, ``weft drivers``.

Private: the command is the interface (https://github.com/weft-project/weft/blob/main/docs/cli.md).
``main`` is what the ``weft`` script and ``python -m weft`` run.
"""

from weft._cli.commands import main

__all__ = ["main"]
