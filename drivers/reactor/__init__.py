"""The callback reactor: weft's default driver.

A single-threaded event loop over the operating system's best readiness API
(epoll on Linux), with transports for TCP and UNIX sockets, pipes, stdio,
subprocesses and PTYs, and datagram endpoints (UDP, UNIX datagram sockets:
https://github.com/weft-project/weft/blob/main/docs/datagrams.md).  :class:`Reactor` is a
:class:`~weft.drivers.Runtime` (``weft serve echo``).  :func:`new_event_loop`,
:class:`EventLoopPolicy` and :func:`run` make it an asyncio event loop, as
uvloop's names do.  See https://github.com/weft-project/weft/blob/main/docs/reactor.md,
https://github.com/weft-project/weft/blob/main/docs/asyncio.md and
https://github.com/weft-project/weft/blob/main/docs/processes.md.
"""

from weft.drivers.reactor._datagrams import ReactorDatagramTransport, datagram_transport
from weft.drivers.reactor._descriptor_transport import DescriptorTransport
from weft.drivers.reactor._event_loop import EventLoop, EventLoopPolicy, new_event_loop, run
from weft.drivers.reactor._loop import Reactor
from weft.drivers.reactor._sockets import ReactorListener

__all__ = [
    "DescriptorTransport",
    "EventLoop",
    "EventLoopPolicy",
    "Reactor",
    "ReactorDatagramTransport",
    "ReactorListener",
    "datagram_transport",
    "new_event_loop",
    "run",
]
