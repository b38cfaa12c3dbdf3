"""weft's drivers: the runtimes that move bytes between protocols and the world.

Drivers import protocols, never the other way round.  Each driver hands out
transports that conform to :mod:`weft.protocols.contract`; applications
never build one themselves.

* :mod:`weft.drivers.memory`: in memory, for tests, with a fake clock and a
  stepped pump (see ``docs/testing.md``).
"""
