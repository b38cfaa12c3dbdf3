"""weft: network protocols as pure state machines, and the drivers that run them.

Two layers, and the command line on top:

* :mod:`weft.protocols`: sans-I/O protocols (line, length-prefixed and
  netstring framing, echo, publish/subscribe, HTTP/1.1, TLS) that turn
  bytes into events and back, and the transport contract they are written
  against.  They never touch a socket, a clock or a thread.
* :mod:`weft.drivers`: the runtimes that move the bytes (the reactor,
  asyncio and uvloop, coroutines, blocking threads, and an in-memory driver
  in :mod:`weft.drivers.testing`), chosen with one argument.
* ``weft`` (or ``python -m weft``): serve and connect from a shell
  (https://github.com/weft-project/weft/blob/main/docs/cli.md).
"""

from __future__ import annotations

import os

__version__ = "0.1.0"
__all__ = ["__version__"]

# In a source tree the two layers sit beside this package (protocols/ and
# drivers/ at the repository's top, as pyproject.toml maps them); an
# installed weft has them inside it.  Looking beside it too lets a checkout
# be imported whichever way weft was installed.
_here = os.path.dirname(__file__)
_beside = os.path.dirname(_here)
if not os.path.isdir(os.path.join(_here, "protocols")) and os.path.isfile(
    os.path.join(_beside, "protocols", "__init__.py")
):
    __path__.append(_beside)
