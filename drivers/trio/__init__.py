"""The trio driver: weft protocols on Trio, one task per connection.

:class:`TrioRuntime` is a :class:`~weft.drivers.Runtime` (``weft serve echo
--driver trio``, ``open_runtime("trio")``; needs the ``trio`` extra) whose
listeners, connections and datagram endpoints are Trio tasks moving bytes
through Trio's streams and sockets.  ``TrioRuntime()`` runs a Trio of its
own (as Trio's guest, so that ``run()`` can be entered and left as on every
driver); :func:`open_trio_runtime` gives one inside a running Trio program.
``connect_stream`` runs a weft protocol over any Trio stream, and
:class:`TrioStream` presents a weft coroutine stream as a Trio stream.  See
https://github.com/weft-project/weft/blob/main/docs/drivers-trio.md.
"""

try:
    import trio  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without Trio
    raise ModuleNotFoundError(
        "weft.drivers.trio needs Trio, which is not installed: pip install 'weft[trio]'", name="trio"
    ) from exc

from weft.drivers.trio._datagrams import TrioDatagramTransport
from weft.drivers.trio._interop import from_weft
from weft.drivers.trio._processes import TrioReadOnlyTransport
from weft.drivers.trio._runtime import TrioRuntime, open_trio_runtime
from weft.drivers.trio._sockets import TrioListener
from weft.drivers.trio._streams import TrioStream
from weft.drivers.trio._transport import TrioTransport

__all__ = [
    "TrioDatagramTransport",
    "TrioListener",
    "TrioReadOnlyTransport",
    "TrioRuntime",
    "TrioStream",
    "TrioTransport",
    "from_weft",
    "open_trio_runtime",
]
