"""``python -m weft.drivers``: the ``weft`` command line (see :mod:`weft.drivers.cli`)."""

import sys

from weft.drivers.cli import main

if __name__ == "__main__":
    sys.exit(main())
