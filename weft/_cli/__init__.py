"""The ``weft`` command line: ``weft serve``, ``weft connect``, ``weft drivers``.

Private: the command is the interface (``docs/cli.md``).  ``main`` is what
the ``weft`` script and ``python -m weft`` run.
"""

from weft._cli.commands import main

__all__ = ["main"]
