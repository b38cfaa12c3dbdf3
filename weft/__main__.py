"""``python -m weft``: the ``weft`` command."""

from weft._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
