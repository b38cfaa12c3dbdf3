"""The attack suite: hostile clients against ``weft serve`` on every driver, over loopback.

Each case starts ``weft serve`` (or, for short timeouts in ``--fast`` runs,
``benchmarks/attacks/launcher.py``) as a child process, attacks it from this
process, measures the server from ``/proc`` (RSS, CPU, descriptors), stops
it by its PID, and prints a table: case, driver, PASS/FAIL, and the figures
that decide it, each beside its target::

    python benchmarks/attack.py --fast                      # every case, every driver, a few minutes
    python benchmarks/attack.py --long --json attack.json   # issue 9's full sizes
    python benchmarks/attack.py --cases 'never-reading-*,malformed-http' --drivers reactor,blocking
    python benchmarks/attack.py --list

Exits 0 when every case passed on every driver, 1 otherwise.  The cases
live in ``benchmarks/attacks/`` (``tests/cli/test_attack.py`` runs a quick
subset of them); what they promise is in ``docs/reliability.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: the cases are the package benchmarks.attacks, beside it.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.attacks.runner import main

if __name__ == "__main__":
    sys.exit(main())
