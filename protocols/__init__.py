"""weft's protocols: pure state machines that turn bytes into events and back.

Nothing here does I/O, reads a clock or draws entropy: bytes, time and
randomness are handed in by a driver (see ``weft.drivers``).  Start with
:mod:`weft.protocols.contract`.
"""

from weft.protocols._echo import EchoProtocol
from weft.protocols.contract import (
    BaseProtocol,
    BaseTransport,
    Clock,
    Protocol,
    ReadTransport,
    TimerHandle,
    Transport,
    WriteTransport,
    clock_of,
)
from weft.protocols.errors import (
    ArgumentError,
    BusyResourceError,
    ClosedResourceError,
    FrameTooLongError,
    InvalidStateError,
    LineTooLongError,
    MalformedFrameError,
    NoClockError,
    NotSettledError,
    ProtocolError,
    UnencodableFrameError,
    WeftError,
    WriteAfterEofError,
)
from weft.protocols.framing import (
    FrameReceiver,
    LengthPrefixedParser,
    LengthPrefixedProtocol,
    LineParser,
    LineProtocol,
    NetstringParser,
    NetstringProtocol,
)
from weft.protocols.pubsub import PubSubClientProtocol, PubSubHub, PubSubServerProtocol

__all__ = [
    "ArgumentError",
    "BaseProtocol",
    "BaseTransport",
    "BusyResourceError",
    "Clock",
    "ClosedResourceError",
    "EchoProtocol",
    "FrameReceiver",
    "FrameTooLongError",
    "InvalidStateError",
    "LengthPrefixedParser",
    "LengthPrefixedProtocol",
    "LineParser",
    "LineProtocol",
    "LineTooLongError",
    "MalformedFrameError",
    "NetstringParser",
    "NetstringProtocol",
    "NoClockError",
    "NotSettledError",
    "Protocol",
    "ProtocolError",
    "PubSubClientProtocol",
    "PubSubHub",
    "PubSubServerProtocol",
    "ReadTransport",
    "TimerHandle",
    "Transport",
    "UnencodableFrameError",
    "WeftError",
    "WriteAfterEofError",
    "WriteTransport",
    "clock_of",
]
