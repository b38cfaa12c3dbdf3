"""The callback reactor: weft's default driver.

A single-threaded event loop over the operating system's best readiness API
(epoll on Linux), with transports for TCP and UNIX sockets, pipes, stdio,
subprocesses and PTYs.  See ``docs/reactor.md`` and ``docs/processes.md``.
"""

from weft.drivers.reactor.loop import Reactor
from weft.drivers.reactor.process import Process, Stderr
from weft.drivers.reactor.sockets import Listener
from weft.drivers.reactor.stream import StreamTransport

__all__ = ["Listener", "Process", "Reactor", "Stderr", "StreamTransport"]
