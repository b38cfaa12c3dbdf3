"""The transport conformance suite: checks any transport against the contract.

Implement a :class:`TransportHarness` (how to connect two protocols through
your transports, and how to run whatever moves their bytes), then::

    from weft.drivers.testing.conformance import check_transport
    check_transport(MyHarness())     # raises ConformanceError naming each failure

The checks come in two groups, each named for what it checks:

* :data:`ASYNCIO_CONTRACT`: what asyncio's own transports do (bytes in
  order, half-close, flow control at the water marks, pause and resume of
  reading, close that flushes, abort that does not, errors that end a
  connection).  Any adapter of an asyncio-style loop must pass these:
  :func:`check_asyncio_contract`.
* :data:`WEFT_PROMISES`: what weft promises beyond asyncio (a clock per
  connection, writes after the end discarded, weft's exceptions, flow
  control on every write path, ...), with :data:`FILE_PROMISES`, those of
  ``write_file``, which apply where a transport offers it:
  :func:`check_weft_promises`.  Every weft driver passes both groups:
  :func:`check_transport` runs them all.

A runtime's ``connect_unix`` has checks of its own, :data:`CONNECT_CHECKS`
(a listener whose accept backlog is full: the connect waits for room, or
fails at its deadline with ``ListenerBacklogFullError``), run by
:func:`check_connecting` on a :class:`RuntimeHarness`.

Datagram endpoints have checks of their own, :data:`DATAGRAM_CHECKS` (in
the same two groups), run by :func:`check_datagrams` on a
:class:`DatagramHarness`, which makes *benches* (a fresh loop with
``open_udp`` and ``open_unix_datagram``) rather than connected pairs:
:class:`DatagramRuntimeHarness` is one for any weft runtime, the memory
driver's included.

A check is a function of a :class:`Session` (connect protocols, usually
:class:`FlowRecorder` ones, through the harness; wait on a condition with a
clear failure; everything ended afterwards) that fails with
:class:`CheckFailure` (:func:`expect` and friends raise it), wrapped in a
:class:`Check`: write your own the same way, and run them with
:func:`run_checks`.

Ready-made harnesses: :class:`RuntimeHarness` (any weft runtime, over TCP,
UNIX sockets, pipes or a socketpair), :class:`MemoryHarness` (the memory
driver), :class:`AsyncioLoopHarness` (an asyncio-compatible loop's own
transports, with no weft code in between).  Nothing here needs pytest;
https://github.com/weft-project/weft/blob/main/docs/conformance.md shows the suite run on a
transport of one's own.
"""

from weft.drivers.testing.conformance._asyncio_contract import ASYNCIO_CONTRACT, HARNESS_CHECKS
from weft.drivers.testing.conformance._asyncio_harness import AsyncioLoopHarness, AsyncioLoopPair
from weft.drivers.testing.conformance._checking import AnyCheck, Check, Group
from weft.drivers.testing.conformance._connect_checks import (
    CONNECT_CHECKS,
    ConnectCheck,
    check_connecting,
    run_connect_checks,
)
from weft.drivers.testing.conformance._datagram_checks import (
    DATAGRAM_CHECKS,
    DatagramCheck,
    check_datagrams,
    run_datagram_checks,
)
from weft.drivers.testing.conformance._datagram_harness import (
    DatagramBench,
    DatagramHarness,
    DatagramRuntimeHarness,
    RuntimeBench,
)
from weft.drivers.testing.conformance._datagram_session import DatagramSession, Endpoint
from weft.drivers.testing.conformance._expectations import (
    CheckFailure,
    NotApplicable,
    expect,
    expect_equal,
    expect_raises,
)
from weft.drivers.testing.conformance._file_promises import FILE_PROMISES
from weft.drivers.testing.conformance._harness import ConnectedPair, TransportHarness
from weft.drivers.testing.conformance._memory_harness import MemoryHarness, MemoryPair
from weft.drivers.testing.conformance._report import (
    ALL_CHECKS,
    WEFT_PROMISES,
    ConformanceError,
    Outcome,
    Report,
    Verdict,
    check_asyncio_contract,
    check_transport,
    check_weft_promises,
    run_check,
    run_checks,
)
from weft.drivers.testing.conformance._runtime_harness import CARRIERS, RuntimeHarness, RuntimePair
from weft.drivers.testing.conformance._session import Connection, FlowRecorder, Session

__all__ = [
    "ALL_CHECKS",
    "ASYNCIO_CONTRACT",
    "CARRIERS",
    "CONNECT_CHECKS",
    "DATAGRAM_CHECKS",
    "FILE_PROMISES",
    "HARNESS_CHECKS",
    "WEFT_PROMISES",
    "AnyCheck",
    "AsyncioLoopHarness",
    "AsyncioLoopPair",
    "Check",
    "CheckFailure",
    "ConformanceError",
    "ConnectCheck",
    "ConnectedPair",
    "Connection",
    "DatagramBench",
    "DatagramCheck",
    "DatagramHarness",
    "DatagramRuntimeHarness",
    "DatagramSession",
    "Endpoint",
    "FlowRecorder",
    "Group",
    "MemoryHarness",
    "MemoryPair",
    "NotApplicable",
    "Outcome",
    "Report",
    "RuntimeBench",
    "RuntimeHarness",
    "RuntimePair",
    "Session",
    "TransportHarness",
    "Verdict",
    "check_asyncio_contract",
    "check_connecting",
    "check_datagrams",
    "check_transport",
    "check_weft_promises",
    "expect",
    "expect_equal",
    "expect_raises",
    "run_check",
    "run_checks",
    "run_connect_checks",
    "run_datagram_checks",
]
