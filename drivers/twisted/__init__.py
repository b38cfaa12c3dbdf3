"""The Twisted driver: weft protocols on a Twisted reactor.

:class:`TwistedRuntime` is a :class:`~weft.drivers.Runtime` (and a
:class:`~weft.drivers.ProcessRuntime`) over a Twisted reactor: a new one of
its own (epoll on Linux; ``TwistedRuntime(reactor="asyncio")`` for
Twisted's asyncio reactor, or ``"poll"``, ``"select"``), or the one a
Twisted program runs (``TwistedRuntime(reactor=reactor)``); ``weft serve
echo --driver twisted``.  It needs the ``twisted`` extra (``pip install
'weft[twisted]'``).  Its transports keep weft's contract over Twisted's
own TCP, UNIX and pipe transports: flow control through Twisted's
producer/consumer, half-close through ``IHalfCloseableProtocol``, the clock
from the reactor (or any ``IReactorTime``).  :func:`new_reactor` makes a
reactor of a kind without installing it.  See https://github.com/weft-project/weft/blob/main/docs/drivers-twisted.md.
"""

from weft.drivers.twisted._datagrams import TwistedDatagramTransport
from weft.drivers.twisted._reactors import REACTOR_KINDS, new_reactor
from weft.drivers.twisted._runtime import TwistedRuntime
from weft.drivers.twisted._sockets import TwistedListener
from weft.drivers.twisted._transport import TwistedTransport

__all__ = [
    "REACTOR_KINDS",
    "TwistedDatagramTransport",
    "TwistedListener",
    "TwistedRuntime",
    "TwistedTransport",
    "new_reactor",
]
