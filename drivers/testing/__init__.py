"""weft's testing kit: the in-memory driver, its pump and fake clock, and helpers.

* :func:`connect` and :func:`connect_pair` join protocols in memory, through
  real transports, on a :class:`FakeClock`; a :class:`Pump` moves the bytes
  when you step it (https://github.com/weft-project/weft/blob/main/docs/testing.md).
* :class:`MemoryRuntime` is a whole runtime in memory, for code that calls
  ``listen_tcp``, ``connect_tcp`` or runs a ``Server``: listeners and
  connections joined by pumps, on a fake clock, with refused, reset and
  unanswered connections on demand.
* :class:`MemoryNetwork` carries datagrams between endpoints in memory, on
  a fake clock, with loss, duplication and reordering on demand, seeded
  (https://github.com/weft-project/weft/blob/main/docs/datagrams.md); :class:`MemoryRuntime` has one.
* :class:`RecordingProtocol` records every call it receives;
  :class:`RecordingDatagramProtocol` the calls of a datagram protocol.
* :func:`chunkings` and :func:`chunked` are hypothesis strategies that split
  bytes every way; they need the ``test`` extra (hypothesis), and say so
  when it is missing.
* :mod:`weft.drivers.testing.conformance` is the transport conformance
  suite: any transport checked against the contract (https://github.com/weft-project/weft/blob/main/docs/conformance.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from weft.drivers.testing._fake_clock import FakeClock
from weft.drivers.testing._memory import End, MemoryConnection, MemoryTransport, Pump, connect, connect_pair
from weft.drivers.testing._memory_network import (
    InFlight,
    MemoryDatagramTransport,
    MemoryNetwork,
    NetworkStats,
)
from weft.drivers.testing._memory_runtime import IdleForeverError, MemoryListener, MemoryRuntime
from weft.drivers.testing._recording import RecordingDatagramProtocol, RecordingProtocol

if TYPE_CHECKING:
    from weft.drivers.testing._strategies import chunked, chunkings

__all__ = [
    "End",
    "FakeClock",
    "IdleForeverError",
    "InFlight",
    "MemoryConnection",
    "MemoryDatagramTransport",
    "MemoryListener",
    "MemoryNetwork",
    "MemoryRuntime",
    "MemoryTransport",
    "NetworkStats",
    "Pump",
    "RecordingDatagramProtocol",
    "RecordingProtocol",
    "chunked",
    "chunkings",
    "connect",
    "connect_pair",
]

#: The names that need hypothesis, imported on first use.
_NEEDS_HYPOTHESIS = frozenset({"chunked", "chunkings"})


def __getattr__(name: str) -> Any:
    if name not in _NEEDS_HYPOTHESIS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from weft.drivers.testing import _strategies
    except ModuleNotFoundError as error:
        if error.name != "hypothesis":
            raise
        raise ModuleNotFoundError(
            f"weft.drivers.testing.{name} needs hypothesis: pip install 'weft[test]'", name="hypothesis"
        ) from None
    return getattr(_strategies, name)
