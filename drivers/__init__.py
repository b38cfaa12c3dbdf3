"""weft's drivers: the runtimes that move bytes between protocols and the world.

Drivers import protocols, never the other way round.  Each driver hands out
transports that conform to :mod:`weft.protocols.contract`; applications
never build one themselves.

* :func:`serve` serves a protocol on any driver until SIGINT or SIGTERM,
  then stops gracefully; :func:`open_runtime` gives a running driver by name
  (see :mod:`weft.drivers.runtime` and :mod:`weft.drivers.registry`).
* :mod:`weft.drivers.reactor`: the callback reactor, the default driver.
* :mod:`weft.drivers.memory`: in memory, for tests, with a fake clock and a
  stepped pump (see ``docs/testing.md``).
* :mod:`weft.drivers.cli`: the ``weft`` command line (``docs/cli.md``).
"""

from weft.drivers.registry import open_runtime
from weft.drivers.serving import Server, serve

__all__ = ["Server", "open_runtime", "serve"]
